"""The control plane under test, as its own process (pinned to CPU 0 by the harness).

The standard-mesh workload is fed straight into the Store (as a state source would), changes arrive over
a control socket (JSON lines) and go through the same debounce, snapshot, catalog, generators and ADS
server as in production. Ops: stats, gc, churn (an endpoint change), policy (a TrafficTarget gains a
source), egress (toggle MeshConfig.enableEgress: every proxy's config changes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gcclock import GcClock
from osm.apis.meshconfig import MeshConfig
from osm.certificate.manager import CertificateManager
from osm.certificate.tresor import TresorCA
from osm.cmd.gctune import GcTuner
from osm.envoy.ads.cache import XdsCache
from osm.envoy.ads.server import AdsServer, ProxyStream, server_credentials
from osm.messaging.debounce import Debouncer
from osm.metrics import ControlPlaneMetrics
from osm.models.k8s import Pod
from osm.smi.models import IdentityRef, TrafficTarget
from osm.state.decode import ObjectKey
from osm.state.store import Store
from osm.testing.mesh import build


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class ControlPlane:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workload = build(args.services, args.pods, mode=args.mode)
        self.store = Store()
        for obj in self.workload.objects:
            self.store.apply(obj)
        now = datetime.now(UTC)
        self.ca = TresorCA.load_or_create(Path(args.state_dir), now=now)
        self.certs = CertificateManager(self.ca, clock=lambda: datetime.now(UTC))
        self.cache = XdsCache(self.certs)
        cert = self.ca.issue("ads.cluster.local", timedelta(days=1), now=now)
        creds = server_credentials(cert.cert_pem, cert.key_pem, self.ca.trust_bundle_pem)
        self.metrics = ControlPlaneMetrics(enabled=args.metrics == "on")
        self.ads = AdsServer(
            self.cache, address=f"127.0.0.1:{args.port}", credentials=creds, metrics=self.metrics
        )
        self.flushes: list[tuple[float, int, int]] = []  # (time, changes, proxies woken)
        self.debouncer: Debouncer[ObjectKey] = Debouncer(
            self._flush, quiet=args.quiet, max_wait=args.max_wait
        )
        self.store.subscribe(lambda ev: self.debouncer.notify(ev.key))
        self.gc_tuner = None if args.no_gc_tuning else GcTuner()
        self.gc_clock = GcClock()

    def _flush(self, keys: set[ObjectKey]) -> None:
        woken = self.ads.update(self.store.snapshot(), keys)
        if self.gc_tuner is not None:
            self.gc_tuner.settled()
        self.flushes.append((time.monotonic(), len(keys), woken))

    def stats(self) -> dict[str, Any]:
        s = self.ads.stats
        return {
            "cpu_s": cpu_s(),
            "rss_mb": rss_mb(),
            "hwm_mb": rss_mb("VmHWM"),
            "connected": s.connected,
            "connects": s.connects,
            "rejected": s.rejected,
            "nacks": s.nacks,
            "responses": s.responses,
            "pushes": s.pushes,
            "flushes": len(self.flushes),
            "builds": self.cache.generator.builds,
            "gc_collections": len(self.gc_clock.pauses),
            "gc_s": self.gc_clock.seconds,
            "gc_max_s": max((p for _, p in self.gc_clock.pauses), default=0.0),
            "gc2_max_s": max((p for g, p in self.gc_clock.pauses if g == 2), default=0.0),
            "gc_collected": [g["collected"] for g in gc.get_stats()],
            "time": time.monotonic(),
        }

    def churn(self, change: int, pod_index: int, ip: str) -> float:
        ref = self.workload.pods[pod_index]
        pod = self.store.get(ObjectKey("Pod", ref.namespace, ref.name))
        assert isinstance(pod, Pod)
        t0 = time.monotonic()
        self.store.apply(replace(pod, pod_ip=ip))
        return t0

    def policy(self, target: int, source: tuple[str, str]) -> float:
        tt = self.workload.targets[target]
        current = self.store.get(ObjectKey("TrafficTarget", tt.meta.namespace, tt.meta.name))
        assert isinstance(current, TrafficTarget)
        t0 = time.monotonic()
        self.store.apply(replace(current, sources=(*current.sources, IdentityRef(source[1], source[0]))))
        return t0

    def egress(self) -> float:
        if PROFILER is not None and os.environ.get("OSM_BENCH_PROFILE_FROM") == "egress":
            PROFILER.enable()  # B5 only
        mc = self.store.get(ObjectKey("MeshConfig", "osm-system", "osm-mesh-config"))
        assert isinstance(mc, MeshConfig)
        t0 = time.monotonic()
        self.store.apply(replace(mc, traffic=replace(mc.traffic, enable_egress=not mc.traffic.enable_egress)))
        return t0

    def _stream_of(self, cn: str) -> ProxyStream | None:
        return next((st for st in self.ads.streams.values() if str(st.proxy.cn) == cn), None)

    def drop(self, cn: str) -> dict[str, Any]:
        """End one proxy's stream (it is expected to reconnect)."""
        st = self._stream_of(cn)
        if st is None:
            return {"error": f"no stream for {cn}"}
        self.ads.disconnect(st, "bench: dropped")
        return {"dropped": st.id}

    def stream(self, cn: str) -> dict[str, Any]:
        """What the server knows of one proxy's stream (to diagnose a proxy that did not converge)."""
        st = self._stream_of(cn)
        if st is None:
            return {"error": f"no stream for {cn}"}
        m = st.machine
        types = getattr(m, "types", {})
        return {
            "queue": st.queue.qsize(),
            "backlog": len(st.backlog),
            "dirty": st.dirty,
            "update_pending": st.update_pending,
            "hold": sorted(getattr(m, "hold", ())),
            "counters": vars(m.counters),
            "types": {t.rsplit(".", 1)[-1]: _type_state(ts) for t, ts in types.items()},
        }

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            req = json.loads(line)
            op = req["op"]
            out: dict[str, Any]
            if op == "stats":
                out = self.stats()
            elif op == "gc":
                gc.collect()
                out = {"rss_mb": rss_mb()}
            elif op == "churn":
                out = {"t0": self.churn(req["id"], req["pod"], req["ip"])}
            elif op == "policy":
                out = {"t0": self.policy(req["target"], tuple(req["source"]))}
            elif op == "egress":
                out = {"t0": self.egress()}
            elif op == "flushes":
                out = {"flushes": self.flushes}
            elif op == "stream":
                out = self.stream(req["cn"])
            elif op == "drop":
                out = self.drop(req["cn"])
            else:
                out = {"error": f"unknown op {op}"}
            writer.write(json.dumps(out).encode() + b"\n")
            await writer.drain()

    async def run(self) -> None:
        self.ads.update(self.store.snapshot())
        await self.ads.start()
        gc.collect()
        if self.gc_tuner is not None:
            self.gc_tuner.install()
        server = await asyncio.start_unix_server(self.handle, path=self.args.control)
        print(json.dumps({"ready": True, "rss_mb": rss_mb(), "cpu_s": cpu_s()}), flush=True)
        async with server:
            await asyncio.gather(server.serve_forever(), self.debouncer.run())


def _type_state(ts: Any) -> dict[str, Any]:
    """A stream's state of one type: SotW (sent names and versions) or delta (the versions it knows)."""
    if hasattr(ts, "known"):
        return {"names": len(ts.names), "known": len(ts.known), "nonce": ts.nonce, "wildcard": ts.wildcard}
    return {
        "names": len(ts.names),
        "sent": len(ts.sent_names),
        "nonce": ts.nonce,
        "acked": ts.acked_version[:8],
        "sent_version": ts.sent_version[:8],
    }


PROFILER: Any = None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--services", type=int, required=True)
    p.add_argument("--pods", type=int, default=2)
    p.add_argument("--mode", choices=["smi", "permissive"], default="smi")
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--metrics", choices=["on", "off"], default="on", help="the osm_* metrics (off: their cost)"
    )
    p.add_argument("--control", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--quiet", type=float, default=0.03)
    p.add_argument("--max-wait", type=float, default=0.15)
    p.add_argument("--cpu", type=int, default=0)
    p.add_argument("--no-gc-tuning", action="store_true", help="CPython's default collector settings")
    args = p.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # OSM_BENCH_PROFILE=path: cProfile stats written there on SIGTERM, from the start or, with
    # OSM_BENCH_PROFILE_FROM=egress, from B5's first MeshConfig flip.
    profile = os.environ.get("OSM_BENCH_PROFILE")
    if not profile:
        asyncio.run(ControlPlane(args).run())
        return
    import cProfile
    import signal

    global PROFILER
    prof = PROFILER = cProfile.Profile()

    def dump(*_: Any) -> None:
        prof.disable()
        prof.dump_stats(profile)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    if not os.environ.get("OSM_BENCH_PROFILE_FROM"):
        prof.enable()
    asyncio.run(ControlPlane(args).run())


if __name__ == "__main__":
    main()
