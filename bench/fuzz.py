"""Fuzzing at scale: every target of osm.testing.fuzz over many inputs, with atheris (coverage-guided)
for the byte-level ones. Writes bench/results/fuzz.json: inputs, findings and seconds per target.

    .venv/bin/python bench/fuzz.py [--inputs 200000] [--atheris-runs 200000] [--out bench/results/fuzz.json]

A finding is an input the code under test crashed on or rejected without a clear message; the first
few of each target are kept in the results.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# atheris targets: bytes in, the same checks as the structured targets
ATHERIS = {
    "atheris-manifest": "check_manifest(data)",
    "atheris-sotw-request": "check_request_bytes(data, False)",
    "atheris-delta-request": "check_request_bytes(data, True)",
}
ATHERIS_MAIN = """
import sys, atheris
with atheris.instrument_imports(include=["osm"]):
    from osm.testing.fuzz import Finding, check_manifest, check_request_bytes

def one(data):
    try:
        {call}
    except Finding as e:
        print("FINDING", repr(e)[:300], flush=True)

atheris.Setup(sys.argv, one)
atheris.Fuzz()
"""


def run_structured(name: str, inputs: int, seed: int) -> dict[str, object]:
    from osm.testing import fuzz

    target = fuzz.TARGETS[name]
    rnd = random.Random(seed)
    findings: list[str] = []
    started = time.perf_counter()
    for _ in range(inputs):
        try:
            target(rnd)
        except fuzz.Finding as e:
            findings.append(str(e)[:300])
    return {
        "inputs": inputs,
        "findings": len(findings),
        "first": sorted(set(findings))[:5],
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_atheris(name: str, runs: int) -> dict[str, object]:
    code = ATHERIS_MAIN.replace("{call}", ATHERIS[name])
    started = time.perf_counter()
    cp = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            f"-runs={runs}",
            "-max_len=4096",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        check=False,
    )
    out = cp.stdout + cp.stderr
    done = re.search(r"Done (\d+) runs", out)
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    findings = [line for line in out.splitlines() if line.startswith("FINDING")]
    crashed = cp.returncode != 0
    return {
        "inputs": int(done.group(1)) if done else int(execs.group(1)) if execs else 0,
        "findings": len(findings) + int(crashed),
        "first": findings[:5] + ([out[-1500:]] if crashed else []),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=int, default=200_000, help="inputs per structured target")
    p.add_argument("--atheris-runs", type=int, default=200_000, help="runs per atheris target")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fuzz.json")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from osm.testing.fuzz import TARGETS

    results: dict[str, dict[str, object]] = {}
    for name in TARGETS:
        results[name] = run_structured(name, args.inputs, args.seed)
        print(name, results[name], flush=True)
    for name in ATHERIS:
        results[name] = run_atheris(name, args.atheris_runs)
        print(name, {k: v for k, v in results[name].items() if k != "first"}, flush=True)
    total = sum(int(r["inputs"]) for r in results.values())  # type: ignore[call-overload]
    findings = sum(int(r["findings"]) for r in results.values())  # type: ignore[call-overload]
    doc = {"total_inputs": total, "total_findings": findings, "targets": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=True))
    print(f"{total} inputs, {findings} findings -> {args.out}")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
