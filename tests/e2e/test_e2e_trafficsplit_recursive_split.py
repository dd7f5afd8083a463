"""Upstream's e2e_trafficsplit_recursive_split.go on the local runtime, both contexts (appProtocol http
with an HTTP allow policy, and tcp with a TCP allow policy of port 14001): a TrafficSplit whose root
Service `server` is also its only backend (weight 100). HEAD to `server.server-namespace:14001` gets
200 from the one server pod, 5 times in a row; then the same requests straight to the backend Service,
2 times in a row."""

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
    tcp_allow,
    traffic_split,
    yaml_docs,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

NS = "server-namespace"
TCP_ALLOW = tcp_allow(("client0", "client0"), (NS, "server"), "client0-server", [14001])


def manifests(app_protocol: str) -> str:
    policy = (
        allow_all(("client0", "client0"), (NS, "server"), "client0-server")
        if app_protocol == "http"
        else TCP_ALLOW
    )
    return "---\n".join(
        [
            mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False}),
            yaml_docs(
                namespace("client0"),
                namespace(NS),
                *podname_deployment(
                    NS, "server", replicas=1, service_account="server", app_protocol=app_protocol
                ),
                sleeper_deployment("client0", "client0", 1),
                traffic_split(NS, "server", "server", {"server": 100}),
            ),
            policy,
        ]
    )


@pytest.fixture(scope="module", params=["http", "tcp"])
def mesh(
    request: pytest.FixtureRequest, local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalMesh]:
    pods = [(NS, "server-"), ("client0", "client0-")]
    with small_mesh(
        tmp_path_factory, f"split-recursive-{request.param}", manifests(request.param), pods
    ) as m:
        yield m


def test_a_split_whose_root_is_its_own_backend(mesh: LocalMesh) -> None:
    client = mesh.pod("client0", "client0-")["name"]
    server = mesh.pod(NS, "server-")["name"]
    url = f"http://server.{NS}:14001/"

    def ok() -> bool:
        return podname_calls(mesh, "client0", client, url, 1) == [(200, server)]

    mesh.wait_repeated(ok, "HEAD through the split: 200 from the server pod", timeout=150)
    mesh.wait_repeated(ok, "HEAD to the backend service: 200", times=2, timeout=150)
