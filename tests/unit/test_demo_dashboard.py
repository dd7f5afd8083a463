from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from osm.demo.dashboard import AppRow, build_rows, collect, rates, render
from osm.demo.stats import Stats


def _snap(t: float, requests: int, success: int, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "app": "bookbuyer",
        "pod": "bookbuyer-1",
        "namespace": "bookbuyer",
        "time": t,
        "started": 50.0,
        "requests": requests,
        "success": success,
        "failure": requests - success,
        "by_status": {},
        "by_version": {},
        "by_path": {},
        "by_client": {},
        "restock_success": 0,
        "restock_failure": 0,
        "last_error": None,
    }
    doc.update(extra)
    return doc


def _text(renderable: Any) -> str:
    console = Console(record=True, width=120)
    console.print(renderable)
    return console.export_text()


def test_rates_from_two_snapshots() -> None:
    prev = _snap(100.0, 10, 8, by_version={"bookstore-v1": 5, "bookstore-v2": 3})
    cur = _snap(
        102.0,
        40,
        30,
        by_version={"bookstore-v1": 29, "bookstore-v2": 3, "bookstore-v3": 2},
        last_error="GET /buy-a-book/new: HTTP 403 Forbidden",
    )
    row = rates(prev, cur)
    assert (row.app, row.pod, row.namespace) == ("bookbuyer", "bookbuyer-1", "bookbuyer")
    assert (row.req_per_s, row.ok_per_s, row.fail_per_s) == (15.0, 11.0, 4.0)
    assert row.versions_per_s == {"bookstore-v1": 12.0, "bookstore-v2": 0.0, "bookstore-v3": 1.0}
    assert row.total_requests == 40
    assert row.last_error == "GET /buy-a-book/new: HTTP 403 Forbidden"


def test_rates_first_snapshot_restart_and_no_elapsed_time_are_zero() -> None:
    cur = _snap(102.0, 40, 30, by_version={"bookstore-v1": 29})
    for prev in (None, _snap(102.0, 10, 10), _snap(100.0, 10, 10, started=1.0)):
        row = rates(prev, cur)
        assert (row.req_per_s, row.ok_per_s, row.fail_per_s) == (0.0, 0.0, 0.0)
        assert row.versions_per_s == {"bookstore-v1": 0.0}
        assert row.total_requests == 40


def test_rates_for_a_server_and_malformed_fields() -> None:
    prev = _snap(10.0, 0, 0, app="bookstore-v1", by_client={"bookbuyer": 0}, restock_success=0)
    cur = _snap(
        10.5, 5, 5, app="bookstore-v1", by_client={"bookbuyer": 5}, restock_success=4, restock_failure=1
    )
    cur["by_status"] = "garbage"
    cur["by_version"] = None
    row = rates(prev, cur)
    assert row.clients_per_s == {"bookbuyer": 10.0}
    assert (row.restock_ok_per_s, row.restock_fail_per_s) == (8.0, 2.0)
    assert row.versions_per_s == {}
    assert rates(None, {}).app == "?"


def test_render_table_with_apps_mode_versions_and_events() -> None:
    versions = {"bookstore-v1": 12.0, "bookstore-v2": 4.0}
    error = "GET /books-bought: HTTP 403 [RBAC]"
    rows = [
        AppRow("bookbuyer", "bookbuyer-1", "bookbuyer", 10.0, 10.0, 0.0, versions, 120, None),
        AppRow("bookthief", "bookthief-1", "bookthief", 10.0, 0.0, 10.0, {}, 80, error),
        AppRow(
            "bookstore-v1", "bookstore-v1-1", "bookstore", 5.0, 5.0, 0.0, {}, 60, None,
            clients_per_s={"bookbuyer": 5.0}, restock_ok_per_s=2.5,
        ),
    ]  # fmt: skip
    events = [f"event {i}" for i in range(12)]
    out = render(rows, "SMI", events)
    assert isinstance(out, Group)
    assert isinstance(out.renderables[0], Table)
    text = _text(out)
    for name in ("bookbuyer", "bookthief", "bookstore-v1", "SMI", "v1 12.0/s", "v2 4.0/s", "bookbuyer 5.0/s"):
        assert name in text, name
    assert "403 [RBAC]" in text  # error text is not parsed as markup
    assert "restock" in text and "2.5/s" in text
    assert "Mesh events" in text and "event 11" in text and "event 4" in text
    assert "event 3" not in text  # only the last 8 events
    assert "permissive" in _text(render(rows, "permissive", []))


def test_render_empty() -> None:
    text = _text(render([], "permissive", []))
    assert "permissive" in text and "no apps reporting" in text and "no events yet" in text


def test_collect_and_build_rows(tmp_path: Path) -> None:
    dirs = []
    for app, ns in (
        ("bookwarehouse", "bookwarehouse"),
        ("bookbuyer", "bookbuyer"),
        ("bookstore-v2", "bookstore"),
    ):
        d = tmp_path / f"{ns}_{app}"
        d.mkdir()
        s = Stats(app, pod=f"{app}-0", namespace=ns)
        s.write(d / "stats.json")
        dirs.append(d)
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "stats.json").write_text('{"app": ')
    (tmp_path / "anon").mkdir()
    (tmp_path / "anon" / "stats.json").write_text(json.dumps({"app": "mystery"}))
    dirs += [tmp_path / "partial", tmp_path / "missing", tmp_path / "anon"]
    cur = collect(dirs)
    assert set(cur) == {
        "bookwarehouse/bookwarehouse-0",
        "bookbuyer/bookbuyer-0",
        "bookstore/bookstore-v2-0",
        str(tmp_path / "anon"),
    }
    rows = build_rows({}, cur)
    assert [r.app for r in rows] == ["bookbuyer", "bookstore-v2", "bookwarehouse", "mystery"]
