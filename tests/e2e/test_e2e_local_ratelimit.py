"""Upstream's e2e_local_ratelimit_test.go on the local runtime, and the rest of UpstreamTrafficSetting.

Upstream's case: SMI mode, client allowed to server by a simple policy (HTTPRouteGroup `.*`, any
method); requests succeed. An UpstreamTrafficSetting for the server's host with a local HTTP rate limit
of 1 request a minute per virtual host: the client then gets 429, repeatedly. The limit moved to the
route level (`httpRoutes[].path: .*`, the path the HTTPRouteGroup allows): 429 again, repeatedly.

Beyond upstream's case: a TCP connection limit on a TCP service (the second connection in a minute is
closed by the server's sidecar: its `local_rate_limit` counter), and connection settings on the client
(maxRequests and maxPendingRequests 1: of concurrent requests over HTTP/2 between the sidecars, those over
the limit get 503 at once and Envoy's `upstream_rq_active_overflow` counts them). Removing the setting lifts
the limits.
"""

from __future__ import annotations

import concurrent.futures
import json
import sys
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

SERVER = "http://server.server.svc.cluster.local:8080/"
APP = """
import http.server, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(1)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""
ECHO = """
import socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", 9000), H).serve_forever()
"""
ECHO_CLIENT = """
import socket
try:
    s = socket.create_connection(("echo.server.svc.cluster.local", 9000), timeout=3)
    s.settimeout(3)
    s.sendall(b"ping\\n")
    print(s.recv(16).decode().strip() or "closed")
except OSError as e:
    print(type(e).__name__)
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
kind: Service
metadata: {name: echo, namespace: server}
spec:
  selector: {app: server}
  ports: [{name: tcp-echo, port: 9000, targetPort: 9000}]
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: server, labels: {app: server}}
spec:
  serviceAccountName: server
  containers:
  - name: server
    command: [python3, -c, APP]
    ports: [{containerPort: 8080}]
  - name: echo
    command: [python3, -c, ECHO]
    ports: [{containerPort: 9000}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: client, labels: {app: client}}
spec:
  serviceAccountName: client
  containers: [{name: client, command: [sleep, "3600"]}]
---
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
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: echo-target, namespace: server}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: server}
  rules: [{kind: TCPRoute, name: echo}]
  sources: [{kind: ServiceAccount, name: client, namespace: client}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: echo, namespace: server}
spec: {matches: {ports: [9000]}}
""".replace("APP", json.dumps(APP)).replace("ECHO", json.dumps(ECHO))
SETTING = """
---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: UpstreamTrafficSetting
metadata: {name: server, namespace: server}
spec:
  host: server.server.svc.cluster.local
"""
ECHO_SETTING = SETTING.replace("name: server,", "name: echo,").replace("host: server.", "host: echo.")
VHOST_LIMIT = "  rateLimit: {local: {http: {requests: 1, unit: minute}}}\n"
ROUTE_LIMIT = '  httpRoutes: [{path: ".*", rateLimit: {local: {http: {requests: 1, unit: minute}}}}]\n'
TCP_LIMIT = "  rateLimit: {local: {tcp: {connections: 1, unit: minute}}}\n"
CONNECTIONS = "  connectionSettings: {http: {maxRequests: 1, maxPendingRequests: 1}}\n"


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "ratelimit", MESH, [("server", "server"), ("client", "client")]) as m:
        yield m


def write(m: LocalMesh, setting: str) -> None:
    (m.manifests / "mesh.yaml").write_text(MESH + setting)


def repeated(m: LocalMesh, status: int) -> None:
    """Until 5 requests in a row get `status` (upstream's WaitForRepeatedSuccess)."""
    m.wait_repeated(
        lambda: m.curl("client", "client", SERVER) == status, f"requests answered {status}", timeout=30
    )


def test_http_rate_limit_at_virtual_host_then_route_level(mesh: LocalMesh) -> None:
    repeated(mesh, 200)
    write(mesh, SETTING + VHOST_LIMIT)
    repeated(mesh, 429)
    write(mesh, SETTING + ROUTE_LIMIT)
    repeated(mesh, 429)
    write(mesh, "")
    repeated(mesh, 200)


def echo(m: LocalMesh) -> str:
    return m.exec("client", "client", sys.executable, "-c", ECHO_CLIENT).stdout.strip()


def test_tcp_connection_limit(mesh: LocalMesh) -> None:
    mesh.wait(lambda: echo(mesh) == "ping", 30, "the echo service answering")
    write(mesh, ECHO_SETTING + TCP_LIMIT)
    try:
        # one connection a minute: the next is closed by the server's sidecar without an answer
        mesh.wait(lambda: echo(mesh) != "ping", 30, "a connection closed by the limit")
        stats = mesh.envoy_stats("server", "server", "local_rate_limit")
        assert stats.get("local_rate_limit.inbound_server/echo_9000.rate_limited", 0) >= 1, stats
    finally:
        write(mesh, "")
    mesh.wait(lambda: echo(mesh) == "ping", 30, "the echo service answering again")


def test_connection_settings_overflow_concurrent_requests(mesh: LocalMesh) -> None:
    repeated(mesh, 200)
    write(mesh, SETTING + CONNECTIONS)
    try:

        def cluster_limited() -> bool:
            dump = mesh.exec("client", "client", "curl", "-s", "http://127.0.0.1:15000/config_dump").stdout
            return '"max_pending_requests": 1' in dump

        mesh.wait(cluster_limited, 30, "the client's cluster limited")
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda _: mesh.curl("client", "client", SERVER + "slow"), range(6)))
        assert statuses.count(200) >= 1 and 503 in statuses, statuses
        # sidecar to sidecar is HTTP/2: the requests over maxRequests overflow the active-request breaker
        overflow = mesh.envoy_stats("client", "client", "upstream_rq_active_overflow")
        assert overflow.get("cluster.server/server|8080.upstream_rq_active_overflow", 0) >= 1, overflow
    finally:
        write(mesh, "")
    repeated(mesh, 200)
