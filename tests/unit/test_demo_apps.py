"""bookstore + bookwarehouse + the buyer loop on 127.0.0.1 ephemeral ports, with a fake Redis."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from osm.demo import bookstore, bookwarehouse
from osm.demo.bookstore import BookstoreServer
from osm.demo.bookwarehouse import BookwarehouseServer
from osm.demo.client import FAILURE_SENTINEL, SUCCESS_SENTINEL, ClientConfig, SentinelTracker, run

HOST = "127.0.0.1"


def _request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    started: list[Any] = []
    try:
        yield started
    finally:
        for server in reversed(started):
            server.stop()


def _warehouse(servers: list[Any], redis_port: int) -> BookwarehouseServer:
    wh = bookwarehouse.serve(0, host=HOST, redis_host=HOST, redis_port=redis_port, timeout_s=1)
    servers.append(wh)
    return wh


def _store(servers: list[Any], identity: str, warehouse_port: int) -> BookstoreServer:
    store = bookstore.serve(
        0, host=HOST, identity=identity, warehouse_url=f"http://{HOST}:{warehouse_port}", timeout_s=1
    )
    servers.append(store)
    return store


def test_end_to_end_split_restock_and_sentinel(
    servers: list[Any], fake_redis: Any, round_robin: Callable[[list[int]], Any], wait_until: Any
) -> None:
    wh = _warehouse(servers, fake_redis.port)
    v1 = _store(servers, "bookstore-v1", wh.port)
    v2 = _store(servers, "bookstore-v2", wh.port)
    lb = round_robin([v1.port, v1.port, v2.port])  # a 2:1 "TrafficSplit", per connection
    events: list[str] = []
    emitted: list[str] = []
    config = ClientConfig(client_app="bookbuyer", bookstore_url=f"http://{HOST}:{lb.port}", wait_ms=1)
    stats = run(6, config, log=events.append, emit=emitted.append)

    snap = stats.snapshot()
    assert (snap["requests"], snap["success"], snap["failure"]) == (12, 12, 0)
    assert snap["by_status"] == {"200": 12}
    assert snap["by_path"] == {"/books-bought": 6, "/buy-a-book/new": 6}
    assert snap["last_error"] is None
    # every request went through its own connection, so the balancer saw all 12
    assert len(lb.assigned) == 12
    assert snap["by_version"] == {"bookstore-v1": lb.assigned.count(v1.port), "bookstore-v2": 4}
    s1, s2 = v1.stats.snapshot(), v2.stats.snapshot()
    assert s1["by_client"] == {"bookbuyer": 8} and s2["by_client"] == {"bookbuyer": 4}
    assert s1["success"] + s2["success"] == 12
    assert v1.books_bought + v2.books_bought == 6
    assert s1["by_path"]["/buy-a-book/new"] == v1.books_bought
    # the restocks happen in the background and reach (fake) Redis through bookwarehouse
    assert wait_until(lambda: fake_redis.get_int("books") == 6)
    assert wait_until(
        lambda: v1.stats.snapshot()["restock_success"] + v2.stats.snapshot()["restock_success"] == 6
    )
    assert v1.stats.snapshot()["restock_failure"] == 0
    whs = wh.stats.snapshot()
    assert whs["by_client"] == {"bookstore": 6}
    assert whs["by_path"] == {"/restock-books": 6}
    assert [c[0] for c in fake_redis.commands] == [b"INCRBY"] * 6
    # sentinel: printed verbatim, once for the streak of 12 successes
    assert emitted == [SUCCESS_SENTINEL]
    assert any("GET /buy-a-book/new -> 200" in e for e in events)


def test_bookstore_headers_health_and_404(servers: list[Any], fake_redis: Any, wait_until: Any) -> None:
    wh = _warehouse(servers, fake_redis.port)
    store = _store(servers, "bookstore-v2", wh.port)
    status, headers, body = _request(
        store.port, "GET", "/buy-a-book/new", headers={"client-app": "bookbuyer"}
    )
    assert status == 200
    assert headers["identity"] == "bookstore-v2" and headers["booksbought"] == "1"
    assert json.loads(body) == {"books_bought": 1}
    status, headers, body = _request(store.port, "GET", "/books-bought?x=1")
    assert (status, headers["booksbought"], json.loads(body)) == (200, "1", {"books_bought": 1})
    status, headers, _ = _request(store.port, "GET", "/healthz/ready")
    assert status == 200 and headers["identity"] == "bookstore-v2"
    status, headers, _ = _request(store.port, "GET", "/nope", headers={"client-app": "bookthief"})
    assert status == 404 and headers["identity"] == "bookstore-v2" and headers["booksbought"] == "1"
    status, _, _ = _request(store.port, "POST", "/buy-a-book/new", body=b"{}")
    assert status == 404
    snap = store.stats.snapshot()
    assert snap["requests"] == 4  # healthz not counted
    assert snap["by_client"] == {"bookbuyer": 1, "unknown": 2, "bookthief": 1}
    assert snap["by_status"] == {"200": 2, "404": 2}
    assert wait_until(lambda: fake_redis.get_int("books") == 1)


def test_bookstore_counts_restock_failures(servers: list[Any], free_port: int, wait_until: Any) -> None:
    logs: list[str] = []
    store = bookstore.serve(
        0, host=HOST, warehouse_url=f"http://{HOST}:{free_port}", timeout_s=1, log=logs.append
    )
    servers.append(store)
    for _ in range(3):
        assert _request(store.port, "GET", "/buy-a-book/new")[0] == 200  # the sale does not wait
    assert wait_until(lambda: store.stats.snapshot()["restock_failure"] == 3)
    snap = store.stats.snapshot()
    assert snap["restock_success"] == 0
    assert snap["last_error"].startswith("restock: ConnectionRefusedError")
    assert len([line for line in logs if line.startswith("restock:")]) == 1  # logged once, on change


def test_bookwarehouse_restock_errors_and_reconnect(servers: list[Any], fake_redis: Any) -> None:
    wh = _warehouse(servers, fake_redis.port)
    hdrs = {"client-app": "bookstore", "content-type": "application/json"}
    status, headers, body = _request(
        wh.port, "POST", "/restock-books", json.dumps({"restock": 5}).encode(), hdrs
    )
    assert (status, json.loads(body)) == (200, {"stock": 5})
    assert headers["identity"] == "bookwarehouse"
    fake_redis.raw_replies.append(b"-ERR out of books\r\n")
    status, _, body = _request(wh.port, "POST", "/restock-books", b'{"restock": 1}', hdrs)
    assert status == 503 and b"ERR out of books" in body
    assert "ERR out of books" in (wh.stats.snapshot()["last_error"] or "")
    fake_redis.close_after_reply = True  # every reuse finds a closed connection: reconnects
    for stock in (6, 7):
        status, _, body = _request(wh.port, "POST", "/restock-books", b'{"restock": 1}', hdrs)
        assert (status, json.loads(body)) == (200, {"stock": stock})
    assert _request(wh.port, "POST", "/restock-books", b'{"restock": -1}', hdrs)[0] == 400
    assert _request(wh.port, "POST", "/restock-books", b"not json", hdrs)[0] == 400
    assert _request(wh.port, "GET", "/restock-books")[0] == 404
    assert _request(wh.port, "GET", "/healthz/ready")[0] == 200
    snap = wh.stats.snapshot()
    assert snap["by_status"] == {"200": 3, "503": 1, "400": 2, "404": 1}
    assert snap["by_client"] == {"bookstore": 6, "unknown": 1}
    assert (snap["last_error"] or "").startswith("bad request")


def test_bookwarehouse_redis_down_is_503(servers: list[Any], free_port: int) -> None:
    wh = _warehouse(servers, free_port)
    status, _, body = _request(wh.port, "POST", "/restock-books", b'{"restock": 1}')
    assert status == 503
    assert body.decode().startswith("redis error: cannot connect")
    assert wh.stats.snapshot()["failure"] == 1


def test_client_against_closed_port(free_port: int) -> None:
    emitted: list[str] = []
    config = ClientConfig(client_app="bookthief", bookstore_url=f"http://{HOST}:{free_port}", wait_ms=0)
    stats = run(10, config, log=lambda _line: None, emit=emitted.append)
    snap = stats.snapshot()
    assert (snap["requests"], snap["success"], snap["failure"]) == (20, 0, 20)
    assert snap["by_status"] == {"0": 20}
    assert snap["by_version"] == {}
    assert "ConnectionRefusedError" in snap["last_error"]
    assert emitted == [FAILURE_SENTINEL]  # once, after the 10th consecutive failure


def test_client_non_200_is_a_failure(servers: list[Any], fake_redis: Any, capsys: Any) -> None:
    wh = _warehouse(servers, fake_redis.port)
    store = _store(servers, "bookstore-v1", wh.port)
    config = ClientConfig(bookstore_url=f"http://{HOST}:{store.port}/prefix", wait_ms=0, failure_threshold=4)
    stats = run(2, config, log=lambda _line: None)  # default emit: stdout
    snap = stats.snapshot()
    assert snap["by_status"] == {"404": 4}
    assert snap["by_version"] == {"bookstore-v1": 4}  # the version still answered
    assert snap["last_error"].startswith("GET /buy-a-book/new: HTTP 404 Not Found")
    assert capsys.readouterr().out.splitlines() == [FAILURE_SENTINEL]


def test_run_stops_on_event(free_port: int) -> None:
    import threading

    stop = threading.Event()
    stop.set()
    config = ClientConfig(bookstore_url=f"http://{HOST}:{free_port}")
    assert run(None, config, stop=stop, log=lambda _line: None).snapshot()["requests"] == 0


def test_sentinel_tracker_rearms_when_streak_breaks() -> None:
    t = SentinelTracker(success_threshold=3, failure_threshold=2)
    seq = [True, True, True, True, False, False, False, True, True, True, False, True]
    out = [t.observe(ok) for ok in seq]
    assert out == [
        None,
        None,
        SUCCESS_SENTINEL,
        None,
        None,
        FAILURE_SENTINEL,
        None,
        None,
        None,
        SUCCESS_SENTINEL,
        None,
        None,
    ]


def test_client_rejects_bad_url() -> None:
    with pytest.raises(ValueError, match="BOOKSTORE_URL"):
        run(1, ClientConfig(bookstore_url="https://bookstore"), log=lambda _line: None)
