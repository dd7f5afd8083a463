"""Turn bench/results/<name>.json into the headline summary (bench/results/summary.json) and a plot.

.venv/bin/python bench/report.py [--results bench/results/full.json [bench/results/permissive.json]]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ceiling import SATURATED
from bench.plot import plot
from bench.summary import summary_entries, write_summary

ROOT = Path(__file__).resolve().parents[1]


def _row(rows: list[dict[str, Any]], mode: str, xds: str = "sotw") -> dict[str, Any] | None:
    """The largest-N row of a mode (and xDS variant)."""
    found = [r for r in rows if r["mode"] == mode and r["xds"] == xds]
    return max(found, key=lambda r: r["n"]) if found else None


def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures of harness rows, by summary id."""
    return _figures(rows)[0]


def measured_n(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The number of proxies each of `figures(rows)` was measured at (its row's N)."""
    return _figures(rows)[1]


def _b1(row: dict[str, Any]) -> dict[str, Any]:
    """A row's cold start: the compiled fleet's when the row has one (its load side keeps up)."""
    compiled: dict[str, Any] | None = row.get("b1_compiled")
    return compiled if compiled is not None else row["b1"]


def _figures(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    out: dict[str, Any] = {}
    ns: dict[str, int] = {}
    smi, perm = _row(rows, "smi"), _row(rows, "permissive")
    if smi is not None:
        out["b1_smi_2000_s"] = _b1(smi)["seconds"] if smi["n"] >= 2000 else None
        for b2 in smi.get("b2", []):
            out[f"b2_p99_{b2['rate']}_s"] = b2["p99_s"]
        ratios = [b2["push_ratio"] for b2 in smi.get("b2", []) if b2.get("push_ratio") is not None]
        out["b2_push_ratio"] = max(ratios) if ratios else None
        if smi.get("b3"):
            out["b3_p99_s"] = smi["b3"]["p99_s"]
            out["b3_order_violations"] = sum(r["b3"]["order_violations"] for r in rows if r.get("b3"))
        out["b4_mb_per_proxy"] = smi["b4"]["mb_per_proxy"]
        out["b4_idle_cores"] = smi["b4"]["idle_cores"]
        if smi.get("ceiling") and smi["b5"].get("seconds"):
            # Against the same messages when the push sent several per proxy; else they coincide.
            same = smi.get("ceiling_same_messages") or smi["ceiling"]
            out["b5_ratio_ceiling"] = round(smi["b5"]["seconds"] / same["push_s"], 2)
            out["b5_ratio_ceiling_one_message"] = round(smi["b5"]["seconds"] / smi["ceiling"]["push_s"], 2)
        if smi.get("serialize_s") and smi["b5"].get("seconds"):
            out["b5_ratio_serialize"] = round(smi["b5"]["seconds"] / smi["serialize_s"], 2)
        ns = dict.fromkeys(out, smi["n"])
    if perm is not None and perm["n"] >= 2000:
        out["b1_permissive_2000_s"] = _b1(perm)["seconds"]
        out["b1_permissive_2000_cp_cpu_s"] = _b1(perm)["cp_cpu_s"]
        out["b1_permissive_2000_load_util"] = _b1(perm)["load_util"]
        out["b1_permissive_2000_python_fleet_s"] = perm["b1"]["seconds"]
        out["b1_permissive_2000_reference_s"] = (perm.get("b1_reference") or {}).get("seconds")
        ns.update((k, perm["n"]) for k in out if k not in ns)
    return out, ns


def _util(raw: Any) -> float | None:
    """A load-side CPU share as rows hold it: a number, or a ceiling's {min, median, max}."""
    if isinstance(raw, dict):
        raw = raw.get("median")
    return float(raw) if isinstance(raw, int | float) else None


def load_bound(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The target figures whose measurement saturated the load side's core (`load_util` >= 0.95 in the
    run itself or in the ceiling it is judged against), each with why: such a run measured the load, not
    the control plane, and does not count."""
    smi, perm = _row(rows, "smi"), _row(rows, "permissive")
    checks: list[tuple[str, str, Any]] = []
    if smi is not None:
        checks.append(("b1_smi_2000_s", "the cold start", _b1(smi).get("load_util")))
        checks.append(("b5_ratio_ceiling", "the full push", smi.get("b5", {}).get("load_util")))
        same = smi.get("ceiling_same_messages") or smi.get("ceiling") or {}
        checks.append(("b5_ratio_ceiling", "its ceiling", (same.get("raw") or {}).get("load_util")))
    if perm is not None:
        checks.append(("b1_permissive_2000_s", "the cold start", _b1(perm).get("load_util")))
    out: dict[str, str] = {}
    for figure, what, raw in checks:
        util = _util(raw)
        if util is not None and util >= SATURATED and figure not in out:
            out[figure] = f"load-bound: the simulated fleet used {util:.2f} of its core in {what}"
    return out


def b6_figures(data: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of an envoy_churn.py result."""
    b6 = data["b6"]
    out: dict[str, Any] = {
        "b6_update_rejected": b6["update_rejected_total"],
        "b6_failed_requests": b6["failed_requests"],
    }
    for kind, latency in b6["apply_latency"].items():
        out[f"b6_apply_{kind}_s"] = latency["p50_s"]
    return out


def plot_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in rows:
        base = {"mode": r["mode"], "xds": r["xds"], "n": r["n"]}
        out.append({"bench": "B1", **base, "seconds": r["b1"]["seconds"]})
        out.append(
            {"bench": "B4", **base, "rss_mb": r["b4"]["rss_n_mb"], "mb_per_proxy": r["b4"]["mb_per_proxy"]}
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--results",
        type=Path,
        nargs="+",
        default=[ROOT / "bench" / "results" / "full.json"],
        help="harness results; the rows of several files are combined",
    )
    ap.add_argument("--b6", type=Path, help="envoy_churn.py output to include (B6)")
    args = ap.parse_args()
    rows = [row for path in args.results for row in json.loads(path.read_text())["rows"]]
    found = figures(rows)
    if args.b6 is not None:
        found.update(b6_figures(json.loads(args.b6.read_text())))
    entries = summary_entries(found, n=measured_n(rows), load_bound=load_bound(rows))
    first = args.results[0]
    write_summary(entries, first.parent / "summary.json")
    write_summary(entries, first.parent / "summary.md")
    plot(plot_rows(rows), first.parent / f"{first.stem}.png")
    print(json.dumps(entries, indent=1))


if __name__ == "__main__":
    main()
