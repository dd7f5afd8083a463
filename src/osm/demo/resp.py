"""A tiny Redis (RESP2) client: enough for bookwarehouse's stock counter.

Commands are sent as arrays of bulk strings. Replies: simple strings -> str, errors -> RedisError,
integers -> int, bulk strings -> bytes (nil -> None), arrays -> list (nil -> None).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Final, TypeAlias, Union

RespValue: TypeAlias = Union[int, str, bytes, "ReplyError", list["RespValue"], None]

CRLF: Final = b"\r\n"
MAX_LINE: Final = 64 * 1024
MAX_BULK: Final = 512 * 1024 * 1024


class RedisError(Exception):
    """Any failure talking to Redis."""


class ReplyError(RedisError):
    """An error reply from the server (`-ERR ...`)."""


class RedisProtocolError(RedisError):
    """The server sent something that is not valid RESP (or not the expected type)."""


class RedisConnectionError(RedisError):
    """Connecting, sending or receiving failed (incl. timeouts and the server closing the connection)."""


def encode_command(*args: str | bytes | int) -> bytes:
    """Encode a command as a RESP array of bulk strings."""
    if not args:
        raise ValueError("empty command")
    out = bytearray(b"*%d\r\n" % len(args))
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, bool):
            raise TypeError("bool is not a valid Redis argument")
        elif isinstance(arg, int):
            data = str(arg).encode()
        else:
            data = arg.encode("utf-8")
        out += b"$%d\r\n" % len(data)
        out += data
        out += CRLF
    return bytes(out)


class _NotReady:
    def __repr__(self) -> str:
        return "NOT_READY"


NOT_READY: Final = _NotReady()


class _Incomplete(Exception):
    pass


class RespReader:
    """Incremental RESP parser: `feed()` bytes as they arrive, `gets()` values (or NOT_READY)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def gets(self) -> RespValue | _NotReady:
        try:
            value, pos = self._parse(0)
        except _Incomplete:
            return NOT_READY
        del self._buf[:pos]
        return value

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self._buf.find(CRLF, pos)
        if end < 0:
            if len(self._buf) - pos > MAX_LINE:
                raise RedisProtocolError("RESP line too long")
            raise _Incomplete
        return bytes(self._buf[pos:end]), end + 2

    def _int(self, raw: bytes) -> int:
        try:
            return int(raw)
        except ValueError:
            raise RedisProtocolError(f"invalid RESP integer {raw[:40]!r}") from None

    def _parse(self, pos: int) -> tuple[RespValue, int]:
        if pos >= len(self._buf):
            raise _Incomplete
        kind = self._buf[pos : pos + 1]
        line, pos = self._line(pos + 1)
        if kind == b"+":
            return line.decode("utf-8", "replace"), pos
        if kind == b"-":
            return ReplyError(line.decode("utf-8", "replace")), pos
        if kind == b":":
            return self._int(line), pos
        if kind == b"$":
            n = self._int(line)
            if n == -1:
                return None, pos
            if n < 0 or n > MAX_BULK:
                raise RedisProtocolError(f"invalid bulk length {n}")
            if len(self._buf) < pos + n + 2:
                raise _Incomplete
            if self._buf[pos + n : pos + n + 2] != CRLF:
                raise RedisProtocolError("bulk string not terminated by CRLF")
            return bytes(self._buf[pos : pos + n]), pos + n + 2
        if kind == b"*":
            n = self._int(line)
            if n == -1:
                return None, pos
            if n < 0:
                raise RedisProtocolError(f"invalid array length {n}")
            items: list[RespValue] = []
            for _ in range(n):
                item, pos = self._parse(pos)
                items.append(item)
            return items, pos
        raise RedisProtocolError(f"unknown RESP type byte {kind!r}")


class RedisClient:
    """One lazily opened connection, reopened after any error; thread-safe (one command at a time).

    A command that fails on a reused connection before any reply byte arrived (the server or a proxy
    closed the idle connection) is retried once on a fresh connection.
    """

    def __init__(self, host: str, port: int = 6379, timeout: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader = RespReader()
        self._lock = threading.Lock()
        self.connects = 0

    def __enter__(self) -> RedisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _connect_locked(self) -> socket.socket:
        if self._sock is None:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except OSError as e:
                raise RedisConnectionError(f"cannot connect to {self.host}:{self.port}: {e}") from e
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._reader = RespReader()
            self.connects += 1
        return self._sock

    def execute(self, *args: str | bytes | int) -> RespValue:
        """Send one command and return its reply; an error reply raises ReplyError."""
        payload = encode_command(*args)
        with self._lock:
            for attempt in (1, 2):
                reused = self._sock is not None
                sock = self._connect_locked()
                received = False
                try:
                    sock.sendall(payload)
                    while True:
                        value = self._reader.gets()
                        if not isinstance(value, _NotReady):
                            break
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise ConnectionResetError("connection closed by server")
                        received = True
                        self._reader.feed(chunk)
                except RedisProtocolError:
                    self._close_locked()
                    raise
                except OSError as e:
                    self._close_locked()
                    stale = reused and not received and not isinstance(e, TimeoutError)
                    if attempt == 1 and stale:
                        continue
                    what = "timed out" if isinstance(e, TimeoutError) else str(e) or type(e).__name__
                    raise RedisConnectionError(f"redis {self.host}:{self.port}: {what}") from e
                if isinstance(value, ReplyError):
                    raise value
                return value
        raise AssertionError("unreachable")

    def ping(self) -> bool:
        return self.execute("PING") == "PONG"

    def incrby(self, key: str, n: int) -> int:
        value = self.execute("INCRBY", key, n)
        if not isinstance(value, int):
            raise RedisProtocolError(f"INCRBY: expected an integer reply, got {value!r}")
        return value

    def get(self, key: str) -> str | None:
        value = self.execute("GET", key)
        if value is None:
            return None
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        raise RedisProtocolError(f"GET: expected a bulk string reply, got {value!r}")

    def set(self, key: str, value: str | bytes | int) -> None:
        reply = self.execute("SET", key, value)
        if reply != "OK":
            raise RedisProtocolError(f"SET: expected OK, got {reply!r}")
