"""Fault-injection figures on the local mesh: failed requests of the pairs a fault does not concern, and
the time the mesh takes to converge again (tests/e2e/test_fault_injection.py, run `--rounds` times).

    .venv/bin/python bench/faults.py [--rounds 3] [--out bench/results/faults.json]

Needs root (network namespaces). Each round is one run of the e2e module on a fresh local mesh.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "faults.json")
    args = p.parse_args()
    rounds = []
    for i in range(args.rounds):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            env = {**os.environ, "OSM_FAULT_FIGURES": f.name}
            cp = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "tests/e2e/test_fault_injection.py",
                ],
                cwd=ROOT,
                env=env,
                check=False,
            )
            if cp.returncode != 0:
                print(f"round {i + 1}: the fault-injection tests failed", file=sys.stderr)
                return cp.returncode
            rounds.append(json.loads(Path(f.name).read_text()))
    failed = sum(
        pair["failed"] for r in rounds for fault in r.values() for pair in fault.get("pairs", {}).values()
    )
    requests = sum(
        pair["requests"] for r in rounds for fault in r.values() for pair in fault.get("pairs", {}).values()
    )
    summary = {
        "rounds": rounds,
        "unaffected_pairs": {"requests": requests, "failed": failed},
        "controller_restart_reconverged_s": [r["controller-kill"]["reconverged_s"] for r in rounds],
        "policy_edited_while_down_in_effect_s": [
            r["controller-kill-with-edit"]["policy_in_effect_s"] for r in rounds
        ],
        "sidecar_back_s": [r["sidecar-crash-and-crash-loop"]["sidecar_back_s"] for r in rounds],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1, sort_keys=True))
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
