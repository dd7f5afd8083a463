"""Faults on the local mesh under the bookstore demo's steady traffic, through real sidecars.

A crash-looping app, a crashed sidecar, the controller killed with -9 (with and without a policy edit
while it is down) and a manifest directory full of broken input: the pairs a fault does not concern
see no failed request, and the mesh converges again. Figures (failures per pair, convergence times)
are written as JSON to $OSM_FAULT_FIGURES when it is set (bench/faults.py does).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osm.demo.manifests import THIEF_TARGET
from osm.testing import faults
from osm.testing.faults import PAIRS, Counts
from osm.testing.localmesh import LocalMesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

DEMO = Path(__file__).parents[2] / "demo"
CRASHER = """apiVersion: apps/v1
kind: Deployment
metadata: {name: crasher, namespace: bookbuyer}
spec:
  replicas: 1
  selector: {matchLabels: {app: crasher}}
  template:
    metadata: {labels: {app: crasher}}
    spec:
      serviceAccountName: bookbuyer
      containers: [{name: crasher, command: [sh, -c, "sleep 1; exit 3"]}]
"""
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    manifests = tmp_path_factory.mktemp("faults") / "demo"
    shutil.copytree(DEMO, manifests)
    (manifests / "90-crasher.yaml").write_text(CRASHER)
    m = LocalMesh(manifests)
    try:
        m.up()
        m.wait_ready(faults.MESHED, timeout=120)
        m.wait(lambda: faults.all_connected(m), 60, "every sidecar connected")
        # steady traffic on every pair before any fault
        first = faults.counts(m)
        m.wait(lambda: all(faults.counts(m)[p].requests > first[p].requests for p in PAIRS), 60, "traffic")
        yield m
    finally:
        m.down()
        assert m.leftovers() == []
        shutil.rmtree(m.state_dir, ignore_errors=True)
        out = os.environ.get("OSM_FAULT_FIGURES")
        if out and FIGURES:
            Path(out).write_text(json.dumps(FIGURES, indent=1, sort_keys=True))


def assert_unaffected(window: dict[str, Counts], record: str) -> None:
    FIGURES.setdefault(record, {})["pairs"] = {
        p: {"requests": c.requests, "failed": c.failures} for p, c in window.items()
    }
    for pair, c in window.items():
        assert c.requests > 0, f"{pair}: no traffic during the fault"
        assert c.failures == 0, f"{pair}: {c.failures} of {c.requests} requests failed during the fault"


def test_a_crash_looping_app_and_a_crashed_sidecar_leave_the_other_pairs_alone(mesh: LocalMesh) -> None:
    before = faults.settled_counts(mesh)
    sidecar = mesh.container("bookthief", "bookthief-", "envoy")
    killed = faults.kill_container(mesh, "bookthief", "bookthief-", "envoy")
    back = faults.converge(
        lambda: (
            mesh.container("bookthief", "bookthief-", "envoy")["restarts"] > sidecar["restarts"]
            and mesh.container("bookthief", "bookthief-", "envoy")["pid"] != killed
            and faults.all_connected(mesh, [("bookthief", "bookthief-")])
        ),
        60,
        "bookthief's sidecar restarted and connected",
    )
    mesh.wait(lambda: mesh.container("bookbuyer", "crasher", "crasher")["restarts"] >= 2, 60, "crash loop")
    assert_unaffected(faults.delta(before, faults.settled_counts(mesh)), "sidecar-crash-and-crash-loop")
    FIGURES["sidecar-crash-and-crash-loop"]["sidecar_back_s"] = round(back, 2)
    assert faults.all_connected(mesh)


def test_a_controller_killed_with_minus_9_comes_back_and_the_sidecars_never_stop(mesh: LocalMesh) -> None:
    rejected = faults.rejected_updates(mesh)
    before = faults.settled_counts(mesh)
    killed_at = time.monotonic()
    pid = faults.kill_controller(mesh)
    faults.wait_restarted(mesh, pid)
    restarted = time.monotonic() - killed_at
    faults.converge(lambda: faults.all_connected(mesh), 60, "every sidecar reconnected")
    converged = time.monotonic() - killed_at
    assert_unaffected(faults.delta(before, faults.settled_counts(mesh)), "controller-kill")
    FIGURES["controller-kill"].update(restarted_s=round(restarted, 2), reconverged_s=round(converged, 2))
    assert faults.rejected_updates(mesh) == rejected  # the new controller's config was accepted as is


def test_a_policy_edited_while_the_controller_is_down_takes_effect_when_it_is_back(mesh: LocalMesh) -> None:
    before = faults.settled_counts(mesh)
    thief = faults.thief_succeeds(mesh)
    assert not thief()
    policy = mesh.manifests / "60-bookthief-access.yaml"
    try:
        killed_at = time.monotonic()
        pid = faults.kill_controller(mesh)
        policy.write_text(THIEF_TARGET)
        edited = time.time()
        faults.wait_restarted(mesh, pid)
        assert mesh.controller()["started"] > edited  # the edit happened while it was down
        faults.converge(thief, 60, "bookthief allowed by the policy written while the controller was down")
        converged = time.monotonic() - killed_at
        assert_unaffected(faults.delta(before, faults.settled_counts(mesh)), "controller-kill-with-edit")
        FIGURES["controller-kill-with-edit"]["policy_in_effect_s"] = round(converged, 2)
    finally:
        policy.unlink(missing_ok=True)


def test_a_manifest_directory_full_of_broken_input_changes_nothing(mesh: LocalMesh, tmp_path: Path) -> None:
    pid = mesh.controller()["pid"]
    before = faults.settled_counts(mesh)
    made = faults.write_broken_manifests(mesh.manifests, tmp_path / "outside.yaml")
    try:
        reasons = (
            "not a regular file (a FIFO)",
            "manifest files are limited to",
            "unknown kind 'TrafficSplitt'",
            "95-bad-name.yaml",
            "is already defined by 10-bookbuyer.yaml",
            "did you mean 'enablePermissiveTrafficPolicyMode'?",
            "their sum must not exceed 4294967295",
            "invalid YAML",
            "outside the manifest directory",
        )
        mesh.wait(
            lambda: all(r in (mesh.state_dir / "node.log").read_text() for r in reasons),
            30,
            "the source to reject every broken input",
        )
        assert_unaffected(faults.delta(before, faults.settled_counts(mesh)), "broken-manifests")
        assert mesh.controller()["pid"] == pid and mesh.controller()["running"]
        # The mesh still follows valid edits.
        thief = faults.thief_succeeds(mesh)
        (mesh.manifests / "60-bookthief-access.yaml").write_text(THIEF_TARGET)
        faults.converge(thief, 30, "a valid policy applied beside the broken input")
    finally:
        (mesh.manifests / "60-bookthief-access.yaml").unlink(missing_ok=True)
        for p in made:
            p.unlink(missing_ok=True)
