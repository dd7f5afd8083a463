"""The test Zipkin collector (osm.testing.zipkin): what it accepts, answers and keeps, on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from osm.testing import zipkin


@pytest.fixture
def collector() -> Iterator[tuple[str, zipkin.Spans]]:
    server, spans = zipkin.make_server("127.0.0.1", 0, spans=zipkin.Spans(max_spans=3), max_body=1000)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", spans
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def call(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, object]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            data = r.read()
            return r.status, json.loads(data) if data else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def span(trace: str, sid: str, service: str) -> dict[str, object]:
    return {"traceId": trace, "id": sid, "localEndpoint": {"serviceName": service}}


def test_spans_posted_come_back_grouped_by_trace(collector: tuple[str, zipkin.Spans]) -> None:
    url, _ = collector
    body = json.dumps([span("t1", "a", "client.ns"), span("t1", "b", "server.ns")]).encode()
    assert call(url + "/api/v2/spans", body, {"content-type": "application/json"}) == (202, None)
    gz = gzip.compress(json.dumps([span("t2", "c", "client.ns")]).encode())
    assert call(url + "/api/v2/spans", gz, {"content-encoding": "gzip"})[0] == 202
    status, traces = call(url + "/api/v2/traces")
    assert status == 200
    assert traces == [
        [span("t1", "a", "client.ns"), span("t1", "b", "server.ns")],
        [span("t2", "c", "client.ns")],
    ]
    assert call(url + "/api/v2/services") == (200, ["client.ns", "server.ns"])


def test_bad_bodies_are_refused_with_the_reason(collector: tuple[str, zipkin.Spans]) -> None:
    url, spans = collector
    status, answer = call(url + "/api/v2/spans", b'{"not": "a list"}')
    assert status == 400 and "expected a JSON list of spans" in str(answer)
    status, answer = call(url + "/api/v2/spans", json.dumps([{"id": "a"}]).encode())
    assert status == 400 and "span [0]: traceId is required" in str(answer)
    assert call(url + "/elsewhere", b"[]")[0] == 404
    status, answer = call(url + "/api/v2/spans", b"[]", {"content-length": "-1"})
    assert status == 400 and "negative" in str(answer)
    assert spans.all() == []


def test_the_body_and_the_spans_kept_are_bounded(collector: tuple[str, zipkin.Spans]) -> None:
    url, spans = collector
    big = json.dumps([span("t", str(i), "s") for i in range(40)]).encode()
    assert len(big) > 1000
    assert call(url + "/api/v2/spans", big)[0] == 413
    bomb = gzip.compress(b"[" + b" " * 5000 + b"]")  # small compressed, above the bound once inflated
    status, answer = call(url + "/api/v2/spans", bomb, {"content-encoding": "gzip"})
    assert status == 400 and "above 1000 bytes" in str(answer)
    for i in range(5):
        assert call(url + "/api/v2/spans", json.dumps([span("t", str(i), "s")]).encode())[0] == 202
    assert [s["id"] for s in spans.all()] == ["2", "3", "4"]  # at most 3 kept, the oldest dropped


def chunked_post(url: str, parts: list[bytes]) -> int:
    """POST in chunked transfer encoding, as Envoy's Zipkin tracer sends its spans."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", "/api/v2/spans", body=iter(parts), encode_chunked=True)
        return conn.getresponse().status
    finally:
        conn.close()


def test_chunked_bodies_are_read_within_the_bound(collector: tuple[str, zipkin.Spans]) -> None:
    url, spans = collector
    body = json.dumps([span("t9", "z", "client.ns")]).encode()
    assert chunked_post(url, [body[:10], body[10:]]) == 202
    assert spans.all() == [span("t9", "z", "client.ns")]
    assert chunked_post(url, [b" " * 600, b" " * 600]) == 413
