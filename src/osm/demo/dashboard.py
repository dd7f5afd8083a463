"""Pure rendering for the `osm demo` terminal dashboard (no I/O besides `collect`).

`collect` reads the apps' stats.json files, `rates`/`build_rows` turn two successive snapshots into
per-second rates, `render` draws them as a rich Table plus a panel of recent mesh events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .stats import STATS_FILE, read_stats

MAX_EVENTS: Final = 8
APP_ORDER: Final = ("bookbuyer", "bookthief", "bookstore", "bookwarehouse")


@dataclass(frozen=True)
class AppRow:
    app: str
    pod: str
    namespace: str
    req_per_s: float
    ok_per_s: float
    fail_per_s: float
    versions_per_s: dict[str, float]  # clients: which bookstore version answered
    total_requests: int
    last_error: str | None
    clients_per_s: dict[str, float] = field(default_factory=dict)  # servers: who called
    restock_ok_per_s: float = 0.0  # bookstore -> bookwarehouse
    restock_fail_per_s: float = 0.0


def _num(doc: Mapping[str, Any], key: str) -> float:
    value = doc.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _counts(doc: Mapping[str, Any], key: str) -> dict[str, float]:
    value = doc.get(key)
    if not isinstance(value, dict):
        return {}
    return {str(k): _num(value, k) for k in value}


def rates(prev: Mapping[str, Any] | None, cur: Mapping[str, Any]) -> AppRow:
    """Per-second rates between two snapshots of one app (by their "time" fields).

    No previous snapshot, no time elapsed, or a restarted app (different "started") gives rates of 0.
    """
    dt = _num(cur, "time") - _num(prev, "time") if prev is not None else 0.0
    fresh = prev is None or dt <= 0 or prev.get("started") != cur.get("started")

    def rate(key: str) -> float:
        if fresh or prev is None:
            return 0.0
        return max(0.0, _num(cur, key) - _num(prev, key)) / dt

    def rate_map(key: str) -> dict[str, float]:
        now = _counts(cur, key)
        if fresh or prev is None:
            return dict.fromkeys(now, 0.0)
        before = _counts(prev, key)
        return {k: max(0.0, v - before.get(k, 0.0)) / dt for k, v in now.items()}

    last_error = cur.get("last_error")
    return AppRow(
        app=str(cur.get("app") or "?"),
        pod=str(cur.get("pod") or ""),
        namespace=str(cur.get("namespace") or ""),
        req_per_s=rate("requests"),
        ok_per_s=rate("success"),
        fail_per_s=rate("failure"),
        versions_per_s=rate_map("by_version"),
        total_requests=int(_num(cur, "requests")),
        last_error=str(last_error) if last_error else None,
        clients_per_s=rate_map("by_client"),
        restock_ok_per_s=rate("restock_success"),
        restock_fail_per_s=rate("restock_failure"),
    )


def _order(row: AppRow) -> tuple[int, str, str]:
    for i, name in enumerate(APP_ORDER):
        if row.app == name or row.app.startswith(name + "-"):
            return i, row.app, row.pod
    return len(APP_ORDER), row.app, row.pod


def build_rows(prev: Mapping[str, Mapping[str, Any]], cur: Mapping[str, Mapping[str, Any]]) -> list[AppRow]:
    """Rows for every app in `cur` (as returned by `collect`), rated against `prev`, in demo order."""
    return sorted((rates(prev.get(key), doc) for key, doc in cur.items()), key=_order)


def collect(pod_dirs: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Read `<pod_dir>/stats.json` of each pod dir (a path to a .json file is read as is).

    Keyed by "namespace/pod" from the document (the path when those are missing); missing or partial
    files are skipped.
    """
    out: dict[str, dict[str, Any]] = {}
    for pod_dir in pod_dirs:
        path = pod_dir if pod_dir.suffix == ".json" else pod_dir / STATS_FILE
        doc = read_stats(path)
        if doc is None:
            continue
        ns, pod = doc.get("namespace"), doc.get("pod")
        out[f"{ns}/{pod}" if ns and pod else str(pod_dir)] = doc
    return out


def _short_version(name: str) -> str:
    return name.removeprefix("bookstore-")


def _rate_text(values: Mapping[str, float], label: Callable[[str], str] = str) -> Text:
    text = Text()
    for i, (name, value) in enumerate(sorted(values.items())):
        if i:
            text.append("  ")
        text.append(f"{label(name)} {value:.1f}/s", style="bold" if value > 0 else "dim")
    return text


def _detail(row: AppRow) -> Text:
    if row.versions_per_s:
        return _rate_text(row.versions_per_s, _short_version)
    text = Text()
    if row.clients_per_s:
        text.append("from ", style="dim")
        text.append_text(_rate_text(row.clients_per_s))
    if row.restock_ok_per_s or row.restock_fail_per_s:
        if text:
            text.append("  ")
        text.append("restock ", style="dim")
        text.append(f"{row.restock_ok_per_s:.1f}/s", style="green")
        text.append(" / ")
        text.append(f"{row.restock_fail_per_s:.1f}/s", style="red")
    return text


def render(rows: list[AppRow], mode: str, events: list[str]) -> RenderableType:
    """The dashboard: one table row per app, then a panel with the last few mesh events."""
    table = Table(
        title=Text.assemble("OSM bookstore demo — traffic mode: ", (mode, "bold magenta")),
    )
    table.add_column("App", style="bold cyan", no_wrap=True)
    table.add_column("Pod", no_wrap=True, overflow="ellipsis", max_width=16)
    table.add_column("Req/s", justify="right", no_wrap=True, min_width=5)
    table.add_column("OK/s", justify="right", style="green", no_wrap=True, min_width=5)
    table.add_column("Fail/s", justify="right", style="red", no_wrap=True, min_width=6)
    table.add_column("Version / callers", min_width=22)
    table.add_column("Total", justify="right", no_wrap=True)
    table.add_column("Last error", style="red", overflow="fold", min_width=20)
    for row in rows:
        table.add_row(
            Text(row.app),
            Text(row.pod.rsplit("-", 1)[-1] if row.pod.count("-") >= 2 else row.pod),
            Text(f"{row.req_per_s:.1f}"),
            Text(f"{row.ok_per_s:.1f}", style="bold green" if row.ok_per_s > 0 else "dim green"),
            Text(f"{row.fail_per_s:.1f}", style="bold red" if row.fail_per_s > 0 else "dim red"),
            _detail(row),
            Text(str(row.total_requests)),
            Text(row.last_error or ""),
        )
    if not rows:
        table.add_row(Text("(no apps reporting yet)", style="dim"), *[Text("")] * 7)
    recent = events[-MAX_EVENTS:]
    body = Text("\n".join(recent)) if recent else Text("(no events yet)", style="dim")
    return Group(table, Panel(body, title="Mesh events", title_align="left", border_style="blue"))
