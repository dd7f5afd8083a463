"""End-to-end tests run the local mesh (network namespaces, iptables, real Envoys): root on Linux only."""

from __future__ import annotations

import contextlib
import json
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


# Python source of upstream's usual httpbin answer: 200 to GET and HEAD of any path, on port PORT; with
# env XHTTPBIN_podname (simonkowallik/httpbin in upstream's split cases, from valueFrom.fieldRef
# metadata.name) also a `podname` header naming the pod that answered
HTTP_200 = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.send_response(200)
        if "XHTTPBIN_podname" in os.environ:
            self.send_header("podname", os.environ["XHTTPBIN_podname"])
        self.send_header("content-length", "0")
        self.end_headers()
    do_GET = do_HEAD = answer
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", PORT), H).serve_forever()
"""
PODNAME_SERVER = HTTP_200
# N HEAD requests to URL from inside a pod: a JSON list of [status, podname] (status 0: no answer)
PODNAME_CALLS = """
import json, sys, urllib.request
seen = []
for _ in range(int(sys.argv[2])):
    try:
        req = urllib.request.Request(sys.argv[1], method="HEAD")
        with urllib.request.urlopen(req, timeout=5) as r:
            seen.append([r.status, r.headers.get("podname", "")])
    except Exception as e:
        seen.append([getattr(e, "code", 0), type(e).__name__])
print(json.dumps(seen))
"""


def podname_calls(m: LocalMesh, namespace: str, pod: str, url: str, n: int = 5) -> list[tuple[int, str]]:
    """[(status, podname)] of `n` HEAD requests to `url` from the pod."""
    out = m.exec(namespace, pod, "python3", "-c", PODNAME_CALLS, url, str(n), timeout=60).stdout
    return [(int(status), str(name)) for status, name in json.loads(out or "[]")] or [(0, "no output")]


def podname_deployment(
    namespace: str,
    name: str,
    *,
    replicas: int,
    service_account: str,
    port: int = 14001,
    labels: dict[str, str] | None = None,
    app_protocol: str = "",
    service: bool = True,
) -> list[dict[str, Any]]:
    """A Deployment of PODNAME_SERVER (`app: name` or `labels`) and, if `service`, its Service `name`."""
    labels = labels or {"app": name}
    container = {
        "name": name,
        "command": ["python3", "-c", PODNAME_SERVER.replace("PORT", str(port))],
        "env": [{"name": "XHTTPBIN_podname", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/", "port": port}, "periodSeconds": 1},
    }
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"serviceAccountName": service_account, "containers": [container]},
                },
            },
        }
    ]
    if service:
        out.append(service_of(namespace, name, labels, port, app_protocol))
    return out


def service_of(
    namespace: str,
    name: str,
    selector: dict[str, str],
    port: int,
    app_protocol: str = "",
    port_name: str = "http",
) -> dict[str, Any]:
    service_port: dict[str, Any] = {"name": port_name, "port": port, "targetPort": port}
    if app_protocol:
        service_port["appProtocol"] = app_protocol
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": selector, "ports": [service_port]},
    }


def namespace(name: str, meshed: bool = True) -> dict[str, Any]:
    labels = {LABEL_MONITORED_BY: "osm"} if meshed else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


SLEEP = ("sleep", "3600")  # upstream's client pods (alpine-debug) wait to be exec'ed into


def pod(
    namespace: str,
    name: str,
    command: tuple[str, ...] | list[str] = SLEEP,
    *,
    service_account: str | None = None,
    container: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Pod of one container running `command` (by default, sleeping: a client to exec curl in). The
    ServiceAccount and the container are named `name` unless given ("" : no ServiceAccount); `spec`
    adds fields to the pod's spec (e.g. hostAliases)."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    sa = name if service_account is None else service_account
    body: dict[str, Any] = {"serviceAccountName": sa} if sa else {}
    body.update(spec)
    body["containers"] = [{"name": container or name, "command": list(command)}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def sleeper_deployment(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    """Upstream's client Deployment (alpine-debug: sleep), ServiceAccount `name`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "serviceAccountName": name,
                    "containers": [{"name": name, "command": list(SLEEP)}],
                },
            },
        },
    }


def traffic_target(source: tuple[str, str], destination: tuple[str, str], name: str, rule: str) -> str:
    """A TrafficTarget `name` from ServiceAccount `source` to `destination` (ns, name), in the
    destination's namespace, with one `rule` (YAML flow mapping)."""
    return f"""
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: {name}, namespace: {destination[0]}}}
spec:
  destination: {{kind: ServiceAccount, name: {destination[1]}, namespace: {destination[0]}}}
  rules: [{rule}]
  sources: [{{kind: ServiceAccount, name: {source[1]}, namespace: {source[0]}}}]
"""


def allow_all(source: tuple[str, str], destination: tuple[str, str], name: str) -> str:
    """Upstream's CreateSimpleAllowPolicy from ServiceAccount `source` to `destination` (ns, name)."""
    routes = f"""
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: {name}, namespace: {destination[0]}}}
spec:
  matches: [{{name: all, pathRegex: ".*", methods: ["*"]}}]
---"""
    rule = f"{{kind: HTTPRouteGroup, name: {name}, matches: [all]}}"
    return routes + traffic_target(source, destination, name, rule)


def tcp_allow(source: tuple[str, str], destination: tuple[str, str], name: str, ports: list[int]) -> str:
    """Upstream's CreateSimpleTCPAllowPolicy: a TCPRoute of `ports` and a TrafficTarget from ServiceAccount
    `source` to `destination` (ns, name), both named `name`, in the destination's namespace."""
    routes = f"""
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {{name: {name}, namespace: {destination[0]}}}
spec:
  matches: {{ports: {ports}}}
---"""
    return routes + traffic_target(source, destination, name, f"{{kind: TCPRoute, name: {name}}}")


def wait_replicas(m: LocalMesh, groups: list[tuple[str, str, int]], timeout: float = 90) -> None:
    """Until each (namespace, pod name prefix, n) has n ready pods."""
    for ns, prefix, n in groups:
        m.wait(
            lambda ns=ns, prefix=prefix, n=n: len([p for p in m.pods(ns, prefix) if p["ready"]]) == n,
            timeout,
            f"{n} ready pods {ns}/{prefix}*",
        )


def traffic_split(namespace: str, name: str, apex: str, backends: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"service": apex, "backends": [{"service": b, "weight": w} for b, w in backends.items()]},
    }


# Upstream's CreateSimpleAllowPolicy from ServiceAccount client/client to server/server
ALLOW_ALL = allow_all(("client", "client"), ("server", "server"), "test-target")

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

# 200 to GET and HEAD of any path but /missing (404), over HTTP on port 80 and HTTPS (self-signed) on 443
HTTP_AND_HTTPS_200 = (
    SELF_SIGNED
    + """
import http.server, ssl, threading
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.send_response(404 if self.path.startswith("/missing") else 200)
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
    server: dict[str, Any] = {
        "name": "server",
        "command": ["python3", "-c", app],
        "ports": [{"containerPort": port}],
    }
    if env:
        server["env"] = env
    return yaml_docs(
        namespace("client"),
        namespace("server"),
        service_of("server", "server", {"app": "server"}, port, app_protocol, port_name),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "server", "namespace": "server", "labels": {"app": "server"}},
            "spec": {"serviceAccountName": "server", "containers": [server]},
        },
        pod("client", "client"),
    )
