"""What the control plane's osm_* metrics cost at N proxies: the harness's SMI SotW row (B1 cold start,
B2 churn, B3 policy change, B4 memory and idle CPU, B5 full push) with the metrics on and off,
alternately, `--repeat` times each; medians in bench/results/metrics_cost.json.

    python bench/metrics_cost.py --n 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

FIGURES = {
    "b1_seconds": ("b1", "seconds"),
    "b1_cp_cpu_s": ("b1", "cp_cpu_s"),
    "b1_cp_peak_rss_mb": ("b1", "cp_peak_rss_mb"),
    "b4_rss_n_mb": ("b4", "rss_n_mb"),
    "b4_mb_per_proxy": ("b4", "mb_per_proxy"),
    "b4_idle_cores": ("b4", "idle_cores"),
    "b5_seconds": ("b5", "seconds"),
}


def figure(row: dict[str, Any], path: tuple[str, str]) -> float | None:
    part = row.get(path[0])
    value = part.get(path[1]) if isinstance(part, dict) else None
    return float(value) if isinstance(value, int | float) else None


def run(n: int, metrics: str, name: str) -> dict[str, Any]:
    cmd = [
        sys.executable, str(ROOT / "bench" / "harness.py"), "--n", str(n), "--modes", "smi", "--xds", "sotw",
        "--churn", "10", "--churn-seconds", "5", "--policy-changes", "5", "--idle", "10",
        "--name", name, "--metrics", metrics,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    row: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())["rows"][0]
    (RESULTS / f"{name}.json").unlink()
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for i in range(args.repeat):
        for metrics in ("on", "off"):
            rows[metrics].append(run(args.n, metrics, f"metrics-{metrics}-{i}"))
    medians = {
        m: {
            k: statistics.median(v for r in rs if (v := figure(r, path)) is not None)
            for k, path in FIGURES.items()
        }
        for m, rs in rows.items()
    }
    extra = {k: round(medians["on"][k] - medians["off"][k], 3) for k in FIGURES}
    out = {"n": args.n, "repeat": args.repeat, "median": medians, "metrics_minus_none": extra, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "metrics_cost.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"median": medians, "metrics_minus_none": extra}, indent=1))


if __name__ == "__main__":
    main()
