"""Upstream's e2e_tcp_server_first_test.go on the local runtime: in permissive mode, a server that talks
first (it streams `y` lines as soon as a connection opens and never reads, as upstream's
`nc -lkp 80 -e sh -c "while yes; do :; done"`) behind a Service port with `appProtocol:
tcp-server-first`; a client that only connects and listens gets the lines through both sidecars within
5 s (upstream: the client's output contains "\\ny\\n"). Nothing on the path may wait for the client to
speak first (no protocol sniffing of the client's first bytes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import client_server, mesh_config, small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

SERVER = """
import socketserver, time
class H(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            while True:
                self.request.sendall(b"y\\n" * 64)
                time.sleep(0.05)
        except OSError:
            pass
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("0.0.0.0", 80), H).serve_forever()
"""
# nc server.server 80: connect, send nothing, print what arrives (for at most 3 s)
CLIENT = """
import socket, time
got = b""
try:
    with socket.create_connection(("server.server", 80), 3) as s:
        s.settimeout(0.5)
        end = time.monotonic() + 3
        while time.monotonic() < end and len(got) < 4096:
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                break
            got += chunk
except OSError as e:
    got += repr(e).encode()
print(got.decode(errors="replace"), end="")
"""
MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": True})
    + "---\n"
    + client_server(SERVER, port=80, port_name="tcp-server-first", app_protocol="tcp-server-first")
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(
        tmp_path_factory, "server-first", MESH, [("server", "server"), ("client", "client")]
    ) as m:
        yield m


def test_a_server_first_protocol_reaches_a_client_that_never_speaks(mesh: LocalMesh) -> None:
    def client_output() -> str:
        return mesh.exec("client", "client", "python3", "-c", CLIENT, timeout=10).stdout

    # upstream: Eventually (5 s) the client's logs contain "\ny\n"
    mesh.wait(lambda: "\ny\n" in client_output(), 5, "the server's first bytes at a silent client")
    # and it was the sidecars that carried it: the client's outbound connection went through Envoy
    opened = mesh.envoy_stats("client", "client", r"cluster\.server/server\|80\.upstream_cx_total")
    assert opened and all(v >= 1 for v in opened.values()), opened
