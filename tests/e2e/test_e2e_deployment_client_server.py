"""Upstream's e2e_deployment_client_server_test.go on the local runtime, at a smaller scale (a server
Deployment of 3 replicas and 2 client namespaces of 2 replicas; upstream 5 and 5 x 5): SMI mode, a simple
allow policy per client namespace; every client pod's requests to `server.server:14001` get 200 and
every server replica answers (its `podname` header), 5 rounds in a row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import (
    allow_all,
    mesh_config,
    namespace,
    podname_calls,
    podname_deployment,
    sleeper_deployment,
    small_mesh,
    wait_replicas,
    yaml_docs,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

CLIENTS = ["client0", "client1"]
REPLICAS = 3
MESH = "---\n".join(
    [
        mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False}),
        yaml_docs(
            namespace("server"),
            *(namespace(c) for c in CLIENTS),
            *podname_deployment("server", "server", replicas=REPLICAS, service_account="server"),
            *(sleeper_deployment(c, c, 2) for c in CLIENTS),
        ),
        *(allow_all((c, c), ("server", "server"), c) for c in CLIENTS),
    ]
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "deployments", MESH, []) as m:
        wait_replicas(m, [("server", "server-", REPLICAS)] + [(c, f"{c}-", 2) for c in CLIENTS])
        yield m


def test_http_traffic_from_client_deployments_to_a_server_deployment(mesh: LocalMesh) -> None:
    servers = {p["name"] for p in mesh.pods("server", "server-")}
    seen: set[str] = set()

    def round_ok() -> bool:
        calls = [
            call
            for c in CLIENTS
            for pod in mesh.pods(c, f"{c}-")
            for call in podname_calls(mesh, c, pod["name"], "http://server.server:14001/", 6)
        ]
        seen.update(name for status, name in calls if status == 200)
        return all(status == 200 for status, _ in calls) and seen == servers

    mesh.wait_repeated(round_ok, "every client pod 200, every server replica seen", timeout=150)
