"""Upstream's e2e_multiple_services_per_pod_test.go on the local runtime: in SMI mode, one server pod
behind two Services (`server` and `server-second`, the same selector) and upstream's simple allow policy
from the client's ServiceAccount to the server's: HEAD to each Service's name gets 200, 5 times in a
row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import ALLOW_ALL, HTTP_200, client_server, mesh_config, small_mesh, yaml_docs

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

SECOND = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "server-second", "namespace": "server"},
    "spec": {"selector": {"app": "server"}, "ports": [{"name": "http", "port": 80, "targetPort": 80}]},
}
MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + client_server(HTTP_200.replace("PORT", "80"), port=80)
    + "---\n"
    + yaml_docs(SECOND)
    + "---\n"
    + ALLOW_ALL
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(
        tmp_path_factory, "two-services", MESH, [("server", "server"), ("client", "client")]
    ) as m:
        yield m


def test_one_pod_reached_through_each_of_its_two_services(mesh: LocalMesh) -> None:
    for service in ("server", "server-second"):
        url = f"http://{service}.server"
        mesh.wait_repeated(
            lambda url=url: mesh.request("client", "client", url, "-I") == (0, 200), f"HEAD {url}: 200"
        )
