"""Upstream's e2e_controller_restart_test.go on the local runtime: SMI mode with upstream's simple allow
policy; the client's HEAD to the server gets 200, 5 times in a row; then the controller is killed (kill
-9: upstream deletes its pod) and, while it comes back, the same request gets 200, 20 times in a row
(traffic never stops while the control plane restarts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing import faults
from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import ALLOW_ALL, HTTP_200, client_server, mesh_config, small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

URL = "http://server.server.svc.cluster.local"
MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + client_server(HTTP_200.replace("PORT", "80"), port=80)
    + "---\n"
    + ALLOW_ALL
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(
        tmp_path_factory, "controller-restart", MESH, [("server", "server"), ("client", "client")]
    ) as m:
        yield m


def test_traffic_before_and_after_the_controller_restarts(mesh: LocalMesh) -> None:
    def ok() -> bool:
        return mesh.request("client", "client", URL, "-I") == (0, 200)

    mesh.wait_repeated(ok, "HEAD: 200")
    pid = faults.kill_controller(mesh)
    results = [ok() for _ in range(20)]  # upstream: 20 in a row, right after the restart begins
    faults.wait_restarted(mesh, pid)
    assert all(results), results
    mesh.wait_repeated(ok, "HEAD after the restart: 200", times=20)
