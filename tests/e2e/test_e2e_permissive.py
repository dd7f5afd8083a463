"""Upstream's e2e_permissive_test.go on the local runtime, both contexts (the client with and without a
Service of its own): in permissive mode a meshed client's HEAD to the server gets 200, 5 times in a
row; a client outside the mesh gets curl's exit code 56 (the server's sidecar takes only mTLS and
drops the plaintext connection), 5 times in a row; with permissive mode off, the meshed client gets
exit code 7 (it has no route), 5 times in a row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import HTTP_200, mesh_config, namespace, pod, service_of, small_mesh, yaml_docs

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

URL = "http://server.server"


def manifests(permissive: bool, client_service: bool) -> str:
    docs = [
        namespace("client"),
        namespace("server"),
        namespace("ext-client", meshed=False),
        service_of("server", "server", {"app": "server"}, 80),
        pod("server", "server", ["python3", "-c", HTTP_200.replace("PORT", "80")], labels={"app": "server"}),
        pod("client", "client", labels={"app": "client"}),
        pod("ext-client", "ext-client", labels={"app": "ext-client"}),
    ]
    if client_service:
        docs.append(service_of("client", "client", {"app": "client"}, 80))
    return mesh_config(traffic={"enablePermissiveTrafficPolicyMode": permissive}) + "---\n" + yaml_docs(*docs)


@pytest.fixture(scope="module", params=["with a client Service", "without a client Service"])
def mesh(
    request: pytest.FixtureRequest, local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalMesh, bool]]:
    with_service = request.param.startswith("with ")
    pods = [("server", "server"), ("client", "client"), ("ext-client", "ext-client")]
    with small_mesh(tmp_path_factory, "permissive", manifests(True, with_service), pods) as m:
        yield m, with_service


def test_permissive_mode(mesh: tuple[LocalMesh, bool]) -> None:
    m, with_service = mesh
    m.wait_repeated(lambda: m.request("client", "client", URL, "-I") == (0, 200), "meshed client: 200")
    m.wait_repeated(
        lambda: m.request("ext-client", "ext-client", URL, "-I")[0] == 56, "outside the mesh: exit 56"
    )
    (m.manifests / "mesh.yaml").write_text(manifests(False, with_service))
    m.wait_repeated(lambda: m.request("client", "client", URL, "-I")[0] == 7, "permissive off: exit 7")
