"""Upstream's e2e_trafficsplit_selector_test.go on the local runtime: in permissive mode, Deployments
httpbin-v1 and httpbin-v2 (labels app=httpbin, version=v<n>), each behind its own Service selecting both
labels (port 14001, appProtocol http), and a root Service `httpbin-root` that selects no pod, split
50/50 over the two. The client's HEAD to `httpbin-root.server:14001` gets 200 and then 10 in a row
without a failure; exactly the two backend pods answered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import (
    mesh_config,
    namespace,
    pod,
    podname_calls,
    podname_deployment,
    service_of,
    small_mesh,
    traffic_split,
    yaml_docs,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

VERSIONS = ("v1", "v2")
CLIENT = pod("client", "client")
MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": True})
    + "---\n"
    + yaml_docs(
        namespace("client"),
        namespace("server"),
        *(
            d
            for v in VERSIONS
            for d in podname_deployment(
                "server",
                f"httpbin-{v}",
                replicas=1,
                service_account="httpbin",
                labels={"app": "httpbin", "version": v},
                app_protocol="http",
            )
        ),
        service_of("server", "httpbin-root", {"app": "httpbin-root"}, 14001, "http"),
        traffic_split("server", "test-root", "httpbin-root", {f"httpbin-{v}": 50 for v in VERSIONS}),
        CLIENT,
    )
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    pods = [("server", f"httpbin-{v}-") for v in VERSIONS] + [("client", "client")]
    with small_mesh(tmp_path_factory, "split-selector", MESH, pods) as m:
        yield m


def test_a_split_over_services_selecting_by_version(mesh: LocalMesh) -> None:
    seen: set[str] = set()

    def ok() -> bool:
        calls = podname_calls(mesh, "client", "client", "http://httpbin-root.server:14001/", 1)
        seen.update(name for status, name in calls if status == 200)
        return all(status == 200 for status, _ in calls)

    mesh.wait_steady(ok, "HEAD httpbin-root.server:14001: 200", times=10, timeout=60)
    mesh.wait(lambda: ok() and len(seen) == 2, 30, "both backends answered")
    assert seen == {p["name"] for v in VERSIONS for p in mesh.pods("server", f"httpbin-{v}-")}
