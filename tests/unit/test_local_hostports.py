"""The host forwarders of the local mesh's endpoints (osm.local.hostports), on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from osm.local import hostports


async def echo_server() -> tuple[asyncio.Server, int]:
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(1024):
            w.write(data.upper())
            await w.drain()
        w.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a forwarder and wait for it: its server closes the listening socket."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def closed_at_once(port: int) -> bool:
    """Whether a connection to `port` is closed by the other side without an answer."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"ping")
        await w.drain()
        return await asyncio.wait_for(r.read(), 5) == b""
    except ConnectionResetError:
        return True
    finally:
        w.close()


def test_sockets_pass_as_name_fd_pairs_and_name_their_url() -> None:
    socks = hostports.listen(["metrics", "debug"])
    try:
        text = hostports.encode(socks)
        assert text == f"metrics={socks['metrics'].fileno()},debug={socks['debug'].fileno()}"
        assert all(s.get_inheritable() for s in socks.values())
        port = socks["metrics"].getsockname()[1]
        assert hostports.url(socks["metrics"], "/metrics") == f"http://127.0.0.1:{port}/metrics"
        again = hostports.decode(text)
        assert {n: s.getsockname() for n, s in again.items()} == {
            n: s.getsockname() for n, s in socks.items()
        }
        for s in again.values():
            s.detach()  # the same descriptors: closed once, below
    finally:
        for s in socks.values():
            s.close()
    with pytest.raises(ValueError, match="'metrics' is not NAME=FD"):
        hostports.decode("metrics")


@contextlib.asynccontextmanager
async def forwarder(target_port: int, **limits: Any) -> AsyncIterator[socket.socket]:
    """A forwarder to 127.0.0.1:`target_port`, running while the block runs; its listening socket."""
    (listening,) = hostports.listen(["x"]).values()
    task = asyncio.create_task(hostports.serve(listening, ("127.0.0.1", target_port), **limits))
    try:
        yield listening
    finally:
        await stop(task)


def test_connections_are_forwarded_both_ways_and_bounded() -> None:
    async def run() -> None:
        server, port = await echo_server()
        try:
            async with forwarder(port, max_connections=2) as listening:
                front = listening.getsockname()[1]
                held = [await asyncio.open_connection("127.0.0.1", front) for _ in range(2)]
                for r, w in held:
                    w.write(b"hello")
                    await w.drain()
                    assert await asyncio.wait_for(r.readexactly(5), 5) == b"HELLO"
                # a third while two are open: closed without reaching the server
                assert await closed_at_once(front)
                for _, w in held:
                    w.close()
                await asyncio.sleep(0.2)
                r, w = await asyncio.open_connection("127.0.0.1", front)
                w.write(b"again")
                w.write_eof()  # a half-close reaches the server, whose answer still comes back
                assert await asyncio.wait_for(r.read(), 5) == b"AGAIN"
                w.close()
        finally:
            server.close()

    asyncio.run(run())


def test_idle_connections_are_closed_and_an_absent_target_is_a_close() -> None:
    async def run() -> None:
        server, port = await echo_server()
        try:
            async with forwarder(port, idle_timeout=0.3) as listening:
                r, w = await asyncio.open_connection("127.0.0.1", listening.getsockname()[1])
                assert await asyncio.wait_for(r.read(), 5) == b""  # nothing sent for 0.3 s: closed
                w.close()
        finally:
            server.close()
        assert listening.fileno() == -1  # the forwarder's server closed its socket
        # nothing listens on the target: the client's connection is closed
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        gone = free.getsockname()[1]
        free.close()
        async with forwarder(gone) as listening:
            assert await closed_at_once(listening.getsockname()[1])

    asyncio.run(run())
