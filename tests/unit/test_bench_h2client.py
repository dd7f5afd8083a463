"""The load side's HTTP/2 gRPC client, against a transport that records what it writes.

The client is exercised end to end against grpc servers by the bench smoke and ceiling tests; here the
framing rules it relies on are checked one by one: messages split anywhere, flow-control windows on
what it sends, the acknowledgements a server expects, and how a stream's end is reported.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import hpack
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import h2client as h2
from bench.h2client import GrpcStream, frame


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def frames(self) -> list[tuple[int, int, int, bytes]]:
        """(type, flags, stream, payload) of everything written after the connection preface."""
        buf = bytes(self.out)
        assert buf.startswith(h2.PREFACE)
        pos, out = len(h2.PREFACE), []
        while pos < len(buf):
            length = int.from_bytes(buf[pos : pos + 3], "big")
            stream = int.from_bytes(buf[pos + 5 : pos + 9], "big")
            out.append((buf[pos + 3], buf[pos + 4], stream, buf[pos + 9 : pos + 9 + length]))
            pos += 9 + length
        return out


def grpc_message(body: bytes) -> bytes:
    return b"\x00" + len(body).to_bytes(4, "big") + body


def opened(received: list[bytes]) -> tuple[GrpcStream, FakeTransport]:
    stream = GrpcStream("/svc/Method", "ads.example", received.append)
    transport = FakeTransport()
    stream.connection_made(transport)
    return stream, transport


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_request_opens_with_settings_a_window_and_grpc_headers() -> None:
    async def check() -> None:
        _, t = opened([])
        kinds = [(k, s) for k, _, s, _ in t.frames()]
        assert kinds == [(h2.SETTINGS, 0), (h2.WINDOW_UPDATE, 0), (h2.HEADERS, 1)]
        headers = dict(hpack.Decoder().decode(t.frames()[2][3]))
        assert headers == {
            ":method": "POST",
            ":scheme": "https",
            ":path": "/svc/Method",
            ":authority": "ads.example",
            "content-type": "application/grpc",
            "te": "trailers",
        }

    run(check())


def test_messages_are_rebuilt_however_the_bytes_are_split() -> None:
    async def check() -> None:
        got: list[bytes] = []
        stream, _ = opened(got)
        bodies = [b"a" * 3, b"", b"b" * 70_000, b"c"]
        payload = b"".join(grpc_message(b) for b in bodies)
        # two DATA frames cutting the messages at odd places, then fed to the stream byte by byte
        wire = frame(h2.DATA, 0, 1, payload[:40_001]) + frame(h2.DATA, 0, 1, payload[40_001:])
        for i in range(0, len(wire), 7):
            stream.data_received(wire[i : i + 7])
        assert got == bodies
        assert stream.rx_bytes == len(payload)
        assert not stream.ended.done()

    run(check())


def test_sending_respects_the_servers_windows_and_frame_size() -> None:
    async def check() -> None:
        stream, t = opened([])
        settings = (h2.SETTINGS_INITIAL_WINDOW_SIZE).to_bytes(2, "big") + (1000).to_bytes(4, "big")
        stream.data_received(frame(h2.SETTINGS, 0, 0, settings))
        stream.send(b"x" * 2500)  # 2,505 bytes framed; the stream window allows 1,000
        sent = [p for k, _, s, p in t.frames() if k == h2.DATA]
        assert [len(p) for p in sent] == [1000]
        assert (h2.SETTINGS, h2.ACK, 0, b"") in t.frames()
        stream.data_received(frame(h2.WINDOW_UPDATE, 0, 1, (5000).to_bytes(4, "big")))
        sent = [p for k, _, s, p in t.frames() if k == h2.DATA]
        assert [len(p) for p in sent] == [1000, 1505]
        assert b"".join(sent) == grpc_message(b"x" * 2500)

    run(check())


def test_pings_are_answered_and_trailers_end_the_stream_with_their_status() -> None:
    async def check() -> None:
        stream, t = opened([])
        stream.data_received(frame(h2.PING, 0, 0, b"12345678"))
        assert (h2.PING, h2.ACK, 0, b"12345678") in t.frames()
        enc = hpack.Encoder()
        stream.data_received(frame(h2.HEADERS, h2.END_HEADERS, 1, enc.encode([(":status", "200")])))
        assert not stream.ended.done()
        trailers = enc.encode([("grpc-status", "14"), ("grpc-message", "bench: dropped")])
        stream.data_received(frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, trailers))
        assert stream.ended.result() == "UNAVAILABLE: bench: dropped"
        assert stream.status == 14 and t.closed

    run(check())


@pytest.mark.parametrize(
    ("incoming", "reason"),
    [
        (frame(h2.RST_STREAM, 0, 1, (8).to_bytes(4, "big")), "stream reset (HTTP/2 error 8)"),
        (frame(h2.GOAWAY, 0, 0, (1).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"bye"), "GOAWAY"),
        (frame(h2.DATA, h2.END_STREAM, 1, b""), "the server ended the stream"),
    ],
)
def test_a_reset_a_goaway_or_an_end_without_trailers_ends_the_stream(incoming: bytes, reason: str) -> None:
    async def check() -> None:
        stream, t = opened([])
        stream.data_received(incoming)
        assert stream.ended.result().startswith(reason) and stream.status is None and t.closed

    run(check())


def test_a_compressed_message_ends_the_stream_with_an_error() -> None:
    async def check() -> None:
        stream, t = opened([])
        stream.data_received(frame(h2.DATA, 0, 1, b"\x01\x00\x00\x00\x01x"))
        with pytest.raises(ValueError, match="compressed"):
            stream.ended.result()
        assert t.closed

    run(check())
