from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from osm.demo.stats import Stats, StatsWriter, read_stats, summary_line


def _clock(values: list[float]) -> Callable[[], float]:
    it = iter(values)
    return lambda: next(it)


def test_client_counters() -> None:
    s = Stats("bookbuyer", pod="bookbuyer-1", namespace="bookbuyer")
    s.record_client(200, "bookstore-v1", None, path="/books-bought")
    s.record_client(200, "bookstore-v2", None, path="/buy-a-book/new")
    s.record_client(200, "bookstore-v1", None)
    s.record_client(403, None, "GET /books-bought: HTTP 403 Forbidden")
    s.record_client(0, None, "GET /buy-a-book/new: ConnectionRefusedError: refused")
    snap = s.snapshot()
    assert snap["app"] == "bookbuyer"
    assert snap["pod"] == "bookbuyer-1"
    assert snap["namespace"] == "bookbuyer"
    assert (snap["requests"], snap["success"], snap["failure"]) == (5, 3, 2)
    assert snap["by_status"] == {"200": 3, "403": 1, "0": 1}
    assert snap["by_version"] == {"bookstore-v1": 2, "bookstore-v2": 1}
    assert snap["by_path"] == {"/books-bought": 1, "/buy-a-book/new": 1}
    assert snap["by_client"] == {}
    assert snap["last_error"] == "GET /buy-a-book/new: ConnectionRefusedError: refused"
    assert snap["time"] >= snap["started"]


def test_server_and_restock_counters() -> None:
    s = Stats("bookstore-v1")
    s.record_server("/books-bought", "bookbuyer", 200)
    s.record_server("/buy-a-book/new", "bookbuyer", 200)
    s.record_server("(other)", None, 404)
    s.record_restock(True)
    s.record_restock(False, "restock: HTTP 403 Forbidden")
    snap = s.snapshot()
    assert (snap["requests"], snap["success"], snap["failure"]) == (3, 2, 1)
    assert snap["by_client"] == {"bookbuyer": 2, "unknown": 1}
    assert snap["by_path"] == {"/books-bought": 1, "/buy-a-book/new": 1, "(other)": 1}
    assert snap["by_status"] == {"200": 2, "404": 1}
    assert (snap["restock_success"], snap["restock_failure"]) == (1, 1)
    assert snap["last_error"] == "restock: HTTP 403 Forbidden"
    assert snap["by_version"] == {}


def test_snapshot_is_a_copy_and_json_serializable() -> None:
    s = Stats("bookbuyer")
    s.record_client(200, "bookstore-v1", None)
    snap = s.snapshot()
    snap["by_version"]["bookstore-v1"] = 99
    assert s.snapshot()["by_version"] == {"bookstore-v1": 1}
    assert json.loads(json.dumps(snap))["requests"] == 1


def test_thread_safety() -> None:
    s = Stats("bookstore-v1")

    def work() -> None:
        for _ in range(500):
            s.record_server("/books-bought", "bookbuyer", 200)
            s.record_client(0, None, "x")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    snap = s.snapshot()
    assert snap["requests"] == 8000
    assert snap["by_client"] == {"bookbuyer": 4000}
    assert snap["by_status"] == {"200": 4000, "0": 4000}


def test_atomic_write_and_read(tmp_path: Path) -> None:
    s = Stats("bookbuyer", clock=_clock([1.0, 2.0, 3.0]))
    s.record_client(200, "bookstore-v2", None)
    target = tmp_path / "pod" / "stats.json"  # parent created on demand
    written = s.write(target)
    assert read_stats(target) == written
    assert written["time"] == 2.0 and written["started"] == 1.0
    s.record_client(200, "bookstore-v2", None)
    s.write(target)
    doc = read_stats(target)
    assert doc is not None and doc["requests"] == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["stats.json"]  # no temp files left


def test_read_stats_tolerates_missing_partial_and_non_objects(tmp_path: Path) -> None:
    assert read_stats(tmp_path / "missing.json") is None
    partial = tmp_path / "partial.json"
    partial.write_text('{"app": "bookbuyer", "requ')
    assert read_stats(partial) is None
    partial.write_text("[1, 2]")
    assert read_stats(partial) is None
    partial.write_bytes(b"\xff\xfe")
    assert read_stats(partial) is None
    assert read_stats(tmp_path) is None  # a directory


def test_stats_writer_writes_periodically_and_on_stop(tmp_path: Path) -> None:
    s = Stats("bookbuyer")
    target = tmp_path / "stats.json"
    lines: list[str] = []
    writer = StatsWriter(s, target, interval=0.02, log=lines.append, log_interval=0.0)
    writer.start()
    try:
        for _ in range(200):
            if writer.writes >= 2:
                break
            threading.Event().wait(0.01)
        assert writer.writes >= 2
        assert read_stats(target) is not None
        s.record_client(200, "bookstore-v1", None)
        s.record_client(200, "bookstore-v1", None)
    finally:
        writer.stop()
    assert not writer.is_alive()
    doc = read_stats(target)
    assert doc is not None and doc["requests"] == 2
    assert any("+2 req (ok +2, fail +0)" in line and "bookstore-v1=+2" in line for line in lines), lines


def test_stats_writer_without_path_only_logs() -> None:
    s = Stats("bookstore-v1")
    lines: list[str] = []
    writer = StatsWriter(s, None, log=lines.append, log_interval=0.0)
    writer.tick()
    s.record_server("/buy-a-book/new", "bookbuyer", 200)
    s.record_restock(True)
    writer.tick()
    writer.tick()  # nothing changed: no line
    assert len(lines) == 1
    assert "client bookbuyer=+1" in lines[0] and "restock ok +1 fail +0" in lines[0]
    assert writer.writes == 0


def test_summary_line_none_when_idle() -> None:
    s = Stats("bookwarehouse")
    snap = s.snapshot()
    assert summary_line(snap, s.snapshot()) is None
