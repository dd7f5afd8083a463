"""The controller under hostile clients: its memory, its log and a legitimate proxy's wait, per probe.

    .venv/bin/python bench/hostile.py [--out bench/results/hostile.json] [--probes all]

Starts `osm-controller --local examples/bookstore` in its own process and, for each probe, measures its
RSS (peak and after), the bytes it logged and whether (and how fast) a legitimate proxy still gets its
clusters. Every hostile client holds a valid proxy certificate of the mesh (a stolen sidecar's), except
the idle-connection flood, which never completes a handshake. The probes are those of the hardening
issue: one request of 1.5 M names (15 MB); four streams each at the limit; 100,000 streams on one
connection; NACKs with 100 KB of text, for 2 s; 12,000 idle TCP connections; a request flood on one
stream.

It runs against the current tree; `--python` and `--src` run it against another checkout's controller
(e.g. the commit before the hardening) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from osm.certificate.tresor import TresorCA  # noqa: E402

EXAMPLE = ROOT / "examples" / "bookstore"
SOTW = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
_OLD_UUIDS = uuid.UUID("6f1d3c1e-7b0e-4d59-9a43-2f1b7c0c9e21")  # before per-pod random UUIDs


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Controller:
    def __init__(self, python: str, src: Path, workdir: Path) -> None:
        self.state = workdir / "state"
        self.port = free_port()
        self.log = workdir / "controller.log"
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen(
            [
                python,
                "-m",
                "osm.cmd.controller",
                "--local",
                str(EXAMPLE),
                "--state-dir",
                str(self.state),
                "--ads-address",
                f"127.0.0.1:{self.port}",
            ],
            stdout=open(self.log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while b"ADS server listening" not in self.log.read_bytes():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the controller did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.ca = TresorCA.load_or_create(self.state, now=datetime.now(UTC))

    def proxy_uuid(self, ns: str, pod: str) -> str:
        try:
            return str(json.loads((self.state / "proxy-uuids.json").read_text())[f"{ns}/{pod}"])
        except (OSError, KeyError):
            return str(uuid.uuid5(_OLD_UUIDS, f"{ns}/{pod}"))

    def credentials(self, ns: str = "bookbuyer", pod: str = "bookbuyer", sa: str = "bookbuyer") -> Any:
        cn = f"{self.proxy_uuid(ns, pod)}.sidecar.{sa}.{ns}.cluster.local"
        cert = self.ca.issue(cn, timedelta(hours=1), now=datetime.now(UTC))
        return grpc.ssl_channel_credentials(self.ca.root_cert_pem, cert.key_pem, cert.cert_pem)

    def channel(self, **kw: Any) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            f"127.0.0.1:{self.port}",
            self.credentials(**kw),
            options=[
                ("grpc.ssl_target_name_override", "ads.cluster.local"),
                ("grpc.max_send_message_length", -1),
            ],
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stream(ch: grpc.aio.Channel) -> Any:
    return ch.stream_stream(
        SOTW,
        request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
        response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
    )()


async def legit_proxy_wait(ctrl: Controller, within: float = 130.0) -> float | None:
    """Seconds until a legitimate proxy's CDS request is answered (None: not within `within`)."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        ch = ctrl.channel()
        try:
            call = stream(ch)
            await asyncio.wait_for(call.write(discovery_pb2.DiscoveryRequest(type_url=CDS)), 5)
            resp = await asyncio.wait_for(call.read(), 5)
            if resp is not grpc.aio.EOF and resp.resources:
                return time.monotonic() - start
        except (grpc.aio.AioRpcError, TimeoutError, asyncio.InvalidStateError):
            pass
        finally:
            await ch.close()
        await asyncio.sleep(0.5)
    return None


# ---- probes


async def huge_request(ctrl: Controller) -> dict[str, Any]:
    names = [f"c{i:07d}" for i in range(1_500_000)]  # 15 MB: under the 16 MB gRPC allowed before
    ch = ctrl.channel()
    call = stream(ch)
    outcome = "answered"
    try:
        await asyncio.wait_for(
            call.write(discovery_pb2.DiscoveryRequest(type_url=EDS, resource_names=names)), 60
        )
        await asyncio.sleep(5)  # the controller holds what it keeps of it
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as e:
        outcome = f"refused: {type(e).__name__}"
    with contextlib.suppress(Exception):
        outcome = f"ended: {(await asyncio.wait_for(call.code(), 1)).name}"
    await ch.close()
    return {"outcome": outcome}


async def streams_at_the_limit(ctrl: Controller, streams: int = 4, names: int = 20_000) -> dict[str, Any]:
    chans, calls = [], []
    for i in range(streams):
        ch = ctrl.channel()
        call = stream(ch)
        req = discovery_pb2.DiscoveryRequest(
            type_url=EDS, resource_names=[f"s{i}/c-{j:06d}" for j in range(names)]
        )
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await call.write(req)
        chans.append(ch)
        calls.append(call)
    await asyncio.sleep(3)
    alive = sum(1 for c in calls if not c.done())
    for ch in chans:
        await ch.close()
    return {"streams": streams, "names_each": names, "still_open": alive}


async def many_streams_one_connection(ctrl: Controller, n: int = 100_000) -> dict[str, Any]:
    ch = ctrl.channel()
    calls = []
    opened = 0
    started = time.monotonic()
    for _ in range(n):
        call = stream(ch)
        calls.append(call)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(call.write(discovery_pb2.DiscoveryRequest(type_url=CDS)), 0.001)
            opened += 1
        if time.monotonic() - started > 60:
            break
    await asyncio.sleep(2)
    for c in calls:
        c.cancel()
    await ch.close()
    return {"streams_asked": len(calls), "writes_completed": opened}


async def nack_flood(ctrl: Controller, seconds: float = 2.0, text_kb: int = 100) -> dict[str, Any]:
    ch = ctrl.channel()
    call = stream(ch)
    await call.write(discovery_pb2.DiscoveryRequest(type_url=CDS))
    resp = await call.read()
    log_before = ctrl.log.stat().st_size
    text = "x" * (text_kb * 1024)
    sent = 0
    end = time.monotonic() + seconds
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        while time.monotonic() < end:
            await call.write(
                discovery_pb2.DiscoveryRequest(
                    type_url=CDS,
                    response_nonce=resp.nonce,
                    error_detail=status_pb2.Status(code=3, message=text),
                )
            )
            sent += 1
    await asyncio.sleep(1)
    await ch.close()
    return {"nacks_sent": sent, "log_bytes": ctrl.log.stat().st_size - log_before}


HOLDER = """
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held, refused = [], 0
for _ in range(int(sys.argv[2])):
    try:
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        refused += 1
print(refused, flush=True)
sys.stdin.read()
"""


async def idle_connections(ctrl: Controller, n: int = 20_000, holders: int = 2) -> dict[str, Any]:
    """`n` TCP connections that never start a TLS handshake, held by `holders` processes (one process
    cannot hold 20,000 sockets under this machine's file limit)."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            HOLDER,
            str(ctrl.port),
            str(n // holders),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(holders)
    ]
    try:
        refused = 0
        for p in procs:
            assert p.stdout is not None
            refused += int((await p.stdout.readline()) or 0)
        wait = await legit_proxy_wait(ctrl)
    finally:
        for p in procs:
            p.kill()
            await p.wait()
    return {"connections": n, "refused_at_connect": refused, "legit_proxy_served_after_s": wait}


async def request_flood(ctrl: Controller, n: int = 200_000) -> dict[str, Any]:
    ch = ctrl.channel()
    call = stream(ch)
    written = 0
    started = time.monotonic()
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        for i in range(n):
            try:
                await asyncio.wait_for(
                    call.write(discovery_pb2.DiscoveryRequest(type_url=EDS, resource_names=[f"x{i}"])), 2
                )
            except TimeoutError:
                break  # the controller stopped reading: flow control holds the client
            written += 1
            if time.monotonic() - started > 60:
                break
    await ch.close()
    return {"requests_asked": n, "written_before_backpressure": written}


PROBES = {
    "huge-request": huge_request,
    "streams-at-the-limit": streams_at_the_limit,
    "many-streams-one-connection": many_streams_one_connection,
    "nack-flood": nack_flood,
    "idle-connections": idle_connections,
    "request-flood": request_flood,
}


async def _sample(pid: int, into: list[float]) -> None:
    while True:
        into.append(rss_mb(pid))
        await asyncio.sleep(0.2)


async def run(python: str, src: Path, probes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in probes:
        work = Path(tempfile.mkdtemp(prefix="osm-hostile-"))
        ctrl = Controller(python, src, work)
        try:
            base = rss_mb(ctrl.proc.pid)
            peak = [base]
            sampler = asyncio.create_task(_sample(ctrl.proc.pid, peak))
            started = time.monotonic()
            result = await PROBES[name](ctrl)
            sampler.cancel()
            served = await legit_proxy_wait(ctrl, within=30)
            result.update(
                seconds=round(time.monotonic() - started, 1),
                rss_before_mb=round(base, 1),
                rss_peak_mb=round(max(peak), 1),
                rss_hwm_mb=round(hwm_mb(ctrl.proc.pid), 1),
                rss_after_mb=round(rss_mb(ctrl.proc.pid), 1),
                legit_proxy_after_probe_s=None if served is None else round(served, 2),
                controller_alive=ctrl.proc.poll() is None,
            )
            out[name] = result
            print(name, result, flush=True)
        finally:
            ctrl.stop()
            shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hostile.json")
    p.add_argument("--python", default=sys.executable, help="the interpreter that runs the controller")
    p.add_argument("--src", type=Path, default=ROOT / "src", help="the source tree the controller runs from")
    p.add_argument("--probes", nargs="*", default=list(PROBES), choices=list(PROBES))
    p.add_argument("--label", default="after", help="the key of this run in the results file (before, after)")
    args = p.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    commit = subprocess.run(
        ["git", "-C", str(args.src), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    results = asyncio.run(run(args.python, args.src, args.probes))
    runs = json.loads(args.out.read_text()) if args.out.exists() else {}
    run_doc = runs.setdefault(args.label, {"commit": commit, "probes": {}})
    run_doc["commit"] = commit
    run_doc["probes"].update(results)  # a run of some probes replaces only those
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
