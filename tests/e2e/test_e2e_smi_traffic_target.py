"""Upstream's e2e_smi_traffic_target_test.go on the local runtime, both contexts.

SMI mode; a server (httpbin's /anything and /foo: 200) and two clients in their own namespaces, each
ServiceAccount named after its namespace. client1 is allowed `/anything`, client2 only `/foo` (an
HTTPRouteGroup and a TrafficTarget each, in the server's namespace): client1's HEAD /anything gets 200, 5
times in a row; client2's gets 403 (the route exists for another source: RBAC denies it), 10 times in a
row. With client1's TrafficTarget and HTTPRouteGroup deleted, client1 gets curl's exit code 7, 5 times
in a row. Second context: policies created in the client's namespace instead of the destination's are
ignored (exit 7, 10 times in a row). Beyond upstream's case: client2's HEAD to a path no route of any
policy matches gets 404.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import HTTP_200, mesh_config, namespace, pod, service_of, small_mesh, yaml_docs

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

URL = "http://server.server/anything"


def route_policy(client: str, path: str, policy_ns: str = "server") -> str:
    return f"""
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: {client}-server, namespace: {policy_ns}}}
spec:
  matches: [{{name: allowed-route, pathRegex: "{path}", methods: ["*"]}}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: {client}-server, namespace: {policy_ns}}}
spec:
  destination: {{kind: ServiceAccount, name: server, namespace: server}}
  rules: [{{kind: HTTPRouteGroup, name: {client}-server, matches: [allowed-route]}}]
  sources: [{{kind: ServiceAccount, name: {client}, namespace: {client}}}]
"""


BASE = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + yaml_docs(
        namespace("server"),
        namespace("client1"),
        namespace("client2"),
        service_of("server", "server", {"app": "server"}, 80),
        pod("server", "server", ["python3", "-c", HTTP_200.replace("PORT", "80")], labels={"app": "server"}),
        pod("client1", "client1", labels={"app": "client1"}),
        pod("client2", "client2", labels={"app": "client2"}),
    )
)
PODS = [("server", "server"), ("client1", "client1"), ("client2", "client2")]


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "smi-target", BASE, PODS) as m:
        yield m


def head(m: LocalMesh, client: str, url: str = URL) -> tuple[int, int]:
    return m.request(client, client, url, "-I")


def test_smi_traffic_target_is_set_up_properly(mesh: LocalMesh) -> None:
    (mesh.manifests / "policy.yaml").write_text(
        route_policy("client1", "/anything") + route_policy("client2", "/foo")
    )
    mesh.wait_repeated(lambda: head(mesh, "client1") == (0, 200), "client1 HEAD /anything: 200")
    mesh.wait_repeated(lambda: head(mesh, "client2") == (0, 403), "client2 HEAD /anything: 403", times=10)
    assert head(mesh, "client2", "http://server.server/foo") == (0, 200)
    assert head(mesh, "client2", "http://server.server/nowhere") == (0, 404)  # no policy routes it
    (mesh.manifests / "policy.yaml").write_text(route_policy("client2", "/foo"))
    mesh.wait_repeated(lambda: head(mesh, "client1")[0] == 7, "client1 without its policy: exit 7")


def test_a_traffic_target_outside_the_destination_namespace_is_ignored(mesh: LocalMesh) -> None:
    (mesh.manifests / "policy.yaml").write_text(route_policy("client1", "/anything", policy_ns="client1"))
    mesh.wait_repeated(
        lambda: head(mesh, "client1")[0] == 7, "policy in the client's namespace: exit 7", times=10
    )
