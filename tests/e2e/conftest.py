"""End-to-end tests run the local mesh (network namespaces, iptables, real Envoys): root on Linux only."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from osm.models.k8s import LABEL_MONITORED_BY
from osm.testing.localmesh import LocalMesh
from osm.testing.netns import have_netns_tools


@pytest.fixture(scope="session")
def local_mesh_capable() -> None:
    reason = have_netns_tools()
    if reason:
        pytest.skip(reason)


@contextlib.contextmanager
def small_mesh(
    tmp_path_factory: pytest.TempPathFactory, name: str, manifests: str, pods: list[tuple[str, str]]
) -> Iterator[LocalMesh]:
    """A local mesh of one manifest file (`mesh.yaml`), up until the block ends; then nothing is left."""
    directory = tmp_path_factory.mktemp(name) / "manifests"
    directory.mkdir()
    (directory / "mesh.yaml").write_text(manifests)
    m = LocalMesh(directory)
    try:
        m.up()
        m.wait_ready(pods)
        yield m
    finally:
        m.down()
        assert m.leftovers() == []
        shutil.rmtree(m.state_dir, ignore_errors=True)


# Python source of upstream's usual httpbin answer: 200 to GET and HEAD of any path, on port PORT
HTTP_200 = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    do_GET = do_HEAD = answer
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", PORT), H).serve_forever()
"""

# Upstream's CreateSimpleAllowPolicy: every path and method, from ServiceAccount client/client to
# server/server.
ALLOW_ALL = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: server}
spec:
  matches: [{name: all, pathRegex: ".*", methods: ["*"]}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: test-target, namespace: server}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: server}
  rules: [{kind: HTTPRouteGroup, name: routes, matches: [all]}]
  sources: [{kind: ServiceAccount, name: client, namespace: client}]
"""

# Python source for test apps that serve TLS: writes a self-signed certificate for "localhost" and its
# key to the file named by `pem` (upstream's cases use nginx and grpcbin with such certificates).
SELF_SIGNED = """
import datetime, tempfile
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as out:
    out.write(cert.public_bytes(serialization.Encoding.PEM))
    out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
pem = out.name
"""

# 200 to GET and HEAD of any path, over HTTP on port 80 and HTTPS (self-signed) on 443
HTTP_AND_HTTPS_200 = (
    SELF_SIGNED
    + """
import http.server, ssl, threading
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    do_GET = do_HEAD = answer
    def log_message(self, *a):
        pass
https = http.server.ThreadingHTTPServer(("0.0.0.0", 443), H)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(pem)
https.socket = ctx.wrap_socket(https.socket, server_side=True)
threading.Thread(target=https.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 80), H).serve_forever()
"""
)


def yaml_docs(*docs: dict[str, Any]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def mesh_config(**spec: Any) -> str:
    """The MeshConfig osm-system/osm-mesh-config with `spec`."""
    return yaml_docs(
        {
            "apiVersion": "config.openservicemesh.io/v1alpha2",
            "kind": "MeshConfig",
            "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
            "spec": spec,
        }
    )


def client_server(
    app: str,
    *,
    port: int = 8080,
    port_name: str = "http",
    app_protocol: str = "",
    env: list[dict[str, Any]] | None = None,
) -> str:
    """Upstream e2e's usual pair, both namespaces in the mesh: Service server/server (port `port`, named
    `port_name`, with `app_protocol` if given) in front of Pod server/server running the Python source
    `app`, and Pod client/client."""
    service_port: dict[str, Any] = {"name": port_name, "port": port, "targetPort": port}
    if app_protocol:
        service_port["appProtocol"] = app_protocol
    server: dict[str, Any] = {
        "name": "server",
        "command": ["python3", "-c", app],
        "ports": [{"containerPort": port}],
    }
    if env:
        server["env"] = env
    return yaml_docs(
        *(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {LABEL_MONITORED_BY: "osm"}},
            }
            for ns in ("client", "server")
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "server", "namespace": "server"},
            "spec": {
                "selector": {"app": "server"},
                "ports": [service_port],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "server", "namespace": "server", "labels": {"app": "server"}},
            "spec": {"serviceAccountName": "server", "containers": [server]},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client", "namespace": "client"},
            "spec": {
                "serviceAccountName": "client",
                "containers": [{"name": "client", "command": ["sleep", "3600"]}],
            },
        },
    )
