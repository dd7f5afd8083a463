"""Upstream's e2e_envoy_max_mtls_version_test.go on the local runtime.

MeshConfig `sidecar.tlsMaxProtocolVersion` TLSv1_2, then TLSv1_3: the client reaches the server (200,
repeatedly), and the server's sidecar shows the mTLS version it negotiated (Envoy's
`ssl.versions.*` counters of its inbound listener). TLSv1_1: upstream accepts it and every sidecar
loses the control plane (its test expects curl exit 7); ours refuses that MeshConfig, naming the field,
keeps the one in force and the traffic flowing (a deliberate difference).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import client_server, mesh_config, small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

URL = "http://server.server.svc.cluster.local:8080/"
APP = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""
APPS = client_server(APP)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "tls", APPS, [("server", "server"), ("client", "client")]) as m:
        set_version(m, "TLSv1_2")
        yield m


def set_version(m: LocalMesh, version: str) -> None:
    spec = mesh_config(
        traffic={"enablePermissiveTrafficPolicyMode": True}, sidecar={"tlsMaxProtocolVersion": version}
    )
    (m.manifests / "00-mesh-config.yaml").write_text(spec)


def negotiated(m: LocalMesh, version: str) -> int:
    """Inbound mTLS handshakes of the server's sidecar at `version` ("TLSv1.2", "TLSv1.3")."""
    stats = m.envoy_stats("server", "server", r"^listener\.0\.0\.0\.0_15003\.ssl\.versions")
    return stats.get(f"listener.0.0.0.0_15003.ssl.versions.{version}", 0)


def repeated_success(m: LocalMesh) -> None:
    m.wait_repeated(lambda: m.curl("client", "client", URL) == 200, "requests answered 200")


def test_max_tls_version_1_2_is_compatible(mesh: LocalMesh) -> None:
    repeated_success(mesh)
    assert negotiated(mesh, "TLSv1.2") >= 1 and negotiated(mesh, "TLSv1.3") == 0


def test_max_tls_version_1_3_is_compatible(mesh: LocalMesh) -> None:
    set_version(mesh, "TLSv1_3")
    mesh.wait(
        lambda: mesh.curl("client", "client", URL) == 200 and negotiated(mesh, "TLSv1.3") >= 1, 60, "TLS 1.3"
    )
    repeated_success(mesh)


def test_max_tls_version_1_1_is_refused_and_traffic_keeps_flowing(mesh: LocalMesh) -> None:
    set_version(mesh, "TLSv1_1")
    mesh.wait(
        lambda: "tlsMaxProtocolVersion: TLSv1_1 would cut every sidecar off" in mesh.node_log_tail(50),
        30,
        "the MeshConfig refused, naming the field",
    )
    repeated_success(mesh)
