"""MeshConfig `sidecar.localProxyMode: PodIP` (upstream's e2e_pod_client_server_test.go runs its cases
in both modes): a server app listening on its pod IP only (taken from `valueFrom.fieldRef:
status.podIP`) is reached through its sidecar, whose connections to 127.0.0.1 the pod's iptables rules
send to the pod IP. The mode is read when a pod starts (its rules are set then), as upstream's init
container reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import client_server, mesh_config, small_mesh

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
APPS = client_server(APP, env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}])


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    mode = {"traffic": {"enablePermissiveTrafficPolicyMode": True}, "sidecar": {"localProxyMode": "PodIP"}}
    manifests = mesh_config(**mode) + "---\n" + APPS
    with small_mesh(tmp_path_factory, "podip", manifests, [("server", "server"), ("client", "client")]) as m:
        yield m


def test_pod_ip_mode_reaches_an_app_bound_to_its_pod_ip(mesh: LocalMesh) -> None:
    mesh.wait_repeated(lambda: mesh.curl("client", "client", URL) == 200, "requests answered 200")
