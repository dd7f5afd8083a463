"""A lean gRPC client for the load side: one bidirectional stream per HTTP/2 connection, on asyncio's TLS.

The simulated fleet must cost less than the control plane it measures. grpc's own client moves each
message between its event-engine threads and the asyncio loop; on one core it receives about 380 MB/s
and needs about 1.7 ms per mTLS connection, so a bare server pushing a permissive mesh's 2.3 GB saturates
it. This client parses HTTP/2 frames in the loop's callbacks, hands each gRPC message to a callback and
writes the requests that callback queues, with no task switch per message.

It speaks what a gRPC server needs from a client (RFC 9113 and the gRPC-over-HTTP/2 framing):
- the connection preface with SETTINGS (no push, a 2^31-1 stream window, 1 MiB frames) and a connection
  window of 2^31-1, replenished as data arrives;
- one request stream (id 1): a HEADERS frame encoded with HPACK literals only (no dynamic table), then
  length-prefixed messages in DATA frames that respect the server's flow-control windows and frame size;
- SETTINGS and PING acknowledgements; WINDOW_UPDATE, RST_STREAM and GOAWAY.
The server's header blocks are decoded (hpack) only to read the trailers: the stream's end gives its
gRPC status and message, as grpc's client reports them; a reset or a GOAWAY ends it too, with the reason.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import grpc
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x2, 0x4, 0x5
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
DEFAULT_FRAME = 16_384
OUR_FRAME = 1 << 20
REPLENISH = 1 << 30  # bytes received before the windows are opened again
STREAM = 1
STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: str | int, value: str) -> bytes:
    """A header as a literal without indexing: by static-table name index, or with a literal name."""
    if isinstance(name, int):
        head = _hpack_int(name, 4, 0x00)
    else:
        head = b"\x00" + _hpack_int(len(name), 7, 0x00) + name.encode()
    return head + _hpack_int(len(value), 7, 0x00) + value.encode()


def request_headers(path: str, authority: str) -> bytes:
    """The header block of a gRPC request (static table: 1 :authority, 3 POST, 4 :path, 7 https,
    31 content-type)."""
    return (
        b"\x83\x87"
        + _literal(4, path)
        + _literal(1, authority)
        + _literal(31, "application/grpc")
        + _literal("te", "trailers")
    )


class StreamEnded(Exception):
    """The stream or its connection ended; `str()` says how."""


class GrpcStream(asyncio.Protocol):
    """One gRPC bidirectional stream on its own connection. `on_message` gets each response message
    (the serialized protobuf) and may call `send`; `ended` resolves, with how, when the stream is over,
    and `status` is then its gRPC status (None when it ended without trailers)."""

    def __init__(self, path: str, authority: str, on_message: Callable[[bytes], None]) -> None:
        self.path, self.authority, self.on_message = path, authority, on_message
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._pending = b""  # the start of a frame not yet whole
        self._data_left = 0  # payload bytes of the DATA frame being read
        self._data_end = False  # that frame ends the stream
        self._chunks: deque[memoryview] = deque()  # DATA bytes not yet taken into a message
        self._have = 0  # their length
        self._need = -1  # the length of the message being read, once its 5-byte prefix is in
        self._received = 0  # DATA bytes since the windows were last opened
        self._out = bytearray()  # gRPC message bytes waiting for send window
        self._conn_window = DEFAULT_WINDOW
        self._stream_window = DEFAULT_WINDOW
        self._peer_initial = DEFAULT_WINDOW
        self._peer_frame = DEFAULT_FRAME
        self.rx_bytes = 0
        self.status: int | None = None
        self._hpack = hpack.Decoder()
        self._block = b""  # a header block waiting for its CONTINUATION frames
        self._block_ends = False  # that block's HEADERS frame ended the stream

    # ---- asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        tls = transport.get_extra_info("ssl_object")
        if tls is not None and tls.selected_alpn_protocol() != "h2":
            self._end("the server did not agree to HTTP/2 (ALPN)")
            return
        settings = b"".join(
            k.to_bytes(2, "big") + v.to_bytes(4, "big")
            for k, v in (
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW),
                (SETTINGS_MAX_FRAME_SIZE, OUR_FRAME),
            )
        )
        transport.write(
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, (MAX_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big"))
            + frame(HEADERS, END_HEADERS, STREAM, request_headers(self.path, self.authority))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection lost: {exc!r}" if exc else "connection closed")

    def data_received(self, data: bytes) -> None:
        try:
            self._receive(self._pending + data if self._pending else data)
        except Exception as e:  # a broken frame or a failing callback ends the stream with its reason
            if not self.ended.done():
                self.ended.set_exception(e)
            self.close()

    # ---- the caller

    def send(self, message: bytes) -> None:
        self._out += b"\x00" + len(message).to_bytes(4, "big") + message
        self._flush()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._end("closed by the client")

    # ---- frames

    def _end(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _receive(self, data: bytes) -> None:
        view = memoryview(data)
        pos, n = 0, len(data)
        while pos < n:
            if self._data_left:  # DATA payload arrives as it comes, not buffered per frame
                take = min(self._data_left, n - pos)
                self._message_bytes(view[pos : pos + take])
                pos += take
                self._data_left -= take
                if not self._data_left and self._data_end:
                    self._end("the server ended the stream")
                continue
            if n - pos < 9:
                break
            length = int.from_bytes(data[pos : pos + 3], "big")
            kind, flags = data[pos + 3], data[pos + 4]
            stream = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            if kind == DATA and not flags & PADDED:
                pos += 9
                self._count(length)
                self._data_left, self._data_end = length, bool(flags & END_STREAM) and stream == STREAM
                if not length and self._data_end:
                    self._end("the server ended the stream")
                if stream != STREAM:
                    raise ValueError(f"DATA on stream {stream}")
                continue
            if n - pos < 9 + length:
                break
            payload = data[pos + 9 : pos + 9 + length]
            pos += 9 + length
            self._control(kind, flags, stream, payload)
        self._pending = data[pos:] if pos < n else b""

    def _control(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == SETTINGS and not flags & ACK:
            for i in range(0, len(payload) - 5, 6):
                key = int.from_bytes(payload[i : i + 2], "big")
                value = int.from_bytes(payload[i + 2 : i + 6], "big")
                if key == SETTINGS_INITIAL_WINDOW_SIZE:
                    self._stream_window += value - self._peer_initial
                    self._peer_initial = value
                elif key == SETTINGS_MAX_FRAME_SIZE:
                    self._peer_frame = value
            self._write(frame(SETTINGS, ACK, 0))
            self._flush()
        elif kind == PING and not flags & ACK:
            self._write(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if stream == 0:
                self._conn_window += increment
            elif stream == STREAM:
                self._stream_window += increment
            self._flush()
        elif kind == HEADERS:
            start = (1 + payload[0] if flags & PADDED else 0) + (5 if flags & PRIORITY else 0)
            end = len(payload) - (payload[0] if flags & PADDED else 0)
            self._block, self._block_ends = payload[start:end], bool(flags & END_STREAM)
            if flags & END_HEADERS:
                self._headers()
        elif kind == CONTINUATION:
            self._block += payload
            if flags & END_HEADERS:
                self._headers()
        elif kind == DATA:  # padded (gRPC servers do not pad)
            self._count(len(payload))
            pad = payload[0]
            self._message_bytes(memoryview(payload)[1 : len(payload) - pad])
            if flags & END_STREAM:
                self._end("the server ended the stream")
        elif kind == RST_STREAM and stream == STREAM:
            self._end(f"stream reset (HTTP/2 error {int.from_bytes(payload[:4], 'big')})")
        elif kind == GOAWAY:
            code = int.from_bytes(payload[4:8], "big")
            self._end(f"GOAWAY (HTTP/2 error {code}): {bytes(payload[8:]).decode(errors='replace')}")

    def _headers(self) -> None:
        """Every block goes through the decoder (its table is shared); trailers end the stream."""
        fields = dict(self._hpack.decode(self._block))
        self._block = b""
        if self._block_ends:
            status = fields.get("grpc-status")
            self.status = int(status) if status is not None and status.isdigit() else None
            name = STATUS_NAMES.get(self.status, f"status {status}") if status is not None else "no status"
            self._end(f"{name}: {unquote(fields.get('grpc-message', ''))}")

    def _count(self, length: int) -> None:
        self.rx_bytes += length
        self._received += length
        if self._received >= REPLENISH:
            grant = self._received.to_bytes(4, "big")
            self._write(frame(WINDOW_UPDATE, 0, 0, grant) + frame(WINDOW_UPDATE, 0, STREAM, grant))
            self._received = 0

    def _message_bytes(self, chunk: memoryview) -> None:
        """Collect DATA bytes; each whole gRPC message is joined once, from the pieces it arrived in."""
        self._chunks.append(chunk)
        self._have += len(chunk)
        while True:
            if self._need < 0:
                if self._have < 5:
                    return
                head = self._take(5)
                if head[0]:
                    raise ValueError("compressed gRPC messages are not supported")
                self._need = int.from_bytes(head[1:5], "big")
            if self._have < self._need:
                return
            message, self._need = self._take(self._need), -1
            self.on_message(message)

    def _take(self, size: int) -> bytes:
        parts, chunks = [], self._chunks
        while size:
            first = chunks[0]
            if len(first) <= size:
                parts.append(chunks.popleft())
                size -= len(first)
                self._have -= len(first)
            else:
                parts.append(first[:size])
                chunks[0] = first[size:]
                self._have -= size
                size = 0
        return b"".join(parts)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flush(self) -> None:
        out = self._out
        while out and self._conn_window > 0 and self._stream_window > 0:
            size = min(len(out), self._conn_window, self._stream_window, self._peer_frame)
            with memoryview(out) as whole:
                chunk = bytes(whole[:size])
            del out[:size]
            self._conn_window -= size
            self._stream_window -= size
            self._write(frame(DATA, 0, STREAM, chunk))


def client_context(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """mTLS for one simulated proxy: trusts the mesh CA, presents its own certificate, offers h2."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca_pem.decode())
    with tempfile.TemporaryDirectory(prefix="osm-bench-cert-") as tmp:
        path = Path(tmp) / "client.pem"  # the ssl module loads a key pair only from a file
        path.write_bytes(cert_pem + key_pem)
        path.chmod(0o600)
        ctx.load_cert_chain(path)
    ctx.set_alpn_protocols(["h2"])
    return ctx


async def open_stream(
    host: str,
    port: int,
    ctx: ssl.SSLContext | None,
    path: str,
    on_message: Callable[[bytes], None],
    *,
    server_name: str,
) -> GrpcStream:
    """Connect (TLS with SNI and verification against `server_name` when `ctx` is given) and open the
    stream; its request headers are on the wire when this returns."""
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: GrpcStream(path, server_name, on_message),
        host,
        port,
        ssl=ctx,
        server_hostname=server_name if ctx is not None else None,
    )
    return proto
