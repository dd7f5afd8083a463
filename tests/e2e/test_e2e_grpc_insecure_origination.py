"""Upstream's e2e_grpc_insecure_origination_test.go on the local runtime: a plaintext gRPC client calls
a gRPC server (Service port with `appProtocol: grpc`) through both sidecars, which carry it as HTTP/2
inside mTLS, in SMI mode with upstream's simple allow policy (an HTTPRouteGroup matching every path and
method, and a TrafficTarget from the client's ServiceAccount). The call succeeds 5 times in a row; with
the TrafficTarget and the HTTPRouteGroup deleted it fails 5 times in a row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import ALLOW_ALL, client_server, mesh_config, small_mesh
from tests.e2e.test_e2e_grpc_client_server import SERVER, call

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + client_server(SERVER, port=9000, port_name="api", app_protocol="grpc")
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(
        tmp_path_factory, "grpc-insecure", MESH, [("server", "server"), ("client", "client")]
    ) as m:
        yield m


def test_grpc_traffic_plaintext_from_the_app_mtls_between_the_sidecars(mesh: LocalMesh) -> None:
    (mesh.manifests / "policy.yaml").write_text(ALLOW_ALL)
    mesh.wait_repeated(lambda: call(mesh) == "hello mesh", "gRPC calls succeed")
    (mesh.manifests / "policy.yaml").write_text("")
    mesh.wait_repeated(lambda: call(mesh) != "hello mesh", "gRPC calls fail without the policy")
    assert call(mesh) == "UNAVAILABLE"
