"""The local mesh's endpoints, reachable from the host: TCP forwarders from 127.0.0.1 to the node.

The control plane and Prometheus listen on the node's address, inside the node's network namespace,
which the host cannot route to. `osm local up` opens one listening socket per endpoint on 127.0.0.1
(an ephemeral port) in the host's namespace, before it enters the node's, and hands them to the node
process; a socket stays in the namespace it was made in. The node process forwards each connection to
the endpoint in its own namespace.

Bounded: at most `max_connections` connections per endpoint at a time (more are closed at once), and a
connection with no bytes either way for `idle_timeout` seconds is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 300.0
CHUNK = 64 * 1024


def listen(names: list[str], host: str = "127.0.0.1") -> dict[str, socket.socket]:
    """One listening socket per name, on `host` at an ephemeral port, inheritable by a child process."""
    out: dict[str, socket.socket] = {}
    for name in names:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        s.listen(64)
        s.set_inheritable(True)
        out[name] = s
    return out


def encode(sockets: Mapping[str, socket.socket]) -> str:
    """`name=fd,...`, the node's --host-listen argument."""
    return ",".join(f"{name}={s.fileno()}" for name, s in sockets.items())


def decode(value: str) -> dict[str, socket.socket]:
    """The sockets named by `encode`'s text, as the node process inherited them."""
    out: dict[str, socket.socket] = {}
    for item in filter(None, value.split(",")):
        name, _, fd = item.partition("=")
        if not name or not fd.isdigit():
            raise ValueError(f"--host-listen: {item!r} is not NAME=FD")
        out[name] = socket.socket(fileno=int(fd))
    return out


def url(s: socket.socket, path: str = "") -> str:
    host, port = s.getsockname()[:2]
    return f"http://{host}:{port}{path}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle: float) -> None:
    try:
        while True:
            data = await asyncio.wait_for(reader.read(CHUNK), idle)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (TimeoutError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()


async def serve(
    sock: socket.socket,
    target: tuple[str, int],
    *,
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    """Forward every connection accepted on `sock` to `target`, until cancelled."""
    active: set[asyncio.Task[None]] = set()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(active) >= max_connections:
            log.warning("forwarder to %s:%d: %d connections already; refusing one", *target, len(active))
            client_w.close()
            return
        active.add(task)
        try:
            try:
                up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*target), 5)
            except (OSError, TimeoutError):
                return  # nothing listens there (e.g. the debug server is off): the client sees a close
            try:
                await asyncio.gather(_pipe(client_r, up_w, idle_timeout), _pipe(up_r, client_w, idle_timeout))
            finally:
                up_w.close()
        finally:
            active.discard(task)
            client_w.close()

    sock.setblocking(False)
    server = await asyncio.start_server(handle, sock=sock)
    try:
        async with server:
            await server.serve_forever()
    finally:
        for t in list(active):
            t.cancel()
