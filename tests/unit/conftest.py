"""Fixtures for the demo app tests: a fake Redis server, a round-robin TCP balancer, bounded waits."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from osm.demo.resp import NOT_READY, RespReader, RespValue
from osm.testing.wait import poll


def _wait_until(pred: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    return poll(pred, timeout, interval)


def _free_port() -> int:
    """A port that was free a moment ago (nothing listens on it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _TCPServer:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._conns.append(conn)
                self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        self._accept.join(2)
        self.listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        for t in threads:
            t.join(2)


class FakeRedis(_TCPServer):
    """Speaks enough RESP: PING, GET, SET, INCRBY. Knobs: `raw_replies` (sent instead of the computed
    reply, in order), `split_replies` (one byte per send), `close_after_reply`."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.commands: list[list[bytes]] = []
        self.raw_replies: list[bytes] = []
        self.split_replies = False
        self.close_after_reply = False
        self.connections = 0
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        reader = RespReader()
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                reader.feed(chunk)
                while True:
                    cmd = reader.gets()
                    if cmd is NOT_READY:
                        break
                    reply = self._reply(cmd)
                    try:
                        if self.split_replies:
                            for i in range(len(reply)):
                                conn.sendall(reply[i : i + 1])
                                time.sleep(0.001)
                        else:
                            conn.sendall(reply)
                    except OSError:
                        return
                    if self.close_after_reply:
                        return

    def _reply(self, cmd: RespValue | object) -> bytes:
        assert isinstance(cmd, list) and all(isinstance(a, bytes) for a in cmd), cmd
        args: list[bytes] = [a for a in cmd if isinstance(a, bytes)]
        with self._lock:
            self.commands.append(args)
            if self.raw_replies:
                return self.raw_replies.pop(0)
            name = args[0].upper()
            if name == b"PING":
                return b"+PONG\r\n"
            if name == b"GET" and len(args) == 2:
                value = self.data.get(args[1].decode())
                return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)
            if name == b"SET" and len(args) == 3:
                self.data[args[1].decode()] = args[2]
                return b"+OK\r\n"
            if name == b"INCRBY" and len(args) == 3:
                try:
                    total = int(self.data.get(args[1].decode(), b"0")) + int(args[2])
                except ValueError:
                    return b"-ERR value is not an integer or out of range\r\n"
                self.data[args[1].decode()] = str(total).encode()
                return b":%d\r\n" % total
            return b"-ERR unknown command '%s'\r\n" % args[0]

    def get_int(self, key: str) -> int:
        with self._lock:
            return int(self.data.get(key, b"0"))


class RoundRobin(_TCPServer):
    """A TCP balancer: each accepted connection goes to the next backend port (like the mesh does)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.assigned: list[int] = []
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            port = self.ports[len(self.assigned) % len(self.ports)]
            self.assigned.append(port)
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns.append(upstream)
        back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
        back.start()
        _pump(conn, upstream)
        back.join(2)
        conn.close()
        upstream.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def fake_redis() -> Iterator[FakeRedis]:
    server = FakeRedis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def round_robin() -> Iterator[Callable[[list[int]], RoundRobin]]:
    started: list[RoundRobin] = []

    def start(ports: list[int]) -> RoundRobin:
        lb = RoundRobin(ports)
        started.append(lb)
        return lb

    try:
        yield start
    finally:
        for lb in started:
            lb.stop()


@pytest.fixture
def wait_until() -> Callable[..., bool]:
    """`wait_until(pred, timeout=5.0)`: poll until pred() is true; returns its last value."""
    return _wait_until


@pytest.fixture
def free_port() -> int:
    return _free_port()
