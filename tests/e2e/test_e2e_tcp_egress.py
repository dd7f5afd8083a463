"""Upstream's e2e_tcp_egress_test.go on the local runtime: with `traffic.enableEgress: true`, a meshed
client sends a line to a TCP echo server outside the mesh (Service egress-server/egress-server port 80,
`appProtocol: tcp`, answering "echo response: <line>") and gets its line back, 5 times in a row; with
`enableEgress: false` the request fails (nc exits non-zero), 5 times in a row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import pod, small_mesh, yaml_docs
from tests.e2e.test_e2e_egress import egress

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

ECHO = """
import socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(b"echo response: " + line)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("0.0.0.0", 80), H).serve_forever()
"""
# echo "test request" | nc egress-server.egress-server 80 (exit 1 when the connection fails)
NC = """
import socket, sys
try:
    with socket.create_connection(("egress-server.egress-server", 80), 3) as s:
        s.settimeout(3)
        s.sendall(b"test request\\n")
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
except OSError as e:
    print(repr(e))
    sys.exit(1)
print(out.decode(), end="")
sys.exit(0 if out else 1)
"""
SERVER = yaml_docs(
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "client", "labels": {"openservicemesh.io/monitored-by": "osm"}},
    },
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "egress-server"}},
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "egress-server", "namespace": "egress-server"},
        "spec": {
            "selector": {"app": "egress-server"},
            "ports": [{"name": "tcp", "port": 80, "targetPort": 80, "appProtocol": "tcp"}],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "egress-server",
            "namespace": "egress-server",
            "labels": {"app": "egress-server"},
        },
        "spec": {"containers": [{"name": "server", "command": ["python3", "-c", ECHO]}]},
    },
    pod("client", "client"),
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    pods = [("egress-server", "egress-server"), ("client", "client")]
    with small_mesh(tmp_path_factory, "tcp-egress", egress(True) + "---\n" + SERVER, pods) as m:
        yield m


def test_tcp_egress_follows_enable_egress(mesh: LocalMesh) -> None:
    def nc() -> tuple[int, str]:
        cp = mesh.exec("client", "client", "python3", "-c", NC)
        return cp.returncode, cp.stdout

    mesh.wait_repeated(lambda: nc() == (0, "echo response: test request\n"), "the echo of a TCP request")
    (mesh.manifests / "mesh.yaml").write_text(egress(False) + "---\n" + SERVER)
    mesh.wait_repeated(lambda: nc()[0] != 0, "TCP requests fail with egress off")
