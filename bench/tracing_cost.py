"""What tracing costs a request: latency through two sidecars with MeshConfig tracing off and on.

The tracing e2e case's mesh on the local runtime (root, Linux): a client and a server pod, both meshed,
and a Zipkin collector (`osm.testing.zipkin`) outside the mesh. From inside the client pod, `--requests`
sequential HTTP requests on one connection, timed one by one; the MeshConfig's tracing (100% sampling)
is switched off and on between rounds, live, `--rounds` times each, alternately. Each row: p50, p90,
p99 and mean latency (ms) and requests per second, and with tracing on the spans the collector got.

    .venv/bin/python bench/tracing_cost.py [--requests 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.test_e2e_tracing import COLLECTOR, manifests, zipkin_configured

from bench.harness import machine
from osm.testing.localmesh import LocalMesh

ROOT = Path(__file__).resolve().parents[1]
PODS = [("client", "client"), ("server", "server")]
LOOP = """
import http.client, json, sys, time
n = int(sys.argv[1])
conn = http.client.HTTPConnection("server.server", 8080, timeout=5)
out = []
for i in range(n):
    t = time.perf_counter()
    conn.request("GET", "/bench")
    r = conn.getresponse()
    r.read()
    out.append(time.perf_counter() - t)
    if r.status != 200:
        sys.exit(f"request {i}: HTTP {r.status}")
print(json.dumps(out))
"""


def spans(m: LocalMesh) -> int:
    cp = m.exec("tracing", "jaeger", "curl", "-s", "--max-time", "5", f"{COLLECTOR}/api/v2/traces")
    return sum(len(t) for t in json.loads(cp.stdout or "[]"))


def received(m: LocalMesh, before: int, want: int, timeout: float = 30) -> int:
    """The spans the collector got since it had `before`, once there are `want` (or the time is up)."""
    deadline = time.monotonic() + timeout
    got = spans(m) - before
    while got < want and time.monotonic() < deadline:
        time.sleep(0.5)
        got = spans(m) - before
    return got


def switch(m: LocalMesh, tracing: bool) -> None:
    (m.manifests / "mesh.yaml").write_text(manifests(tracing))
    m.wait(lambda: all(zipkin_configured(m, *p) == tracing for p in PODS), 30, f"tracing {tracing}")


def round_of(m: LocalMesh, n: int) -> dict[str, float]:
    cp = m.exec("client", "client", sys.executable, "-c", LOOP, str(n), timeout=300)
    if cp.returncode != 0:
        raise RuntimeError(f"the request loop failed: {cp.stderr[-500:]}")
    lat = sorted(json.loads(cp.stdout))
    ms = [x * 1000 for x in lat]
    return {
        "p50_ms": round(ms[len(ms) // 2], 3),
        "p90_ms": round(ms[int(len(ms) * 0.9)], 3),
        "p99_ms": round(ms[int(len(ms) * 0.99)], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "rps": round(len(lat) / sum(lat), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/tracing_cost.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="osm-bench-"))
    (work / "manifests").mkdir()
    (work / "manifests" / "mesh.yaml").write_text(manifests(False))
    m = LocalMesh(work / "manifests")
    rows: list[dict[str, Any]] = []
    try:
        m.up()
        m.wait_ready([*PODS, ("tracing", "jaeger")])
        m.wait_steady(lambda: m.request("client", "client", "http://server.server:8080/") == (0, 200), "200")
        round_of(m, 100)  # warm the connections
        for i in range(args.rounds * 2):
            tracing = i % 2 == 1
            switch(m, tracing)
            before = spans(m)
            row: dict[str, Any] = {
                "tracing": tracing,
                "requests": args.requests,
                **round_of(m, args.requests),
            }
            if tracing:
                row["spans_received"] = received(m, before, 2 * args.requests)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        m.down()
        shutil.rmtree(work, ignore_errors=True)

    def median(tracing: bool, key: str) -> float:
        return statistics.median(r[key] for r in rows if r["tracing"] is tracing)

    summary = {
        k: {"off": median(False, k), "on": median(True, k)} for k in ("p50_ms", "p90_ms", "p99_ms", "rps")
    }
    result = {
        "machine": machine(),
        "params": vars(args) | {"out": str(args.out)},
        "rows": rows,
        "summary": summary,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
