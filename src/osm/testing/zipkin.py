"""A small Zipkin-compatible collector, for tests: what Envoy's Zipkin tracer (HTTP JSON, API v2) sends,
kept in memory and answered through the part of Zipkin's query API the tests need.

- `POST /api/v2/spans` (or the path given): a JSON list of v2 spans; 202 as Zipkin answers, 400 for a
  body that is not a list of spans, 413 above `max_body` bytes. Gzip bodies are accepted.
- `GET /api/v2/traces`: every trace, as Zipkin's query API gives them (a list of lists of spans).
- `GET /api/v2/services`: the service names seen (localEndpoint.serviceName).

At most `max_spans` spans are kept (the oldest go first): a test's collector cannot grow without bound.

Run: python -m osm.testing.zipkin --host 0.0.0.0 --port 9411
"""

from __future__ import annotations

import argparse
import collections
import http.server
import json
import threading
import zlib
from collections.abc import Sequence
from typing import Any

DEFAULT_PATH = "/api/v2/spans"
MAX_BODY = 4 << 20
MAX_SPANS = 20_000


class BodyTooLarge(ValueError):
    pass


class Spans:
    """The spans received so far, bounded."""

    def __init__(self, max_spans: int = MAX_SPANS) -> None:
        self._spans: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_spans)
        self._lock = threading.Lock()

    def add(self, spans: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            self._spans.extend(spans)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._spans)

    def traces(self) -> list[list[dict[str, Any]]]:
        by_trace: dict[str, list[dict[str, Any]]] = {}
        for s in self.all():
            by_trace.setdefault(str(s.get("traceId", "")), []).append(s)
        return list(by_trace.values())

    def services(self) -> list[str]:
        return sorted({str(s.get("localEndpoint", {}).get("serviceName", "")) for s in self.all()} - {""})


def inflate(body: bytes, limit: int) -> bytes:
    """A gzip body, inflated no further than `limit` bytes (ValueError beyond)."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = d.decompress(body, limit + 1)
    if len(out) > limit:
        raise ValueError(f"decompressed body is above {limit} bytes")
    if not d.eof:
        raise ValueError("truncated gzip body")
    return out


def parse_spans(body: bytes) -> list[dict[str, Any]]:
    """A v2 JSON span list; ValueError naming what is wrong."""
    data = json.loads(body)
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list of spans, got {type(data).__name__}")
    for i, s in enumerate(data):
        if not isinstance(s, dict):
            raise ValueError(f"span [{i}]: expected an object, got {type(s).__name__}")
        for key in ("traceId", "id"):
            if not isinstance(s.get(key), str) or not s[key]:
                raise ValueError(f"span [{i}]: {key} is required (a hex string)")
    return data


def make_server(
    host: str, port: int, *, path: str = DEFAULT_PATH, spans: Spans | None = None, max_body: int = MAX_BODY
) -> tuple[http.server.ThreadingHTTPServer, Spans]:
    store = spans if spans is not None else Spans()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, code: int, body: object = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            """The request body, by content-length or chunked (as Envoy sends spans), at most max_body."""
            if self.headers.get("transfer-encoding", "").lower() != "chunked":
                size = int(self.headers.get("content-length") or 0)
                if size < 0:
                    raise ValueError(f"content-length {size} is negative")
                if size > max_body:
                    raise BodyTooLarge(f"body of {size} bytes is above {max_body}")
                return self.rfile.read(size)
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(64).split(b";")[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise ValueError(f"bad chunk size {line[:16]!r}") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > max_body:
                    raise BodyTooLarge(f"chunked body is above {max_body} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(4)

        def do_POST(self) -> None:
            if self.path.split("?")[0] != path:
                self.close_connection = True  # its body is not read
                self._answer(404, {"error": f"POST spans to {path}"})
                return
            try:
                body = self._body()
            except BodyTooLarge as e:
                self.close_connection = True
                self._answer(413, {"error": str(e)})
                return
            except ValueError as e:
                self.close_connection = True
                self._answer(400, {"error": str(e)})
                return
            try:
                if self.headers.get("content-encoding", "") == "gzip":
                    body = inflate(body, max_body)
                store.add(parse_spans(body))
            except (ValueError, zlib.error) as e:
                self._answer(400, {"error": str(e)})
                return
            self._answer(202)

        def do_GET(self) -> None:
            route = self.path.split("?")[0]
            if route == "/api/v2/traces":
                self._answer(200, store.traces())
            elif route == "/api/v2/services":
                self._answer(200, store.services())
            elif route == "/health":
                self._answer(200, {"status": "UP"})
            else:
                self._answer(404, {"error": "not found"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return http.server.ThreadingHTTPServer((host, port), Handler), store


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="a small Zipkin-compatible span collector (for tests)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9411)
    p.add_argument("--path", default=DEFAULT_PATH)
    a = p.parse_args(argv)
    server, _ = make_server(a.host, a.port, path=a.path)
    server.serve_forever()


if __name__ == "__main__":
    main()
