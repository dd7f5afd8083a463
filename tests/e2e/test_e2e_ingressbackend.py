"""Upstream's e2e_ingressbackend_test.go (its HTTP part) on the local runtime.

An ingress controller outside the mesh (a reverse proxy in a monitored namespace whose pods get no
sidecar, as upstream's nginx) forwards to a meshed server. Without an IngressBackend the server's
sidecar refuses the plaintext connection and the ingress answers 502, repeatedly. With an
IngressBackend naming the ingress's Service as its source, requests through the ingress get 200,
repeatedly. Beyond upstream's case: a client that is not a listed source still cannot reach the server
directly (its connection is closed), and deleting the IngressBackend brings the 502 back.

Upstream's HTTPS part (an ingress gateway certificate from MeshConfig `certificate.ingressGateway`) is
not mirrored yet: the local runtime does not issue that Secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

INGRESS_URL = "http://ingress.ingress.svc.cluster.local:8000/status/200"
SERVER_URL = "http://server.server.svc.cluster.local:8080/status/200"
SERVER_APP = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""
INGRESS_APP = """
import http.server, os, urllib.error, urllib.request
BACKEND = os.environ["BACKEND"]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with urllib.request.urlopen(BACKEND + self.path, timeout=5) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, b""
        except Exception:
            status, body = 502, b"bad gateway"
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""
MESH = """
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config, namespace: osm-system}
spec:
  traffic: {enablePermissiveTrafficPolicyMode: false}
---
apiVersion: v1
kind: Namespace
metadata: {name: server, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: ingress
  labels: {openservicemesh.io/monitored-by: osm}
  annotations: {openservicemesh.io/sidecar-injection: disabled}
---
apiVersion: v1
kind: Namespace
metadata: {name: outside}
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
  containers: [{name: server, command: [python3, -c, SERVER_APP], ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: ingress, namespace: ingress}
spec:
  selector: {app: ingress}
  ports: [{name: http, port: 8000, targetPort: 8000}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: outside}
spec:
  containers: [{name: client, command: [sleep, "3600"]}]
""".replace("SERVER_APP", json.dumps(SERVER_APP))
# The ingress proxy forwards to the server's endpoint (as nginx does), known once the server runs.
INGRESS_POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: ingress, namespace: ingress, labels: {app: ingress}}
spec:
  containers:
  - name: proxy
    command: [python3, -c, INGRESS_APP]
    env: [{name: BACKEND, value: "http://SERVER_IP:8080"}]
    ports: [{containerPort: 8000}]
""".replace("INGRESS_APP", json.dumps(INGRESS_APP))
INGRESS_BACKEND = """
---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: IngressBackend
metadata: {name: httpbin-http, namespace: server}
spec:
  backends: [{name: server, port: {number: 8080, protocol: http}}]
  sources: [{kind: Service, name: ingress, namespace: ingress}]
"""


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "ingress", MESH, [("server", "server"), ("outside", "client")]) as m:
        ingress = INGRESS_POD.replace("SERVER_IP", m.pod("server", "server")["ip"])
        (m.manifests / "ingress.yaml").write_text(ingress)
        m.wait_ready([("ingress", "ingress")])
        yield m


def repeated(m: LocalMesh, url: str, status: int) -> None:
    m.wait_repeated(
        lambda: m.curl("outside", "client", url) == status, f"requests to {url} answered {status}"
    )


def test_http_ingress_with_ingress_backend(mesh: LocalMesh) -> None:
    # Requests fail (502 from the ingress) while no IngressBackend exists
    repeated(mesh, INGRESS_URL, 502)
    (mesh.manifests / "mesh.yaml").write_text(MESH + INGRESS_BACKEND)
    repeated(mesh, INGRESS_URL, 200)
    # Only the listed source: the client, outside the mesh, cannot reach the server itself
    assert mesh.curl("outside", "client", SERVER_URL) == 0
    (mesh.manifests / "mesh.yaml").write_text(MESH)
    repeated(mesh, INGRESS_URL, 502)
