"""Upstream's e2e_health_probe_test.go (and e2e_https_probe_test.go, folded into it) on the local runtime.

Meshed pods whose startup, liveness and readiness probes are the same probe: HTTP GET / on port 80,
HTTPS GET / on port 443, TCP on port 80 (no containerPorts declared, as upstream). All three become
Running and Ready: the HTTP probe goes through the sidecar's probe listener to the app, the HTTPS one is
passed through as TLS to the app, the TCP one is answered by osm-healthcheck dialing the app's port
inside the pod. Then a TCP probe of port 81, where nothing listens: the pod never becomes ready (the
sidecar must not accept the probe on the app's behalf), and its failing startup probe restarts the
container, as the kubelet does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import HTTP_AND_HTTPS_200, mesh_config, small_mesh, yaml_docs

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

# nginx in upstream's case: HTTP on 80, HTTPS on 443 (a self-signed certificate for localhost)
SERVER = HTTP_AND_HTTPS_200


def probe_pod(name: str, probe: dict[str, Any]) -> dict[str, Any]:
    timing = {"periodSeconds": 1, "failureThreshold": 3}
    container = {
        "name": "nginx",
        "command": ["python3", "-c", SERVER],
        **{f"{kind}Probe": {**probe, **timing} for kind in ("startup", "liveness", "readiness")},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "healthprobe", "labels": {"app": name}},
        "spec": {"containers": [container]},
    }


NAMESPACE = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "healthprobe", "labels": {"openservicemesh.io/monitored-by": "osm"}},
}
PODS = {
    "nginx-http": {"httpGet": {"path": "/", "port": 80}},
    # beyond upstream: the probe must reach the app with its own path (/healthy-here, answered 200)
    "nginx-https-path": {"httpGet": {"path": "/healthy-here", "port": 443, "scheme": "HTTPS"}},
    "nginx-https": {"httpGet": {"path": "/", "port": 443, "scheme": "HTTPS"}},
    "nginx-tcp": {"tcpSocket": {"port": 80}},
}
MESH = mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False}) + "---\n" + yaml_docs(NAMESPACE)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "healthprobe", MESH, []) as m:
        yield m


def test_http_https_and_tcp_probes_of_meshed_pods_pass(mesh: LocalMesh) -> None:
    (mesh.manifests / "pods.yaml").write_text(yaml_docs(*(probe_pod(n, p) for n, p in PODS.items())))
    # upstream: WaitForPodsRunningReady(healthprobe, 60 s, 3)
    mesh.wait_ready([("healthprobe", name) for name in PODS], timeout=60)
    pods = {p["name"]: p for p in mesh.pods("healthprobe", "nginx-")}
    assert all(p["meshed"] for p in pods.values())
    # the TCP probe went through osm-healthcheck, the only pod that has it
    containers = {n: [c["name"] for c in p["containers"]] for n, p in pods.items()}
    assert containers["nginx-tcp"] == ["envoy", "osm-healthcheck", "nginx"]
    assert containers["nginx-http"] == containers["nginx-https"] == ["envoy", "nginx"]
    assert all(c["restarts"] == 0 for p in pods.values() for c in p["containers"])  # every probe passed
    # an HTTPS probe reaches the app with its own path (TLS passes through the sidecar): a probe of
    # /missing, where the app answers 404, keeps the pod unready
    (mesh.manifests / "pods.yaml").write_text(
        yaml_docs(
            probe_pod(
                "nginx-https-missing", {"httpGet": {"path": "/missing", "port": 443, "scheme": "HTTPS"}}
            )
        )
    )
    mesh.wait(lambda: bool(mesh.pods("healthprobe", "nginx-https-missing")), 30, "the pod started")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert not mesh.pod("healthprobe", "nginx-https-missing")["ready"]
        time.sleep(0.5)
    (mesh.manifests / "pods.yaml").write_text("")
    mesh.wait(lambda: not mesh.pods("healthprobe", "nginx-"), 30, "the pods gone")


def test_a_tcp_probe_of_a_port_nothing_listens_on_never_passes(mesh: LocalMesh) -> None:
    (mesh.manifests / "pods.yaml").write_text(yaml_docs(probe_pod("nginx-tcp", {"tcpSocket": {"port": 81}})))
    mesh.wait(lambda: bool(mesh.pods("healthprobe", "nginx-tcp")), 30, "the pod started")

    def app_restarts() -> int:
        pod = mesh.pod("healthprobe", "nginx-tcp")
        return max((c["restarts"] for c in pod["containers"] if c["name"] == "nginx"), default=0)

    # the startup probe fails 3 times a second apart: the kubelet restarts the container
    mesh.wait(lambda: app_restarts() >= 1, 30, "a restart")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # upstream: not Running & Ready within 60 s
        assert not mesh.pod("healthprobe", "nginx-tcp")["ready"], json.dumps(mesh.status()["events"])
        time.sleep(0.5)
    events = mesh.status()["events"]
    assert any("container nginx: startup probe failed 3 times; restarting it" in e for e in events)
