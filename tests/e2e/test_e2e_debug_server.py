"""Upstream's e2e_debug_server_test.go on the local runtime: a client outside the mesh asks the
controller's debug server (`osm-controller.osm-system:9092/debug`, a HEAD); twice over: with MeshConfig
`observability.enableDebugServer: true` it gets 200, 5 times in a row; with false, curl's exit code 7
(nothing listens), 5 times in a row. The controller is never restarted for it."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import mesh_config, namespace, pod, small_mesh, yaml_docs

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

URL = "http://osm-controller.osm-system:9092/debug"
CLIENT = yaml_docs(
    namespace("client", meshed=False),
    pod("client", "client", service_account=""),
)


def manifests(debug: bool) -> str:
    return mesh_config(observability={"enableDebugServer": debug}) + "---\n" + CLIENT


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "debug-server", manifests(False), [("client", "client")]) as m:
        yield m


def from_host(url: str) -> int:
    """The status of a GET from the host; 0 when the connection closed without an answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
        return 0


def test_the_debug_server_comes_and_goes_with_the_mesh_config(mesh: LocalMesh) -> None:
    pid = mesh.controller()["pid"]
    host_url = mesh.status()["endpoints"]["debug"]  # forwarded from 127.0.0.1 on the host
    for _ in range(2):
        (mesh.manifests / "mesh.yaml").write_text(manifests(True))
        mesh.wait_repeated(
            lambda: mesh.request("client", "client", URL, "-I") == (0, 200), "debug server: 200"
        )
        assert from_host(host_url) == 200
        (mesh.manifests / "mesh.yaml").write_text(manifests(False))
        mesh.wait_repeated(
            lambda: mesh.request("client", "client", URL, "-I")[0] == 7, "debug server off: exit 7"
        )
        assert from_host(host_url) == 0
    assert mesh.controller()["pid"] == pid
