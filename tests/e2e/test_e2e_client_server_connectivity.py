"""Upstream's e2e_client_server_connectivity_test.go (formerly e2e_pod_client_server_test.go) on the
local runtime, its three contexts: the client with a Service of its own, without one, and a server bound
to its pod IP only (`gunicorn -b $(POD_IP):80`) with MeshConfig `sidecar.localProxyMode: PodIP`. SMI
mode with upstream's simple allow policy: the client's HEAD to `server.server.svc.cluster.local` gets
200, 5 times in a row; with the TrafficTarget and HTTPRouteGroup deleted, curl's exit code 7, 5 times in
a row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import (
    ALLOW_ALL,
    HTTP_200,
    client_server,
    mesh_config,
    service_of,
    small_mesh,
    yaml_docs,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

URL = "http://server.server.svc.cluster.local"
CONTEXTS = {
    "with a client Service": ({}, HTTP_200.replace("PORT", "80"), True),
    "without a client Service": ({}, HTTP_200.replace("PORT", "80"), False),
    "server bound to its pod IP": (
        {"localProxyMode": "PodIP"},
        HTTP_200.replace('("0.0.0.0", PORT)', '(__import__("os").environ["POD_IP"], 80)'),
        False,
    ),
}


def manifests(context: str) -> str:
    sidecar, app, client_service = CONTEXTS[context]
    out = mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False}, sidecar=sidecar) + "---\n"
    out += client_server(app, port=80)
    if client_service:
        out += "---\n" + yaml_docs(service_of("client", "client", {"app": "client"}, 80))
    return out


@pytest.fixture(scope="module", params=list(CONTEXTS))
def mesh(
    request: pytest.FixtureRequest, local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalMesh]:
    with small_mesh(
        tmp_path_factory,
        "connectivity",
        manifests(request.param),
        [("server", "server"), ("client", "client")],
    ) as m:
        yield m


def test_http_traffic_from_one_pod_client_to_one_pod_server(mesh: LocalMesh) -> None:
    (mesh.manifests / "policy.yaml").write_text(ALLOW_ALL)
    mesh.wait_repeated(lambda: mesh.request("client", "client", URL, "-I") == (0, 200), "HEAD: 200")
    (mesh.manifests / "policy.yaml").write_text("")
    mesh.wait_repeated(
        lambda: mesh.request("client", "client", URL, "-I")[0] == 7, "without the policy: exit 7"
    )
