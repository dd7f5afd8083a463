"""How long a real Envoy takes from exec to fully configured, per golden scenario, SotW and delta.

Fully configured = it holds exactly the listeners, clusters, routes and secrets generated for its pod,
with nothing warming and nothing rejected. Each pod's Envoy is started alone (one at a time) against a
running controller, `--repeat` times; the median and max are reported.

    .venv/bin/python bench/envoy_configure.py [--repeat 5] [--out bench/results/envoy_configure.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.golden.scenarios import SCENARIOS, load_state, proxy_resources, scenario_dir

from bench.harness import machine
from osm.cmd.controller import Settings
from osm.testing.controlplane import RunningController, start_sidecar
from osm.testing.envoycheck import holds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("bench/results/envoy_configure.json"))
    args = ap.parse_args()
    rows = []
    for scenario in SCENARIOS:
        expected = proxy_resources(load_state(scenario))
        for xds in ("sotw", "delta"):
            with tempfile.TemporaryDirectory() as tmp:
                settings = Settings(
                    local_dir=scenario_dir(scenario),
                    state_dir=Path(tmp) / "state",
                    ads_address="127.0.0.1:0",
                    watch=False,
                )
                with RunningController(settings) as ctrl:
                    for key, res in sorted(expected.items()):
                        times = []
                        for i in range(args.repeat):
                            t0 = time.monotonic()
                            proc = start_sidecar(ctrl, key[0], key[1], Path(tmp) / f"run{i}", xds=xds)
                            try:
                                proc.wait_for(
                                    lambda p=proc, r=res: holds(p, r),
                                    timeout=30,
                                    interval=0.01,
                                    what="full config",
                                )
                                times.append(time.monotonic() - t0)
                            finally:
                                proc.stop()
                        n_resources = sum(len(v) for v in res.by_type.values())
                        rows.append(
                            {
                                "scenario": scenario,
                                "xds": xds,
                                "pod": f"{key[0]}/{key[1]}",
                                "resources": n_resources,
                                "median_s": round(statistics.median(times), 3),
                                "max_s": round(max(times), 3),
                            }
                        )
                        print(json.dumps(rows[-1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine(), "repeat": args.repeat, "results": rows}
    args.out.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
