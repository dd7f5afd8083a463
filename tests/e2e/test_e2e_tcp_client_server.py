"""Upstream's e2e_tcp_client_server_test.go on the local runtime, both contexts: a TCP echo server
(Service port 8078, appProtocol tcp, as fortio's TCP echo) and a client sending one payload
(`fortio load -n 1 -payload test-request tcp://...`). With SMI policies (a TCPRoute of port 8078 and a
TrafficTarget) the echo comes back, 5 times in a row; with the TrafficTarget and the TCPRoute deleted it
does not, 5 times in a row. In permissive mode, without policies, the echo comes back 5 times in a row."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import client_server, mesh_config, small_mesh, tcp_allow

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

ECHO = """
import socketserver
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("0.0.0.0", 8078), H).serve_forever()
"""
# one TCP call with a payload; prints what came back ("" when the connection failed or was closed)
CALL = """
import socket
try:
    with socket.create_connection(("server.server.svc.cluster.local", 8078), 3) as s:
        s.settimeout(3)
        s.sendall(b"test-request")
        print(s.recv(4096).decode(), end="")
except OSError:
    pass
"""
TCP_ALLOW = "---\n" + tcp_allow(("client", "client"), ("server", "server"), "routes", [8078])


def manifests(permissive: bool) -> str:
    return (
        mesh_config(traffic={"enablePermissiveTrafficPolicyMode": permissive})
        + "---\n"
        + client_server(ECHO, port=8078, port_name="tcp", app_protocol="tcp")
    )


@pytest.fixture(scope="module", params=["SMI", "permissive"])
def mesh(
    request: pytest.FixtureRequest, local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalMesh, bool]]:
    permissive = request.param == "permissive"
    with small_mesh(
        tmp_path_factory, "tcp", manifests(permissive), [("server", "server"), ("client", "client")]
    ) as m:
        yield m, permissive


def echoed(m: LocalMesh) -> bool:
    return m.exec("client", "client", "python3", "-c", CALL).stdout == "test-request"


def test_tcp_traffic_from_one_pod_client_to_one_pod_server(mesh: tuple[LocalMesh, bool]) -> None:
    m, permissive = mesh
    if permissive:
        m.wait_repeated(lambda: echoed(m), "the echo, permissive mode")
        return
    (m.manifests / "mesh.yaml").write_text(manifests(False) + TCP_ALLOW)
    m.wait_repeated(lambda: echoed(m), "the echo, with the TCPRoute and TrafficTarget")
    (m.manifests / "mesh.yaml").write_text(manifests(False))
    m.wait_repeated(lambda: not echoed(m), "no echo without them")


# a connection kept open: a ping echoed every 0.2 s; prints "open" once, then "closed" when it ends
KEEP_OPEN = """
import socket, sys, time
s = socket.create_connection(("server.server.svc.cluster.local", 8078), 3)
s.settimeout(5)
deadline = time.monotonic() + 120
try:
    while time.monotonic() < deadline:
        s.sendall(b"ping")
        if s.recv(16) != b"ping":
            break
        if not getattr(sys, "said", False):
            print("open", flush=True)
            sys.said = True
        time.sleep(0.2)
except OSError:
    pass
print("closed", flush=True)
"""


def test_a_revoked_source_loses_its_open_connection_too(mesh: tuple[LocalMesh, bool]) -> None:
    """Beyond upstream: a TCP connection open when its TrafficTarget goes is closed within the sidecars'
    drain time (30 s), not left open for Envoy's default ten minutes."""
    m, permissive = mesh
    if permissive:
        pytest.skip("SMI policies only")
    (m.manifests / "mesh.yaml").write_text(manifests(False) + TCP_ALLOW)
    m.wait_repeated(lambda: echoed(m), "the echo, with the TCPRoute and TrafficTarget")
    netns = m.pod("client", "client")["netns"]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", KEEP_OPEN], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        revoked = time.monotonic()
        (m.manifests / "mesh.yaml").write_text(manifests(False))
        assert proc.stdout.readline() == "closed\n"
        assert time.monotonic() - revoked < 60, "the connection outlived the revocation"
    finally:
        proc.kill()
        proc.wait(10)
