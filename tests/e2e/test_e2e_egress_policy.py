"""Upstream's e2e_egress_policy_test.go on the local runtime: its four contexts, with global egress off.

An "external" server (a pod outside the mesh, named httpbin.org for the client through the client pod's
hostAliases, as DNS would name it) serves HTTP on 80 and HTTPS on 443. For each context, with the Egress
policy (and its HTTPRouteGroup) in place the client's request succeeds (200, repeatedly); with them
deleted it fails with curl's exit code 7 (connection refused: the client, in SMI mode with no upstream
and no egress, has no outbound listener), repeatedly:
- HTTP egress without route matches (host httpbin.org, port 80, http);
- HTTP egress with a route match (an HTTPRouteGroup allowing /status.*); beyond upstream: a path the
  group does not allow gets 404;
- HTTPS egress (host httpbin.org, port 443, https: matched by SNI); beyond upstream: another SNI is
  refused;
- TCP egress (port 443, tcp: any address).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

SERVER = """
import http.server, os, ssl, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path.startswith("/status/200") or self.path == "/other" else 404
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
plain = http.server.ThreadingHTTPServer(("0.0.0.0", 80), H)
tls = http.server.ThreadingHTTPServer(("0.0.0.0", 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.environ["CERT"], os.environ["KEY"])
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
plain.serve_forever()
"""
MESH = """
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config, namespace: osm-system}
spec:
  traffic: {enablePermissiveTrafficPolicyMode: false, enableEgress: false}
  featureFlags: {enableEgressPolicy: true}
---
apiVersion: v1
kind: Namespace
metadata: {name: client, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Namespace
metadata: {name: external}
---
apiVersion: v1
kind: Pod
metadata: {name: httpbin, namespace: external}
spec:
  containers:
  - name: httpbin
    command: [python3, -c, SERVER]
    env: [{name: CERT, value: CERT_PATH}, {name: KEY, value: KEY_PATH}]
"""
CLIENT = """
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: client}
spec:
  serviceAccountName: client
  hostAliases: [{ip: "EXTERNAL_IP", hostnames: [httpbin.org, other.example.org]}]
  containers: [{name: client, command: [sleep, "3600"]}]
"""
EGRESS = """---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: Egress
metadata: {name: NAME, namespace: client}
spec:
  sources: [{kind: ServiceAccount, name: client, namespace: client}]
"""
HTTP = (
    EGRESS.replace("NAME", "httpbin-80") + "  hosts: [httpbin.org]\n  ports: [{number: 80, protocol: http}]\n"
)
ROUTES = """---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: httpbin-status, namespace: client}
spec:
  matches: [{name: status, pathRegex: /status.*}]
"""
HTTP_MATCH = (
    HTTP + "  matches: [{apiGroup: specs.smi-spec.io/v1alpha4, kind: HTTPRouteGroup, name: httpbin-status}]\n"
)
HTTPS = (
    EGRESS.replace("NAME", "httpbin-443")
    + "  hosts: [httpbin.org]\n  ports: [{number: 443, protocol: https}]\n"
)
TCP = EGRESS.replace("NAME", "httpbin-443") + "  ports: [{number: 443, protocol: tcp}]\n"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "httpbin.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("httpbin.org")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    directory.chmod(0o755)
    key_path.chmod(0o644)
    return cert_path, key_path


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    manifests = (
        MESH.replace("SERVER", json.dumps(SERVER))
        .replace("CERT_PATH", str(cert))
        .replace("KEY_PATH", str(key))
    )
    with small_mesh(tmp_path_factory, "egress", manifests, [("external", "httpbin")]) as m:
        ip = m.pod("external", "httpbin")["ip"]
        (m.manifests / "client.yaml").write_text(CLIENT.replace("EXTERNAL_IP", ip))
        m.wait_ready([("client", "client")])
        yield m


def curl(m: LocalMesh, url: str, *args: str) -> tuple[int, int]:
    return m.request("client", "client", url, *args)


def repeated(m: LocalMesh, url: str, want: tuple[int, int]) -> None:
    m.wait_repeated(lambda: curl(m, url) == want, f"requests to {url}: curl exit {want[0]}, status {want[1]}")


def scenario(m: LocalMesh, policy: str, url: str) -> None:
    (m.manifests / "egress.yaml").write_text(policy)
    repeated(m, url, (0, 200))


def removed(m: LocalMesh, url: str) -> None:
    (m.manifests / "egress.yaml").write_text("")
    repeated(m, url, (7, 0))  # exit code 7: connection refused


def test_http_egress_policy_without_route_matches(mesh: LocalMesh) -> None:
    url = "http://httpbin.org:80/status/200"
    scenario(mesh, HTTP, url)
    removed(mesh, url)


def test_http_egress_policy_with_route_match(mesh: LocalMesh) -> None:
    url = "http://httpbin.org:80/status/200"
    scenario(mesh, ROUTES + HTTP_MATCH, url)
    assert curl(mesh, "http://httpbin.org:80/other") == (0, 404)  # not a route of the group
    removed(mesh, url)


def test_https_egress_policy(mesh: LocalMesh) -> None:
    url = "https://httpbin.org:443/status/200"
    scenario(mesh, HTTPS, url)
    # another server name on the same address and port is not an allowed host: the sidecar closes it
    code, status = curl(mesh, "https://other.example.org:443/status/200")
    assert (code, status) != (0, 200) and code != 0
    removed(mesh, url)


def test_tcp_egress_policy(mesh: LocalMesh) -> None:
    url = "https://httpbin.org:443/status/200"
    scenario(mesh, TCP, url)
    assert curl(mesh, "https://other.example.org:443/status/200") == (0, 200)  # any host on the port
    removed(mesh, url)


def test_no_policy_no_egress(mesh: LocalMesh) -> None:
    assert curl(mesh, "http://httpbin.org:80/status/200")[0] == 7
