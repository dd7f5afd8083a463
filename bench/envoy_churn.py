"""B6: real Envoys carrying steady traffic while policies change (the local mesh; root, Linux).

Runs the bookstore demo on the local runtime with bookbuyer at a steady request rate (WAIT_MS, default 10
ms between requests, each on a fresh connection) through two sidecars to bookstore v1/v2, which restock
from bookwarehouse, which keeps its stock in Redis over a TCPRoute. Meanwhile it edits the manifests,
`--rounds` times over, each edit followed by `--settle` seconds:

  split        the TrafficSplit moves to 90/10 and back         (RDS on the clients)
  thief        bookthief is allowed to bookstore, then revoked   (LDS/RDS on bookstore; all of bookthief)
  route        an HTTPRouteGroup match is added to the rules, then removed   (RDS on bookstore)
  service      a new Service over the bookstore-v1 pods, then removed       (CDS/EDS/LDS/RDS on clients)
  egress       MeshConfig's enableEgress flips, then flips back             (LDS on every sidecar)

Per edit and xDS type, the apply latency is Envoy's own `update_time` stat (ms since the epoch, set when
it accepted the update) minus the time the manifest was written, the latest over every sidecar and
resource of that type; the next edit waits until the sidecars' stats stop changing. The run also
reports every sidecar's `update_rejected` and the failed requests of the apps (bookbuyer's requests,
bookstore's restocks, bookwarehouse's Redis calls) over the whole churn.

    .venv/bin/python bench/envoy_churn.py [--rounds 3] [--settle 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import machine
from osm.cmd.controller import Settings
from osm.demo.manifests import SIDECARS
from osm.testing.localmesh import LocalMesh

ROOT = Path(__file__).resolve().parents[1]
# app stats: (namespace, pod prefix, success key, failure key)
FLOWS = [
    ("bookbuyer", "bookbuyer-", "success", "failure"),
    ("bookstore", "bookstore-v1-", "restock_success", "restock_failure"),
    ("bookstore", "bookstore-v2-", "restock_success", "restock_failure"),
    ("bookwarehouse", "bookwarehouse-", "success", "failure"),
]
EXTRA_SERVICE = """apiVersion: v1
kind: Service
metadata: {name: bookstore-extra, namespace: bookstore}
spec:
  selector: {app: bookstore, version: v1}
  ports: [{name: http, port: 14001, targetPort: 14001}]
"""
ROUTE_GROUP_OLD = "  - name: buy-a-book\n"
ROUTE_GROUP_NEW = (
    "  - name: books-sold\n    pathRegex: /books-sold\n    methods: [GET]\n  - name: buy-a-book\n"
)
RULES_OLD = "matches: [buy-a-book, books-bought]"
RULES_NEW = "matches: [buy-a-book, books-bought, books-sold]"
SOURCES_OLD = "  sources:\n  - {kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}\n"
SOURCES_NEW = SOURCES_OLD + "  - {kind: ServiceAccount, name: bookthief, namespace: bookthief}\n"


@dataclass(frozen=True)
class Edit:
    name: str
    file: str
    pairs: tuple[tuple[str, str], ...] = ()  # (old, new) replacements; empty: write `create` or delete
    create: str | None = None


def edits() -> list[Edit]:
    split = "{service: bookstore-v1, weight: 50}\n  - {service: bookstore-v2, weight: 50}"
    moved = "{service: bookstore-v1, weight: 90}\n  - {service: bookstore-v2, weight: 10}"
    return [
        Edit("split", "50-traffic-split.yaml", ((split, moved),)),
        Edit("thief", "40-policies.yaml", ((SOURCES_OLD, SOURCES_NEW),)),
        Edit("route", "40-policies.yaml", ((ROUTE_GROUP_OLD, ROUTE_GROUP_NEW), (RULES_OLD, RULES_NEW))),
        Edit("service", "60-extra-service.yaml", create=EXTRA_SERVICE),
        Edit("egress", "00-mesh.yaml", (("enableEgress: true", "enableEgress: false"),)),
    ]


def apply(manifests: Path, e: Edit, forward: bool) -> None:
    path = manifests / e.file
    if e.create is not None:
        if forward:
            path.write_text(e.create)
        else:
            path.unlink()
        return
    text = path.read_text()
    for old, new in e.pairs:
        a, b = (old, new) if forward else (new, old)
        if a not in text:
            raise ValueError(f"{e.name}: {a!r} not in {path}")
        text = text.replace(a, b)
    path.write_text(text)


def xds_type(stat: str) -> str | None:
    """The xDS type of an Envoy subscription stat prefix (the part before `.update_time`)."""
    if stat == "cluster_manager.cds":
        return "CDS"
    if stat == "listener_manager.lds":
        return "LDS"
    if ".rds." in stat and stat.startswith("http."):
        return "RDS"
    if stat.startswith("sds."):
        return "SDS"
    if stat.startswith("cluster."):
        return "EDS"
    return None


def envoy_stats(m: LocalMesh) -> dict[str, dict[str, int]]:
    """Every sidecar's subscription stats (update_time, update_rejected), by pod."""
    return {f"{ns}/{prefix}": m.envoy_stats(ns, prefix, "update_") for ns, prefix in SIDECARS}


def applied(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], t_ms: int
) -> dict[str, float]:
    """Per xDS type, the latest update_time after `t_ms` over every sidecar and resource, in seconds."""
    latest: dict[str, float] = {}
    for pod, stats in after.items():
        for key, value in stats.items():
            if not key.endswith(".update_time") or value <= t_ms or value == before.get(pod, {}).get(key):
                continue
            kind = xds_type(key.removesuffix(".update_time"))
            if kind is not None:
                latest[kind] = max(latest.get(kind, 0.0), (value - t_ms) / 1000)
    return latest


QUIET_LIMIT_S = 15.0


def quiescent(m: LocalMesh, limit: float) -> tuple[dict[str, dict[str, int]], bool]:
    """Every sidecar's stats once two reads 0.5 s apart agree (no update still arriving), or at `limit`.

    An update that lands after the settle period is still attributed to its own edit."""
    deadline = time.monotonic() + limit
    stats = envoy_stats(m)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = envoy_stats(m)
        if again == stats:
            return again, True
        stats = again
    return stats, False


def counters(m: LocalMesh) -> dict[str, tuple[int, int]]:
    out = {}
    for ns, prefix, ok, bad in FLOWS:
        s = m.stats(ns, prefix)
        out[f"{ns}/{prefix}"] = (int(s[ok]), int(s[bad]))
    return out


def rejected(stats: dict[str, dict[str, int]]) -> int:
    return sum(v for s in stats.values() for k, v in s.items() if k.endswith(".update_rejected"))


def run(rounds: int, settle: float, wait_ms: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="osm-bench-"))
    manifests = work / "demo"
    shutil.copytree(ROOT / "demo", manifests)
    buyer = manifests / "10-bookbuyer.yaml"
    buyer.write_text(
        buyer.read_text().replace('{name: WAIT_MS, value: "100"}', f'{{name: WAIT_MS, value: "{wait_ms}"}}')
    )
    m = LocalMesh(manifests)
    samples: dict[str, dict[str, list[float]]] = {}
    try:
        m.up()
        m.wait_ready(SIDECARS)
        m.wait(lambda: all(ok > 0 for ok, _ in counters(m).values()), 60, "every flow carrying traffic")
        time.sleep(settle)
        start, stats0, t0 = counters(m), envoy_stats(m), time.monotonic()
        unsettled = 0
        before = stats0
        for _ in range(rounds):
            for e in edits():
                for forward in (True, False):
                    step = f"{e.name}-{'apply' if forward else 'revert'}"
                    t_ms = int(time.time() * 1000)
                    apply(manifests, e, forward)
                    time.sleep(settle)
                    after, quiet = quiescent(m, QUIET_LIMIT_S)
                    unsettled += not quiet
                    for kind, s in applied(before, after, t_ms).items():
                        samples.setdefault(kind, {}).setdefault(step, []).append(s)
                    before = after
        time.sleep(1.0)  # the apps write their counters every 0.5 s
        end, stats1, elapsed = counters(m), envoy_stats(m), time.monotonic() - t0
    finally:
        m.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    flows = {
        k: {
            "requests": (end[k][0] - start[k][0]) + (end[k][1] - start[k][1]),
            "failed": end[k][1] - start[k][1],
        }
        for k in start
    }
    per_type = {}
    for kind, steps in sorted(samples.items()):
        every = [s for v in steps.values() for s in v]
        per_type[kind] = {
            "edits": len(every),
            "p50_s": round(statistics.median(every), 3),
            "max_s": round(max(every), 3),
            "by_edit_median_s": {k: round(statistics.median(v), 3) for k, v in sorted(steps.items())},
        }
    return {
        "rounds": rounds,
        "edits": rounds * 2 * len(edits()),
        "settle_s": settle,
        "churn_seconds": round(elapsed, 1),
        "wait_ms": wait_ms,
        "apply_latency": per_type,
        "unsettled_edits": unsettled,  # sidecars still updating QUIET_LIMIT_S after the edit
        "update_rejected": rejected(stats1) - rejected(stats0),
        "update_rejected_total": rejected(stats1),
        "flows": flows,
        "failed_requests": sum(f["failed"] for f in flows.values()),
        "requests": sum(f["requests"] for f in flows.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--wait-ms", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/envoy_churn.json")
    args = ap.parse_args()
    result = run(args.rounds, args.settle, args.wait_ms)
    settings = Settings(local_dir=ROOT, state_dir=ROOT)
    data = {
        "machine": machine(),
        "params": {"rounds": args.rounds, "settle_s": args.settle, "wait_ms": args.wait_ms},
        "debounce": {"quiet_s": settings.debounce_quiet, "max_s": settings.debounce_max},
        "b6": result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
