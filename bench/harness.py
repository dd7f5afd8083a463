"""Benchmark harness: the control plane in one process (CPU 0), simulated proxies in this one (CPU 1).

    .venv/bin/python bench/harness.py --quick        # `make bench`: a subset, a few minutes
    .venv/bin/python bench/harness.py --full         # `make bench-full`: N = 250 .. 2000, both modes

B1 cold start (all N connect at once: time until the last is fully configured; CP CPU-s; peak RSS),
B2 endpoint churn (p50/p99 from change to every affected proxy; proxies pushed vs the minimum),
B3 policy change (p50/p99; order of CDS/EDS before RDS), B4 memory per proxy and idle CPU,
B5 a full push (every proxy's config changes) against the transport ceiling. Results go to
bench/results/*.json; the load side's CPU is reported so a saturated run can be discounted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # grpc core logs every closed connection at INFO otherwise
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import compiled
from bench.gcclock import GcClock
from bench.simproxy import CLIENTS, Markers, SimProxy, channel_credentials
from osm.certificate.tresor import TresorCA
from osm.cmd.gctune import GcTuner
from osm.envoy.types import TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE
from osm.testing.mesh import Workload, build

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


LOAD_GC = GcClock()  # counts from import: B1 and B5 report the load side's share (load_gc_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


class CP:
    """The control-plane process and its control socket."""

    def __init__(self, services: int, mode: str, state_dir: Path, metrics: str = "on") -> None:
        self.port = free_port()
        self.control = str(state_dir / "cp.sock")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "cp.py"),
                "--services",
                str(services),
                "--mode",
                mode,
                "--port",
                str(self.port),
                "--control",
                self.control,
                "--state-dir",
                str(state_dir),
                "--metrics",
                metrics,
            ],
            stdout=subprocess.PIPE,
            stderr=open(state_dir / "cp.log", "wb"),  # noqa: SIM115 (the child owns it)
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"control plane did not start: {(state_dir / 'cp.log').read_text()[-2000:]}")
        self.ready = json.loads(line)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def call(self, **req: Any) -> dict[str, Any]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_unix_connection(self.control)
        assert self._reader is not None
        self._writer.write(json.dumps(req).encode() + b"\n")
        await self._writer.drain()
        out: dict[str, Any] = json.loads(await self._reader.readline())
        return out

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Fleet:
    proxies: list[SimProxy]
    tasks: list[asyncio.Task[None]]
    markers: Markers

    def by_type(self) -> dict[str, tuple[int, int]]:
        """Responses and bytes received so far, per type URL, over the fleet."""
        out: dict[str, tuple[int, int]] = {}
        for p in self.proxies:
            for t, st in p.subs.items():
                responses, size = out.get(t, (0, 0))
                out[t] = (responses + st.responses, size + st.bytes)
        return out

    async def close(self) -> None:
        for p in self.proxies:
            p.stop()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def issue_certs(state_dir: Path, w: Workload, n: int) -> tuple[bytes, list[tuple[str, Any]]]:
    ca = TresorCA.load_or_create(state_dir, now=datetime.now(UTC))
    now = datetime.now(UTC)
    out = []
    for ref in w.pods[:n]:
        c = ca.issue(ref.cn(), timedelta(days=1), now=now)
        out.append((ref.cn(), channel_credentials(ca.trust_bundle_pem, c.cert_pem, c.key_pem)))
    return ca.trust_bundle_pem, out


async def wait_until(check: Any, within: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(interval)
    return False


async def scenario(
    n: int,
    mode: str,
    xds: str,
    *,
    churn_rates: list[int],
    churn_seconds: float,
    policy_changes: int,
    idle_seconds: float,
    ceiling: bool = False,
    cold_reference: bool = False,
    client: str = "h2",
    metrics: str = "on",
) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix="osm-bench-"))
    services = n // 2
    w = build(services, 2, mode=mode)
    row: dict[str, Any] = {
        "n": n,
        "mode": mode,
        "xds": xds,
        "services": services,
        "client": client,
        "metrics": metrics,
    }
    cp = CP(services, mode, state_dir, metrics)
    fleet: Fleet | None = None
    try:
        row["rss0_mb"] = (await cp.call(op="gc"))["rss_mb"]
        _, creds = issue_certs(state_dir, w, n)
        if client == "h2":  # made before the clock starts, as grpc's credentials are
            for _, c in creds:
                c.ssl_context()
        markers = Markers()
        target = f"127.0.0.1:{cp.port}"
        before, load0, gc0 = await cp.call(op="stats"), cpu_s(), LOAD_GC.seconds
        t0 = time.monotonic()
        proxies = [
            SimProxy(i, cn, c, target, delta=xds == "delta", markers=markers, client=client)
            for i, (cn, c) in enumerate(creds)
        ]
        fleet = Fleet(proxies, [asyncio.create_task(p.run()) for p in proxies], markers)
        done = await wait_until(lambda: all(p.complete_at is not None for p in proxies), 180)
        after, load1, gc1 = await cp.call(op="stats"), cpu_s(), LOAD_GC.seconds
        errors = [p.error for p in proxies if p.error]
        last = max((p.complete_at or float("inf")) for p in proxies)
        row["b1"] = {
            "seconds": round(last - t0, 3) if done else None,
            "complete": done,
            "complete_count": sum(p.complete_at is not None for p in proxies),
            "cp_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
            "cp_gc_s": round(after["gc_s"] - before["gc_s"], 3),
            "cp_peak_rss_mb": round(after["hwm_mb"], 1),
            "load_cpu_s": round(load1 - load0, 3),
            "load_util": round((load1 - load0) / max(last - t0, 1e-9), 3),
            "load_gc_s": round(gc1 - gc0, 3),
            "responses": after["responses"],
            "nacks": after["nacks"],
            "rejected": after["rejected"],
            "errors": errors[:3],
            "reconnects": sum(p.reconnects for p in proxies),  # streams that failed and were opened again
            "lost": [e for p in proxies for e in p.lost][:3],
            "bytes_per_proxy": round(statistics.mean(p.bytes for p in proxies)),
            "messages_per_proxy": messages_per_proxy(fleet.by_type(), {}, n),
        }
        gc.freeze()  # the connected fleet's state is long-lived: young collections stop rescanning it
        # B4: memory per connected proxy, idle CPU
        rss_n = (await cp.call(op="gc"))["rss_mb"]
        idle0 = await cp.call(op="stats")
        await asyncio.sleep(idle_seconds)
        idle1 = await cp.call(op="stats")
        row["b4"] = {
            "rss_n_mb": round(rss_n, 1),
            "mb_per_proxy": round((rss_n - row["rss0_mb"]) / n, 4),
            "idle_cores": round((idle1["cpu_s"] - idle0["cpu_s"]) / (idle1["time"] - idle0["time"]), 4),
            "idle_seconds": idle_seconds,
        }
        if mode == "smi":
            row["b2"] = [await churn(cp, w, fleet, rate, churn_seconds) for rate in churn_rates]
            row["b3"] = await policy(cp, w, fleet, policy_changes)
        row["b5"] = await full_push(cp, fleet, n)
    finally:
        if fleet is not None:
            await fleet.close()
        cp.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        gc.unfreeze()  # the closed fleet's cycles are garbage now
        gc.collect()
        gc.freeze()
    row["serialize_s"] = round(generation_cost(w), 3)
    if ceiling and row["b5"].get("bytes_per_proxy"):
        # The same bytes as one message per proxy, and as the same messages the push sent (one per
        # changed type: xDS cannot send two types in one response).
        row["ceiling"] = await transport_reference(n, [row["b5"]["bytes_per_proxy"]], client=client)
        sizes = row["b5"]["messages_per_proxy"]
        if len(sizes) > 1:
            row["ceiling_same_messages"] = await transport_reference(
                n, [m["bytes"] for m in sizes], [m["type_url"] for m in sizes], client=client
            )
    if cold_reference and row["b1"]["complete"]:
        row["b1_reference"] = await cold_start_reference(n, row["b1"]["messages_per_proxy"], client)
    return row


async def cold_start_reference(n: int, messages: list[dict[str, Any]], client: str = "h2") -> dict[str, Any]:
    """B1's reference: n mTLS streams connecting to a bare grpc.aio server, then the cold start's
    messages (per type, as many and as large on average) pushed once to every stream from
    pre-serialized bytes, each ACKed. Connecting and then pushing on the fresh connections, without
    overlap, bounds from above what the transport alone needs for the same cold start."""
    sizes, types = [m["bytes"] for m in messages], [m["type_url"] for m in messages]
    got = await transport_reference(n, sizes, types, 1, client=client)
    raw = got["raw"]
    push = got["push_s"]
    return {
        "connect_s": round(raw["connect_s"], 3),
        "push_s": push,
        "seconds": round(raw["connect_s"] + push, 3) if push is not None else None,
        "bytes_per_proxy": raw["resp_bytes"],
        "load_util": raw["load_util"]["median"],
        "server_cpu_s": raw["server_cpu_s"]["median"],
        "all_acked": raw["all_acked"],
    }


def messages_per_proxy(
    by_type: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]], n: int
) -> list[dict[str, Any]]:
    """The responses each proxy got since `before`, as the ceiling repeats them: per type, as many as
    each proxy got on average, each of their mean size."""
    out: list[dict[str, Any]] = []
    for t, (responses, size) in by_type.items():
        count, total = responses - before.get(t, (0, 0))[0], size - before.get(t, (0, 0))[1]
        if count:
            out += [{"type_url": t, "bytes": round(total / count)}] * round(count / n)
    return out


def generation_cost(w: Workload) -> float:
    """Building and serializing every proxy group's resources from scratch (shared where identical)."""
    from osm.catalog import MeshCatalog
    from osm.envoy.generator import ConfigGenerator
    from osm.envoy.sds.secrets import CertMaterial
    from osm.state.snapshot import MeshState

    state = MeshState.build(w.objects)
    t0 = time.perf_counter()
    catalog, gen, done = MeshCatalog(state), ConfigGenerator(), set()
    cert = CertMaterial(b"c" * 700, b"k" * 240, b"a" * 700)
    for pod in state.pods.values():
        group = catalog.group_for_pod(pod)
        if group not in done:
            done.add(group)
            gen.resources(catalog.proxy_policy(group), cert)
    return time.perf_counter() - t0


async def transport_reference(
    n: int, sizes: list[int], type_urls: list[str] | None = None, repeats: int = 3, *, client: str = "h2"
) -> dict[str, Any]:
    """Messages of these sizes (and types) pushed to each of n mTLS streams by a bare grpc.aio server
    from pre-serialized bytes, each ACKed (B5's ceiling); the median of `repeats` pushes."""
    from bench.ceiling import CLUSTER_TYPE, cluster_payload, set_all_threads, transport_ceiling

    types = type_urls or [CLUSTER_TYPE] * len(sizes)
    payloads = [cluster_payload(size, t)[0] for size, t in zip(sizes, types, strict=True)]
    # This process runs pinned to the load core; the ceiling pins its server to the other core and its
    # load here only when it may use both (else both would share the load core).
    mine = os.sched_getaffinity(0)
    set_all_threads(set(range(os.cpu_count() or 1)))
    try:
        got = await transport_ceiling(n, payloads, tls=True, repeats=repeats, client=client)
    finally:
        set_all_threads(mine)
    push = got.get("push_s") or got.get("push") or {}
    median = push.get("median") if isinstance(push, dict) else None
    return {"push_s": median, "raw": {k: v for k, v in got.items() if k != "pushes"}}


def marker_ip(change: int) -> str:
    return f"10.200.{change // 256}.{change % 256}"


async def churn(cp: CP, w: Workload, fleet: Fleet, rate: int, seconds: float) -> dict[str, Any]:
    """Endpoint changes at `rate` per second: a pod of a random service (one with callers) gets a new IP."""
    rnd = random.Random(rate)
    index = {p.cn: i for i, p in enumerate(fleet.proxies)}
    with_callers = [svc for svc in w.clients if w.client_pods(svc)]
    pod_index = {(p.namespace, p.name): i for i, p in enumerate(w.pods)}
    changes: list[tuple[int, float, set[int]]] = []
    before = await cp.call(op="stats")
    base = 1000 * rate
    count = int(rate * seconds)
    start = time.monotonic()
    # Each change moves a different pod, so no marker is overwritten before it could be delivered.
    candidates = [(svc, pod) for svc in with_callers for pod in w.pods_of(svc)]
    rnd.shuffle(candidates)
    for k in range(count):
        cid = base + k
        svc, pod = candidates[k % len(candidates)]
        ip = marker_ip(cid)
        fleet.markers.expect(TYPE_ENDPOINT, ip.encode(), cid)
        t0 = (await cp.call(op="churn", id=cid, pod=pod_index[(pod.namespace, pod.name)], ip=ip))["t0"]
        expected = {index[p.cn()] for p in w.client_pods(svc) if p.cn() in index}
        changes.append((cid, t0, expected))
        await asyncio.sleep(max(0.0, start + (k + 1) / rate - time.monotonic()))
    await wait_until(
        lambda: all(expected <= set(fleet.markers.seen[cid]) for cid, _, expected in changes), 30
    )
    after = await cp.call(op="stats")
    latencies = [
        max(fleet.markers.seen[cid][i] for i in expected) - t0
        for cid, t0, expected in changes
        if expected and expected <= set(fleet.markers.seen[cid])
    ]
    missed = sum(1 for cid, _, expected in changes if not expected <= set(fleet.markers.seen[cid]))
    minimum = sum(len(e) for _, _, e in changes)
    pushed = after["pushes"] - before["pushes"]
    return {
        "rate": rate,
        "changes": count,
        "p50_s": round(pct(latencies, 0.5), 3),
        "p99_s": round(pct(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3) if latencies else None,
        "missed": missed,
        "proxies_pushed": pushed,
        "minimum": minimum,
        "push_ratio": round(pushed / minimum, 3) if minimum else None,
        "cp_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
        "gc_s": round(after["gc_s"] - before["gc_s"], 3),
        "gc_collections": after["gc_collections"] - before["gc_collections"],
        "gc_max_s_so_far": round(after["gc_max_s"], 3),
        "gc_collected": [a - b for a, b in zip(after["gc_collected"], before["gc_collected"], strict=True)],
    }


async def policy(cp: CP, w: Workload, fleet: Fleet, changes: int) -> dict[str, Any]:
    """A TrafficTarget gains a source: that source's proxies get the destination (CDS, EDS, then routes)."""
    rnd = random.Random(3)
    index = {p.cn: i for i, p in enumerate(fleet.proxies)}
    for p in fleet.proxies:
        p.record = True
        p.log.clear()
    results: list[tuple[int, float, set[int], str]] = []
    touched_min = 0
    before = await cp.call(op="stats")
    for k in range(changes):
        t = rnd.randrange(len(w.targets))
        tt = w.targets[t]
        dest = (tt.destination.namespace, tt.destination.name)
        callers = w.clients[dest]
        candidates = [
            w.service_ns(i)
            for i in range(w.services)
            if w.service_ns(i) not in callers and w.service_ns(i) != dest
        ]
        src = rnd.choice(candidates)
        callers.add(src)
        cluster = f"{dest[0]}/{dest[1]}|8080".encode()
        cid = 900_000 + k
        fleet.markers.expect(TYPE_ROUTE, f"{dest[1]}.{dest[0]}.svc.cluster.local".encode(), cid)
        t0 = (await cp.call(op="policy", target=t, source=list(src)))["t0"]
        expected = {index[p.cn()] for p in w.pods_of(src) if p.cn() in index}
        touched_min += len(expected) + sum(1 for p in w.pods_of(dest) if p.cn() in index)
        results.append((cid, t0, expected, cluster.decode()))
        await asyncio.sleep(0.5)
    await wait_until(lambda: all(e <= set(fleet.markers.seen[cid]) for cid, _, e, _ in results), 30)
    after = await cp.call(op="stats")
    latencies, violations = [], 0
    for cid, t0, expected, cluster in results:
        seen = fleet.markers.seen[cid]
        if expected <= set(seen):
            latencies.append(max(seen[i] for i in expected) - t0)
        for i in expected:
            violations += order_violations(fleet.proxies[i], cluster.encode(), t0)
    for p in fleet.proxies:
        p.record = False
        p.log.clear()
    return {
        "changes": changes,
        "p50_s": round(pct(latencies, 0.5), 3),
        "p99_s": round(pct(latencies, 0.99), 3),
        "order_violations": violations,
        "proxies_pushed": after["pushes"] - before["pushes"],
        "minimum": touched_min,
    }


def order_violations(p: SimProxy, cluster: bytes, t0: float) -> int:
    """An RDS naming `cluster` before that cluster's CDS and EDS arrived is a make-before-break violation."""
    got: dict[str, float] = {}
    for t, type_url, raw in p.log:
        if t < t0 or cluster not in raw:
            continue
        got.setdefault(type_url, t)
    if TYPE_ROUTE not in got:
        return 0
    return int(got.get(TYPE_CLUSTER, float("inf")) > got[TYPE_ROUTE]) + int(
        got.get(TYPE_ENDPOINT, float("inf")) > got[TYPE_ROUTE]
    )


async def full_push(cp: CP, fleet: Fleet, n: int, repeats: int = 3) -> dict[str, Any]:
    """Toggle MeshConfig.enableEgress `repeats` times (then back if odd): every proxy's clusters and
    listeners change each time. Reports the median push, as the ceiling does."""
    runs: list[dict[str, Any]] = []
    for k in range(repeats):
        cid = 990_000 + k
        # Egress starts enabled: odd flips remove the egress filter chain, even ones bring it back.
        fleet.markers.expect(TYPE_LISTENER, b"outbound-egress-filter-chain", cid, absent=k % 2 == 0)
        bytes0 = sum(p.bytes for p in fleet.proxies)
        by_type0 = fleet.by_type()
        before, load0, wall0, gc0 = await cp.call(op="stats"), cpu_s(), time.monotonic(), LOAD_GC.seconds
        t0 = (await cp.call(op="egress"))["t0"]
        ok = await wait_until(lambda cid=cid: len(fleet.markers.seen[cid]) == n, 60)
        load_cpu, wall, load_gc = cpu_s() - load0, time.monotonic() - wall0, LOAD_GC.seconds - gc0
        after = await cp.call(op="stats")
        seen = fleet.markers.seen[cid]
        await asyncio.sleep(0.5)
        by_type = fleet.by_type()
        messages = messages_per_proxy(by_type, by_type0, n)
        runs.append(
            {
                "seconds": round(max(seen.values()) - t0, 3) if ok else None,
                "proxies": len(seen),
                "bytes_total": sum(p.bytes for p in fleet.proxies) - bytes0,
                "messages_per_proxy": messages,
                "cp_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
                "load_util": round(load_cpu / wall, 3),  # ~1: the simulated proxies set the time
                "load_gc_s": round(load_gc, 3),
            }
        )
        if not ok:
            for i, p in enumerate(fleet.proxies):
                if i not in seen:
                    subs = {
                        t.rsplit(".", 1)[-1]: (s.nonce, s.responses, len(s.names)) for t, s in p.subs.items()
                    }
                    state = await cp.call(op="stream", cn=p.cn)
                    missing = {"missing": i, "error": p.error, "lost": p.lost, "subs": subs, "cp": state}
                    print(json.dumps(missing), file=sys.stderr)
            break
    if len(runs) % 2:
        await cp.call(op="egress")  # back
    times = [r["seconds"] for r in runs]
    first = runs[0]
    return {
        "seconds": statistics.median(times) if None not in times else None,
        "runs": times,
        "reconnects": sum(p.reconnects for p in fleet.proxies),  # since the cold start began
        "proxies": min(r["proxies"] for r in runs),
        "bytes_total": first["bytes_total"],
        "bytes_per_proxy": round(first["bytes_total"] / n),
        "messages_per_proxy": first["messages_per_proxy"],
        "cp_cpu_s": statistics.median(r["cp_cpu_s"] for r in runs),
        "load_util": statistics.median(r["load_util"] for r in runs),
        "load_gc_s": statistics.median(r["load_gc_s"] for r in runs),
    }


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


async def main_async(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {1})
    # The load side collects as the control plane does (osm/cmd/gctune.py); B5's transport ceiling runs
    # its load in this process too, so both pushes are read by clients with the same collector.
    GcTuner().install()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = []
    for n in args.n:
        for mode in args.modes:
            for xds in args.xds:
                row = await scenario(
                    n,
                    mode,
                    xds,
                    churn_rates=args.churn,
                    churn_seconds=args.churn_seconds,
                    policy_changes=args.policy_changes,
                    idle_seconds=args.idle,
                    ceiling=args.ceiling and mode == "smi" and xds == "sotw",
                    cold_reference=args.ceiling and mode == "permissive" and xds == "sotw",
                    client=args.client,
                    metrics=args.metrics,
                )
                if args.compiled_b1:
                    row["b1_compiled"] = await compiled.cold_start(n, mode, xds)
                print(json.dumps(row), flush=True)
                rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps({"machine": machine(), "params": vars(args), "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--full", action="store_true")
    p.add_argument("--n", type=int, nargs="+", default=[250])
    p.add_argument("--modes", nargs="+", default=["smi"])
    p.add_argument("--xds", nargs="+", default=["sotw", "delta"])
    p.add_argument("--churn", type=int, nargs="+", default=[10, 50])
    p.add_argument("--churn-seconds", type=float, default=10)
    p.add_argument("--policy-changes", type=int, default=20)
    p.add_argument("--idle", type=float, default=10)
    p.add_argument("--name", default="bench")
    p.add_argument(
        "--client",
        choices=CLIENTS,
        default="h2",
        help="the simulated proxies' gRPC client, also the transport references' (bench/h2client.py or grpc)",
    )
    p.add_argument(
        "--metrics",
        choices=["on", "off"],
        default="on",
        help="the control plane's osm_* metrics (off: to measure what they cost)",
    )
    p.add_argument(
        "--compiled-b1",
        action="store_true",
        help="also measure each cold start with the compiled fleet (bench/loadgen.c), as b1_compiled",
    )
    p.add_argument(
        "--ceiling",
        action="store_true",
        help="measure B5's transport ceiling for each N (SMI), and B1's transport reference (permissive)",
    )
    args = p.parse_args()
    if args.quick:
        args.n, args.modes, args.churn_seconds, args.policy_changes, args.idle, args.name = (
            [250, 1000],
            ["smi", "permissive"],
            5,
            10,
            5,
            "quick",
        )
        args.ceiling = args.compiled_b1 = True
    if args.full:
        args.n, args.modes, args.churn_seconds, args.policy_changes, args.idle, args.name = (
            [250, 500, 1000, 2000],
            ["smi", "permissive"],
            10,
            20,
            300,
            "full",
        )
        args.ceiling = args.compiled_b1 = True
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
