"""B7: the controller on Kubernetes, ready after syncing a cluster: time and memory, on one core.

    .venv/bin/python bench/kube_sync.py [--pods 2000 --services 1000] [--out bench/results/kube_sync.json]

fakekube runs in its own process, filled with `--services` Services (in 10 monitored namespaces), two
Pods per Service (each with a proxy UUID, its ServiceAccount and an IP) and one EndpointSlice per
Service. Then `osm-controller` starts against it pinned to one core (taskset), and the benchmark
measures the time from its start to `/health/ready` answering 200 (every informer listed, the first
snapshot built, ADS serving), and its RSS then. The same is measured on an empty cluster (the mesh's
namespaces and MeshConfig only): the difference is the memory the cluster's objects cost. Target
(issue B7): ready within 10 s and at most 150 MB of RSS growth for 2,000 pods and 1,000 services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from osm.k8s.client import KubeClient
from osm.k8s.resources import (
    CRDS,
    ENDPOINT_SLICES,
    MESH_CONFIGS,
    NAMESPACES,
    PODS,
    SERVICE_ACCOUNTS,
    SERVICES,
)
from osm.testing.kubeobjects import open_crd

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE_COUNT = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


async def fill(kubeconfig: Path, services: int, pods_per_service: int) -> int:
    async with await KubeClient.connect(kubeconfig) as kube:
        await kube.create(CRDS.path(), open_crd(MESH_CONFIGS))
        await kube.create(NAMESPACES.path(), {"metadata": {"name": "osm-system"}})
        await kube.create(
            MESH_CONFIGS.path("osm-system"),
            {
                "apiVersion": MESH_CONFIGS.api_version,
                "kind": "MeshConfig",
                "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
                "spec": {"traffic": {"enablePermissiveTrafficPolicyMode": True}},
            },
        )
        for n in range(NAMESPACE_COUNT):
            labels = {"openservicemesh.io/monitored-by": "osm"}
            await kube.create(NAMESPACES.path(), {"metadata": {"name": f"ns-{n}", "labels": labels}})
        count = 0
        sem = asyncio.Semaphore(16)

        async def one_service(i: int) -> None:
            nonlocal count
            ns, name = f"ns-{i % NAMESPACE_COUNT}", f"svc-{i}"
            async with sem:
                await kube.create(SERVICE_ACCOUNTS.path(ns), {"metadata": {"name": name, "namespace": ns}})
                await kube.create(
                    SERVICES.path(ns),
                    {
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 8080}]},
                    },
                )
                endpoints = []
                for j in range(pods_per_service):
                    k = i * pods_per_service + j
                    ip = f"10.{k // 65536 % 256}.{k // 256 % 256}.{k % 256}"
                    pod_name = f"{name}-{j}"
                    await kube.create(
                        PODS.path(ns),
                        {
                            "metadata": {
                                "name": pod_name,
                                "namespace": ns,
                                "labels": {
                                    "app": name,
                                    "osm-proxy-uuid": f"00000000-0000-4000-8000-{i:06d}{j:06d}",
                                },
                            },
                            "spec": {
                                "serviceAccountName": name,
                                "containers": [
                                    {"name": "app", "image": "x", "ports": [{"containerPort": 8080}]}
                                ],
                            },
                            "status": {"podIP": ip, "phase": "Running"},
                        },
                    )
                    endpoints.append(
                        {
                            "addresses": [ip],
                            "conditions": {"ready": True},
                            "targetRef": {"kind": "Pod", "name": pod_name, "namespace": ns},
                        }
                    )
                    count += 1
                await kube.create(
                    ENDPOINT_SLICES.path(ns),
                    {
                        "apiVersion": ENDPOINT_SLICES.api_version,
                        "kind": "EndpointSlice",
                        "metadata": {
                            "name": f"{name}-abc",
                            "namespace": ns,
                            "labels": {"kubernetes.io/service-name": name},
                        },
                        "addressType": "IPv4",
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                        "endpoints": endpoints,
                    },
                )

        await asyncio.gather(*(one_service(i) for i in range(services)))
        return count


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def measure(kubeconfig: Path, work: Path, label: str) -> dict[str, Any]:
    http = free_port()
    cmd = [
        sys.executable,
        "-m",
        "osm.cmd.controller",
        "--kubeconfig",
        str(kubeconfig),
        "--ads-address",
        "127.0.0.1:0",
        "--http-address",
        f"127.0.0.1:{http}",
        "--webhook-address",
        "",
        "--verbosity",
        "info",
    ]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    log = (work / f"controller-{label}.log").open("wb")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = start + 120
        while not ready(http):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the controller did not become ready; see {log.name}")
            time.sleep(0.02)
        seconds = time.monotonic() - start
        mem = rss_kb(proc.pid)
        synced = [
            json.loads(line)["message"]
            for line in (work / f"controller-{label}.log").read_text().splitlines()
            if "in sync" in line
        ]
        return {
            "ready_s": round(seconds, 3),
            "rss_mb": round(mem["VmRSS"] / 1024, 1),
            "hwm_mb": round(mem["VmHWM"] / 1024, 1),
            "synced": synced[0] if synced else "",
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fakekube(work: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    kubeconfig = work / f"{name}.kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "osm.testing.fakekube", "--port", "0", "--kubeconfig-out", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"fakekube did not start: {line}")
    return proc, kubeconfig


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--pods-per-service", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "kube_sync.json")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="osm-kube-sync-"))
    result: dict[str, Any] = {
        "benchmark": "B7 controller ready after syncing a cluster from fakekube (one core)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "services": args.services,
        "pods": args.services * args.pods_per_service,
        "endpoint_slices": args.services,
        "cpus": os.cpu_count(),
    }
    empty_proc, empty_kc = fakekube(work, "empty")
    full_proc, full_kc = fakekube(work, "full")
    try:
        asyncio.run(fill(empty_kc, 0, 0))
        t0 = time.monotonic()
        result["pods"] = asyncio.run(fill(full_kc, args.services, args.pods_per_service))
        result["fill_s"] = round(time.monotonic() - t0, 1)
        result["empty"] = [measure(empty_kc, work, f"empty-{i}") for i in range(args.runs)]
        result["full"] = [measure(full_kc, work, f"full-{i}") for i in range(args.runs)]
    finally:
        for proc in (empty_proc, full_proc):
            proc.terminate()
            proc.wait(10)
    best_empty = min(r["rss_mb"] for r in result["empty"])
    result["summary"] = {
        "ready_s_median": sorted(r["ready_s"] for r in result["full"])[len(result["full"]) // 2],
        "rss_growth_mb_median": round(
            sorted(r["rss_mb"] for r in result["full"])[len(result["full"]) // 2] - best_empty, 1
        ),
        "target": "ready <= 10 s, RSS growth <= 150 MB",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
