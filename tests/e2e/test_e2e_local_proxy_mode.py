"""MeshConfig `sidecar.localProxyMode: PodIP` (upstream's e2e_pod_client_server_test.go runs its cases
in both modes): a server app listening on its pod IP only (taken from `valueFrom.fieldRef:
status.podIP`) is reached through its sidecar, whose connections to 127.0.0.1 the pod's iptables rules
send to the pod IP. The mode is read when a pod starts (its rules are set then), as upstream's init
container reads it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

URL = "http://server.server.svc.cluster.local:8080/"
APP = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"""
MESH_CONFIG = """
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config, namespace: osm-system}
spec:
  traffic: {enablePermissiveTrafficPolicyMode: true}
  sidecar: {localProxyMode: MODE}
"""
APPS = """
apiVersion: v1
kind: Namespace
metadata: {name: client, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Namespace
metadata: {name: server, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: server}
spec:
  selector: {app: server}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: server, labels: {app: server}}
spec:
  serviceAccountName: server
  containers:
  - name: server
    command: [python3, -c, APP]
    env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: client}
spec:
  serviceAccountName: client
  containers: [{name: client, command: [sleep, "3600"]}]
""".replace("APP", json.dumps(APP))


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    manifests = MESH_CONFIG.replace("MODE", "PodIP") + "---" + APPS
    with small_mesh(tmp_path_factory, "podip", manifests, [("server", "server"), ("client", "client")]) as m:
        yield m


def repeated(m: LocalMesh, status: int, times: int = 5, timeout: float = 60) -> None:
    run = [0]

    def check() -> bool:
        run[0] = run[0] + 1 if m.curl("client", "client", URL) == status else 0
        return run[0] >= times

    m.wait(check, timeout, f"{times} requests in a row answered {status}")


def test_pod_ip_mode_reaches_an_app_bound_to_its_pod_ip(mesh: LocalMesh) -> None:
    repeated(mesh, 200)
