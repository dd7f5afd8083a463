"""Convergence of a policy edit on the local mesh: from writing the manifest to traffic following it.

Runs the bookstore demo on the local runtime (root, Linux) with an extra meshed pod `tester` (service
account bookbuyer) and measures, `--repeat` times:
  revoke  - bookbuyer's TrafficTargets edited away  -> tester's request no longer succeeds
  restore - the TrafficTargets written back          -> tester's request succeeds again
  split   - the TrafficSplit moved 100% to v2         -> every answer comes from bookstore-v2
The probe is one HTTP request through the tester's sidecar every ~30 ms, so the figures include up to
that much sampling delay.

    .venv/bin/python bench/local_convergence.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import machine
from osm.cmd.controller import Settings
from osm.testing.localmesh import LocalMesh

ROOT = Path(__file__).resolve().parents[1]
TESTER = """
apiVersion: v1
kind: Pod
metadata: {name: tester, namespace: bookbuyer, labels: {app: tester}}
spec:
  serviceAccountName: bookbuyer
  containers: [{name: shell, command: [sleep, "3600"]}]
"""
URL = "http://bookstore.bookstore:14001/books-bought"
SRC = "  - {kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}\n"
NOBODY = "  - {kind: ServiceAccount, name: nobody, namespace: bookbuyer}\n"
SPLIT_OLD = "{service: bookstore-v1, weight: 50}\n  - {service: bookstore-v2, weight: 50}"
SPLIT_NEW = "{service: bookstore-v1, weight: 0}\n  - {service: bookstore-v2, weight: 100}"


def timed(m: LocalMesh, edit: Callable[[], None], done: Callable[[], bool], timeout: float = 30) -> float:
    t0 = time.monotonic()
    edit()
    while time.monotonic() - t0 < timeout:
        if done():
            return time.monotonic() - t0
    raise TimeoutError("no convergence")


def version(m: LocalMesh) -> str:
    cp = m.exec("bookbuyer", "tester", "curl", "-s", "-D", "-", "-o", "/dev/null", "--max-time", "2", URL)
    for line in cp.stdout.splitlines():
        if line.lower().startswith("identity:"):
            return line.split(":", 1)[1].strip()
    return ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/local_convergence.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="osm-bench-"))
    manifests = work / "demo"
    shutil.copytree(ROOT / "demo", manifests)
    (manifests / "90-tester.yaml").write_text(TESTER)
    m = LocalMesh(manifests)
    results: dict[str, list[float]] = {"revoke": [], "restore": [], "split": []}
    policies, split = manifests / "40-policies.yaml", manifests / "50-traffic-split.yaml"
    good, good_split = policies.read_text(), split.read_text()
    try:
        m.up()
        m.wait_ready(
            [("bookbuyer", "tester"), ("bookstore", "bookstore-v1-"), ("bookstore", "bookstore-v2-")]
        )
        m.wait(lambda: m.curl("bookbuyer", "tester", URL) == 200, 60, "tester allowed")
        for _ in range(args.repeat):
            results["revoke"].append(
                timed(
                    m,
                    lambda: policies.write_text(good.replace(SRC, NOBODY)),
                    lambda: m.curl("bookbuyer", "tester", URL) != 200,
                )
            )
            results["restore"].append(
                timed(m, lambda: policies.write_text(good), lambda: m.curl("bookbuyer", "tester", URL) == 200)
            )
            results["split"].append(
                timed(
                    m,
                    lambda: split.write_text(good_split.replace(SPLIT_OLD, SPLIT_NEW)),
                    lambda: all(version(m) == "bookstore-v2" for _ in range(5)),
                )
            )
            split.write_text(good_split)
            time.sleep(2)
    finally:
        m.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        k: {
            "median_s": round(statistics.median(v), 3),
            "max_s": round(max(v), 3),
            "samples_s": [round(x, 3) for x in v],
        }
        for k, v in results.items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = Settings(local_dir=ROOT, state_dir=ROOT)
    data = {
        "machine": machine(),
        "repeat": args.repeat,
        "debounce": {"quiet_s": settings.debounce_quiet, "max_s": settings.debounce_max},
        "results": summary,
    }
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
