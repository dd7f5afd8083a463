"""The headline table: each benchmark figure against the issue's target, with the anchor it beats.

`summary_entries(results, n=...)` takes raw figures keyed by short id (a missing id or a None value is
reported as not met), and optionally the number of proxies each was measured at (`n` in each entry: the
targets hold at 2,000; a quick run's figures are from fewer):

| id | figure | target |
|---|---|---|
| `b1_smi_2000_s` | B1 cold start, SMI (non-permissive), 2000 proxies, seconds to the last full ACK | <= 10 |

(The B1 figures come from a row's `b1_compiled`, the compiled fleet's cold start, when it has one.)

| `b1_permissive_2000_s` | B1 cold start, permissive mode, 2000 proxies, seconds | <= 20 |
| `b1_permissive_2000_cp_cpu_s` | the control plane's CPU-seconds in that cold start | report only |
| `b1_permissive_2000_load_util` | the load side's CPU share then (~1: the load set the time) | report only |
| `b1_permissive_2000_reference_s` | bare grpc.aio cold start of the same messages | report only |
| `b1_permissive_2000_python_fleet_s` | that cold start with the Python fleet (simproxy.py) | report only |
| `b2_p99_10_s` | B2 endpoint-churn convergence p99 at 10 changes/s, seconds | <= 0.3 |
| `b2_p99_50_s` | B2 endpoint-churn convergence p99 at 50 changes/s, seconds | <= 0.5 |
| `b2_push_ratio` | B2 proxies pushed / theoretical minimum (clients of the changed services) | <= 1 |
| `b3_p99_s` | B3 policy-change convergence p99, seconds | <= 0.5 |
| `b3_order_violations` | B3 make-before-break violations (RDS ACKed before the CDS/EDS it needs) | == 0 |
| `b4_mb_per_proxy` | B4 (RSS(N) - RSS(0)) / N, MB | <= 0.25 |
| `b4_idle_cores` | B4 idle control-plane CPU, cores (CPU-s / wall-s) | <= 0.01 |
| `b5_ratio_ceiling` | B5 full push / transport ceiling (bench/ceiling.py): same N, bytes, messages | <= 1.5 |
| `b5_ratio_ceiling_one_message` | B5 full push time / the same bytes as one message per proxy | report only |
| `b5_ratio_serialize` | B5 full push time / pure serialization cost of the same responses | report only |
| `b6_update_rejected` | B6 `update_rejected` over every real sidecar while policies change | == 0 |
| `b6_failed_requests` | B6 failed requests of steady traffic through two sidecars during the edits | == 0 |
| `b6_apply_<TYPE>_s` | B6 apply latency p50 per xDS type (edit to Envoy's update_time), s | report only |

`write_summary(entries, path)` writes JSON, or a Markdown table when `path` ends in `.md`.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}


@dataclass(frozen=True)
class Target:
    id: str
    name: str
    unit: str
    op: str | None  # None: reported without a target
    threshold: float | None
    anchor: str

    @property
    def text(self) -> str:
        if self.op is None or self.threshold is None:
            return "report only"
        return f"{self.op} {self.threshold:g}"

    def met(self, value: float | None) -> bool | None:
        """Whether `value` meets the target; None for report-only rows. A missing value never meets."""
        if self.op is None or self.threshold is None:
            return None
        if value is None or math.isnan(value):
            return False
        return _OPS[self.op](value, self.threshold)


_B1 = (
    "OSM: 2.3 cores and 2.2 GB at 1,600 pods (perf-scale doc 2022); 200 pods converged in 20-40 s (2021). "
    "Here 2,000 mTLS connections alone take ~5 s"
)
_B2 = "OSM: batches changes in a 2-10 s window; Istio: 100 ms debounce (10 s max)"

TARGETS: tuple[Target, ...] = (
    Target("b1_smi_2000_s", "B1 cold start SMI 2000 proxies (s)", "s", "<=", 10, _B1),
    Target("b1_permissive_2000_s", "B1 cold start permissive 2000 proxies (s)", "s", "<=", 20, _B1),
    Target(
        "b1_permissive_2000_cp_cpu_s",
        "B1 permissive 2000: control-plane CPU (s)",
        "s",
        None,
        None,
        "With a load side that keeps up, the cold start's floor on one control-plane core",
    ),
    Target(
        "b1_permissive_2000_load_util",
        "B1 permissive 2000: load-side CPU share",
        "cores",
        None,
        None,
        "~1.0 means the simulated fleet's core, not the control plane, set the time",
    ),
    Target(
        "b1_permissive_2000_reference_s",
        "B1 permissive 2000: bare transport, same messages (s)",
        "s",
        None,
        None,
        "2,000 mTLS connections, then the cold start's messages pushed from pre-serialized bytes "
        "(bench/ceiling.py): what the transport and the simulated fleet alone need",
    ),
    Target(
        "b1_permissive_2000_python_fleet_s",
        "B1 permissive 2000 with the Python fleet (s)",
        "s",
        None,
        None,
        "simproxy.py's fleet, whose core saturates here: the load's time (the B1 figures above come from "
        "the compiled fleet, bench/loadgen.c, when the run has one)",
    ),
    Target("b2_p99_10_s", "B2 EDS convergence p99 at 10 changes/s (s)", "s", "<=", 0.3, _B2),
    Target("b2_p99_50_s", "B2 EDS convergence p99 at 50 changes/s (s)", "s", "<=", 0.5, _B2),
    Target(
        "b2_push_ratio",
        "B2 proxies pushed / minimum",
        "ratio",
        "<=",
        1.0,
        "OSM recomputes and pushes every proxy on a change; here only the changed services' clients "
        "(below 1 when a batch coalesces several changes for the same proxy)",
    ),
    Target(
        "b3_p99_s",
        "B3 policy convergence p99 (s)",
        "s",
        "<=",
        0.5,
        "OSM: ADS completion 10-20 s at 200 pods (2021); Istio buckets 0.1-30 s",
    ),
    Target(
        "b3_order_violations",
        "B3 make-before-break order violations",
        "count",
        "==",
        0,
        "CDS/EDS for a new backend must be ACKed before the RDS that references it",
    ),
    Target(
        "b4_mb_per_proxy",
        "B4 memory per proxy (MB)",
        "MB",
        "<=",
        0.25,
        "OSM: ~1 MB per pod; Istio: ~0.75 MB per sidecar. Transport alone ~94 KiB per mTLS connection here",
    ),
    Target(
        "b4_idle_cores",
        "B4 idle CPU (cores)",
        "cores",
        "<=",
        0.01,
        "OSM: 0.03-0.04 cores idle; Kuma's 1 s tick is the anti-pattern",
    ),
    Target(
        "b5_ratio_ceiling",
        "B5 full push / transport ceiling, same messages",
        "x",
        "<=",
        1.5,
        "Bare grpc.aio ceiling (bench/ceiling.py): warm 100 KB push to 2,000 streams ~0.5 s here",
    ),
    Target(
        "b5_ratio_ceiling_one_message",
        "B5 full push / the same bytes as one message per proxy",
        "x",
        None,
        None,
        "A change to two types is two responses and two ACKs per proxy; this ceiling sends one",
    ),
    Target(
        "b5_ratio_serialize",
        "B5 full push / serialization cost",
        "x",
        None,
        None,
        "Building messages costs 10-25x serializing them; cached Any bytes make assembly nearly free",
    ),
    Target(
        "b6_update_rejected",
        "B6 Envoy updates rejected while policies change",
        "count",
        "==",
        0,
        "Every pushed config must be accepted by real Envoy; a NACK means a generator bug",
    ),
    Target(
        "b6_failed_requests",
        "B6 failed requests under policy churn",
        "count",
        "==",
        0,
        "Steady traffic through two sidecars must not notice config changes (make before break)",
    ),
    *(
        Target(
            f"b6_apply_{t}_s",
            f"B6 apply latency {t} p50, edit to Envoy (s)",
            "s",
            None,
            None,
            "OSM: ADS completion 10-20 s at 200 pods (2021); includes the file watch and the debounce here",
        )
        for t in ("CDS", "EDS", "LDS", "RDS", "SDS")
    ),
)


def _value(raw: Any) -> float | None:
    if raw is None or isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)


def summary_entries(
    results: Mapping[str, Any],
    targets: Iterable[Target] = TARGETS,
    *,
    n: Mapping[str, int] | None = None,
    load_bound: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One entry per target: id, name, n, value, unit, target, anchor, met (None only for report-only
    rows); n is the number of proxies the value was measured at, when known. A figure in `load_bound`
    (id -> why) was measured with the load side's core saturated: it does not count, so it is not met
    whatever its value, and its entry says why in `note`."""
    out = []
    for t in targets:
        value = _value(results.get(t.id))
        entry = {
            "id": t.id,
            "name": t.name,
            "n": (n or {}).get(t.id),
            "value": value,
            "unit": t.unit,
            "target": t.text,
            "anchor": t.anchor,
            "met": t.met(value),
        }
        why = (load_bound or {}).get(t.id)
        if why is not None and entry["met"] is not None:
            entry["met"] = False
            entry["note"] = f"does not count: {why}"
        out.append(entry)
    return out


def all_met(entries: Iterable[Mapping[str, Any]]) -> bool:
    """True when every entry with a target is met (report-only entries are ignored)."""
    return all(e["met"] for e in entries if e["met"] is not None)


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _markdown(entries: list[dict[str, Any]]) -> str:
    lines = ["| benchmark | N | value | target | met | anchor |", "|---|---|---|---|---|---|"]
    for e in entries:
        met = "—" if e["met"] is None else ("yes" if e["met"] else "**no**")
        if e.get("note"):
            met += f" ({e['note']})"
        n = "—" if e.get("n") is None else str(e["n"])
        lines.append(f"| {e['name']} | {n} | {_cell(e['value'])} | {e['target']} | {met} | {e['anchor']} |")
    return "\n".join(lines) + "\n"


def write_summary(entries: list[dict[str, Any]], path: Path) -> None:
    """Write `entries` as a Markdown table (`*.md`) or as JSON (anything else)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".md":
        path.write_text(_markdown(entries))
    else:
        path.write_text(json.dumps(entries, indent=2) + "\n")
