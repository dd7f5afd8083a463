"""Fault injection on the local mesh running the bookstore demo, under its steady traffic.

Shared by the end-to-end tests (which assert the outcomes) and `bench/faults.py` (which records the
figures). The demo apps count every request they make or serve (`stats.json` per pod); a fault's effect
on a pair of apps is the change of those counters over the fault:

- bookbuyer -> bookstore (the split): bookbuyer's requests and failures;
- bookstore -> bookwarehouse: bookstore's restocks and failed restocks;
- bookwarehouse -> redis (TCP): bookwarehouse's requests and failures.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from osm.demo.manifests import SIDECARS
from osm.testing.localmesh import LocalMesh
from osm.testing.wait import wait_until

PAIRS = ("bookbuyer->bookstore", "bookstore->bookwarehouse", "bookwarehouse->redis")
MESHED = SIDECARS


@dataclass(frozen=True)
class Counts:
    requests: int
    failures: int


def counts(mesh: LocalMesh) -> dict[str, Counts]:
    """The cumulative counters of each pair (summed over the pods of each app)."""

    def total(ns: str, prefix: str, count: Callable[[dict[str, int]], Counts]) -> Counts:
        parts = [count(mesh.stats_of(p)) for p in mesh.pods(ns, prefix)]
        return Counts(sum(c.requests for c in parts), sum(c.failures for c in parts))

    def requests(s: dict[str, int]) -> Counts:
        return Counts(int(s.get("requests", 0)), int(s.get("failure", 0)))

    def restocks(s: dict[str, int]) -> Counts:
        ok, bad = int(s.get("restock_success", 0)), int(s.get("restock_failure", 0))
        return Counts(ok + bad, bad)

    return {
        "bookbuyer->bookstore": total("bookbuyer", "bookbuyer-", requests),
        "bookstore->bookwarehouse": total("bookstore", "bookstore-", restocks),
        "bookwarehouse->redis": total("bookwarehouse", "bookwarehouse-", requests),
    }


def delta(before: dict[str, Counts], after: dict[str, Counts]) -> dict[str, Counts]:
    return {
        k: Counts(after[k].requests - before[k].requests, after[k].failures - before[k].failures)
        for k in PAIRS
    }


def settled_counts(mesh: LocalMesh, timeout: float = 10.0) -> dict[str, Counts]:
    """Counts once every app has written its stats again (they do every 0.5 s): nothing done before
    this call is missing from them."""
    now = time.time()
    apps = [("bookbuyer", "bookbuyer-"), ("bookstore", "bookstore-"), ("bookwarehouse", "bookwarehouse-")]
    wait_until(
        lambda: all(
            float(mesh.stats_of(p).get("time", 0)) > now for ns, prefix in apps for p in mesh.pods(ns, prefix)
        ),
        timeout,
        "every app to write its counters",
        interval=0.1,
        tolerate=(KeyError, OSError, ValueError),
    )
    return counts(mesh)


def all_connected(mesh: LocalMesh, pods: list[tuple[str, str]] = MESHED) -> bool:
    """Every listed sidecar is connected to the control plane."""
    return all(mesh.envoy_stat(ns, prefix, "control_plane.connected_state") == 1 for ns, prefix in pods)


def rejected_updates(mesh: LocalMesh, pods: list[tuple[str, str]] = MESHED) -> int:
    """Configuration updates the listed sidecars rejected, over every xDS type."""
    return sum(sum(mesh.envoy_stats(ns, prefix, r"update_rejected$").values()) for ns, prefix in pods)


def kill_controller(mesh: LocalMesh) -> int:
    """kill -9 the control plane; its pid."""
    pid = int(mesh.controller()["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid


def wait_restarted(mesh: LocalMesh, old_pid: int, timeout: float = 60) -> float:
    return wait_until(
        lambda: (
            mesh.controller().get("pid") not in (None, old_pid) and bool(mesh.controller().get("running"))
        ),
        timeout,
        "the controller restarted",
        tolerate=(KeyError, OSError, ValueError),
    )


def kill_container(mesh: LocalMesh, ns: str, prefix: str, container: str) -> int:
    pid = mesh.container(ns, prefix, container)["pid"]
    os.kill(int(pid), signal.SIGKILL)
    return int(pid)


def converge(check: Callable[[], bool], timeout: float, what: str) -> float:
    return wait_until(
        check, timeout, what, interval=0.1, tolerate=(KeyError, OSError, ValueError, LookupError)
    )


def thief_succeeds(mesh: LocalMesh) -> Callable[[], bool]:
    """True once bookthief's success counter has grown since this was made."""
    first = sum(int(mesh.stats_of(p).get("success", 0)) for p in mesh.pods("bookthief", "bookthief-"))

    def check() -> bool:
        now = sum(int(mesh.stats_of(p).get("success", 0)) for p in mesh.pods("bookthief", "bookthief-"))
        return now > first

    return check


def write_broken_manifests(root: Path, outside: Path) -> list[Path]:
    """Every broken input of the hardening probes, written into the manifest directory. Returns the
    paths to remove afterwards."""
    made: list[Path] = []

    def put(name: str, text: str) -> None:
        p = root / name
        p.write_text(text)
        made.append(p)

    fifo = root / "95-fifo.yaml"
    os.mkfifo(fifo)
    made.append(fifo)
    put("95-oversized.yaml", "# padding\n" + "#" * (5 * 1024 * 1024) + "\n")
    put(
        "95-kind-typo.yaml",
        (root / "50-traffic-split.yaml").read_text().replace("kind: TrafficSplit", "kind: TrafficSplitt"),
    )
    put(
        "95-bad-name.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: 12, namespace: bookstore}\nspec: {}\n",
    )
    put(
        "95-duplicate.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: bookbuyer, namespace: bookbuyer}\n",
    )
    put(
        "95-mesh-config-typo.yaml",
        "apiVersion: config.openservicemesh.io/v1alpha2\nkind: MeshConfig\n"
        "metadata: {name: osm-mesh-config, namespace: osm-system}\n"
        "spec: {traffic: {enablePermisiveTrafficPolicyMode: true}}\n",
    )
    put(
        "95-weights.yaml",
        "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\n"
        "metadata: {name: huge, namespace: bookstore}\n"
        "spec: {service: bookstore, backends: [{service: bookstore-v1, weight: 3000000000}, "
        "{service: bookstore-v2, weight: 3000000000}]}\n",
    )
    put("95-not-yaml.yaml", "kind: [unclosed\n")
    outside.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: leaked}\n")
    link = root / "95-outside.yaml"
    link.symlink_to(outside)
    made.append(link)
    return made
