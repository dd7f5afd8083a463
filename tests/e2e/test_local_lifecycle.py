"""`osm local up` in the foreground and detached, Ctrl-C/SIGTERM, `down`, and leftovers of a killed run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from osm.cli.main import cli
from osm.local import up
from osm.testing.localmesh import LocalMesh
from osm.testing.wait import poll

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata: {name: app, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: app, labels: {app: web}}
spec:
  serviceAccountName: web
  containers: [{name: web, command: [python3, -m, http.server, "8080"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: plain, namespace: app, labels: {app: plain},
           annotations: {openservicemesh.io/sidecar-injection: disabled}}
spec:
  containers: [{name: shell, command: [sleep, "3600"]}]
"""


@pytest.fixture
def mesh(local_mesh_capable: None, tmp_path: Path) -> Iterator[LocalMesh]:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "mesh.yaml").write_text(MANIFESTS)
    m = LocalMesh(tmp_path / "m")
    yield m
    m.cleanup()
    assert m.leftovers() == []


def _osm(*args: str) -> list[str]:
    return [sys.executable, "-m", "osm.cli.main", *args]


def test_foreground_up_stops_cleanly_on_sigterm(mesh: LocalMesh) -> None:
    proc = subprocess.Popen(
        _osm("local", "up", str(mesh.manifests), "--state-dir", str(mesh.state_dir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        mesh.wait_ready([("app", "web"), ("app", "plain")], timeout=60)
        status = mesh.status()
        sidecars = {p["name"]: p["meshed"] for p in status["pods"]}
        assert sidecars == {"web": True, "plain": False}  # the annotation opts `plain` out
        assert [c["name"] for c in mesh.pod("app", "web")["containers"]] == ["envoy", "web"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert mesh.leftovers() == []


def test_cli_status_logs_exec_and_down(mesh: LocalMesh) -> None:
    mesh.up()
    mesh.wait_ready([("app", "web")], timeout=60)
    state = ["--state-dir", str(mesh.state_dir)]
    runner = CliRunner()
    status = runner.invoke(cli, ["local", "status", *state])
    assert status.exit_code == 0 and "web" in status.output and "envoy" in status.output
    # the control plane's endpoints, as URLs on this host
    assert re.search(r"^metrics: http://127\.0\.0\.1:\d+/metrics$", status.output, re.M), status.output
    logs = runner.invoke(cli, ["local", "logs", "web", "-n", "app", "-c", "envoy", *state])
    assert logs.exit_code == 0
    missing = runner.invoke(cli, ["local", "logs", "web", "-n", "app", "-c", "nope", *state])
    assert missing.exit_code != 0 and "has no container 'nope'" in missing.output
    cp = subprocess.run(
        _osm("local", "exec", "plain", "-n", "app", *state, "--", "ip", "-4", "-o", "addr", "show", "eth0"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert cp.returncode == 0 and mesh.pod("app", "plain")["ip"] in cp.stdout
    down = runner.invoke(cli, ["local", "down", *state])
    assert down.exit_code == 0 and mesh.leftovers() == []


def test_the_next_up_cleans_what_a_killed_run_left(mesh: LocalMesh) -> None:
    mesh.up()
    mesh.wait_ready([("app", "web")], timeout=60)
    pid = mesh.status()["pid"]
    os.kill(pid, signal.SIGKILL)  # no teardown at all: namespaces and processes stay behind
    assert poll(lambda: up.node_pid(mesh.state_dir) is None, 10)
    assert mesh.leftovers() != []
    mesh.up()  # cleans up first, then starts afresh
    mesh.wait_ready([("app", "web"), ("app", "plain")], timeout=60)
    assert (
        mesh.curl("app", "plain", "http://" + mesh.pod("app", "web")["ip"] + ":8080/") == 0
    )  # mTLS required
    mesh.down()
    assert mesh.leftovers() == []
