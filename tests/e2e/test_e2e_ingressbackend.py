"""Upstream's e2e_ingressbackend_test.go on the local runtime, both phases.

An ingress controller outside the mesh (a reverse proxy in a monitored namespace whose pods get no
sidecar, as upstream's nginx) forwards to a meshed server. Without an IngressBackend the server's
sidecar refuses the plaintext connection and the ingress answers 502, repeatedly. With an
IngressBackend naming the ingress's Service as its source, requests through the ingress get 200,
repeatedly. Beyond upstream's case: a client that is not a listed source still cannot reach the server
directly (its connection is closed), and deleting the IngressBackend brings the 502 back.

The HTTPS phase (upstream's ingress-with-mTLS flow): MeshConfig `certificate.ingressGateway` makes the
mesh issue the ingress a client certificate (Secret server/ingress-gateway-cert: tls.crt, tls.key,
ca.crt; in local mode its files under the state dir). The ingress now speaks HTTPS to the server's
sidecar with that certificate, checking the sidecar's own certificate against ca.crt (nginx's
proxy-ssl-secret and proxy-ssl-verify); the IngressBackend's port says https, with the SNI host and an
AuthenticatedPrincipal source naming the certificate's SAN beside the Service source: 200, repeatedly.
Beyond upstream's case: the same ingress without a client certificate is refused (502).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography import x509

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
import http.client, http.server, os, socket, ssl, urllib.error, urllib.request
BACKEND = os.environ["BACKEND"]
def fetch(path):
    if not BACKEND.startswith("https:"):
        return urllib.request.urlopen(BACKEND + path, timeout=5)
    # upstream's nginx: proxy-ssl-secret (the client certificate), proxy-ssl-verify on, proxy_ssl_name
    certs = os.environ["CERTS"]
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
    if os.environ.get("CLIENT_CERT") == "yes":
        ctx.load_cert_chain(os.path.join(certs, "tls.crt"), os.path.join(certs, "tls.key"))
    host, port = BACKEND.split("//")[1].split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=5)
    raw = socket.create_connection((host, int(port)), 5)
    conn.sock = ctx.wrap_socket(raw, server_hostname=os.environ["SNI"])
    conn.request("GET", path)
    return conn.getresponse()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with fetch(self.path) as r:
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


GATEWAY_SAN = "nginx.server.cluster.local"
SERVER_NAME = "server.server.cluster.local"  # the server's identity: its sidecar's certificate
MESH_TLS = MESH.replace(
    "  traffic: {enablePermissiveTrafficPolicyMode: false}",
    "  traffic: {enablePermissiveTrafficPolicyMode: false}\n"
    "  certificate:\n"
    "    ingressGateway:\n"
    f"      subjectAltNames: [{GATEWAY_SAN}]\n"
    "      validityDuration: 24h\n"
    "      secret: {name: ingress-gateway-cert, namespace: server}",
)
INGRESS_TLS_POD = """
---
apiVersion: v1
kind: Service
metadata: {name: ingress-tls, namespace: ingress}
spec:
  selector: {app: ingress-tls}
  ports: [{name: http, port: 8000, targetPort: 8000}]
---
apiVersion: v1
kind: Pod
metadata: {name: NAME, namespace: ingress, labels: {app: ingress-tls}}
spec:
  containers:
  - name: proxy
    command: [python3, -c, INGRESS_APP]
    env:
    - {name: BACKEND, value: "https://SERVER_IP:8080"}
    - {name: CERTS, value: "CERTS_DIR"}
    - {name: SNI, value: SERVER_NAME}
    - {name: CLIENT_CERT, value: "WITH_CERT"}
    ports: [{containerPort: 8000}]
""".replace("INGRESS_APP", json.dumps(INGRESS_APP)).replace("SERVER_NAME", SERVER_NAME)
INGRESS_BACKEND_TLS = f"""
---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: IngressBackend
metadata: {{name: httpbin-https, namespace: server}}
spec:
  backends:
  - name: server
    port: {{number: 8080, protocol: https}}
    tls: {{skipClientCertValidation: false, sniHosts: [{SERVER_NAME}]}}
  sources:
  - {{kind: Service, name: ingress-tls, namespace: ingress}}
  - {{kind: AuthenticatedPrincipal, name: {GATEWAY_SAN}}}
"""


def test_https_ingress_with_the_mesh_issued_gateway_certificate(mesh: LocalMesh) -> None:
    certs = mesh.secret_dir("server", "ingress-gateway-cert")
    (mesh.manifests / "mesh.yaml").write_text(MESH_TLS + INGRESS_BACKEND_TLS)
    mesh.wait(lambda: all((certs / k).is_file() for k in ("tls.crt", "tls.key", "ca.crt")), 30, "the Secret")
    cert = x509.load_pem_x509_certificate((certs / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [GATEWAY_SAN]
    server_ip = mesh.pod("server", "server")["ip"]
    pods = ""
    for name, with_cert in (("ingress-tls", "yes"), ("ingress-no-cert", "no")):
        pods += (
            INGRESS_TLS_POD.replace("NAME", name)
            .replace("SERVER_IP", server_ip)
            .replace("CERTS_DIR", str(certs))
            .replace("WITH_CERT", with_cert)
        )
    (mesh.manifests / "ingress-tls.yaml").write_text(pods)
    mesh.wait_ready([("ingress", "ingress-tls"), ("ingress", "ingress-no-cert")])
    url = "http://{}:8000/status/200"
    tls_ingress = url.format(mesh.pod("ingress", "ingress-tls")["ip"])
    repeated(mesh, tls_ingress, 200)
    # the same ingress without the gateway certificate: the sidecar refuses the handshake
    assert mesh.curl("outside", "client", url.format(mesh.pod("ingress", "ingress-no-cert")["ip"])) == 502
    (mesh.manifests / "mesh.yaml").write_text(MESH_TLS)
    repeated(mesh, tls_ingress, 502)
