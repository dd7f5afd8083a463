"""Upstream's e2e_permissive_trafficsplit_test.go on the local runtime, both contexts (appProtocol http
and tcp on the backends and the apex), at a smaller scale (3 backends of 2 replicas, 2 client namespaces
of 2 replicas): permissive mode, no SMI policy. Every client pod's requests to the apex get 200 and every
backend pod answers, 5 rounds in a row; then every client pod's requests straight to each backend Service
get 200, 2 rounds in a row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import (
    mesh_config,
    namespace,
    podname_calls,
    podname_deployment,
    service_of,
    sleeper_deployment,
    small_mesh,
    traffic_split,
    yaml_docs,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

BACKENDS = [f"server{i}" for i in range(3)]
CLIENTS = ["client0", "client1"]


def manifests(app_protocol: str) -> str:
    return (
        mesh_config(traffic={"enablePermissiveTrafficPolicyMode": True})
        + "---\n"
        + yaml_docs(
            namespace("server"),
            *(namespace(c) for c in CLIENTS),
            *(
                d
                for b in BACKENDS
                for d in podname_deployment(
                    "server", b, replicas=2, service_account=b, app_protocol=app_protocol
                )
            ),
            *(sleeper_deployment(c, c, 2) for c in CLIENTS),
            service_of("server", "traffic-split", {"app": "traffic-split"}, 14001, app_protocol),
            traffic_split(
                "server", "traffic-split", "traffic-split", {b: 100 // len(BACKENDS) for b in BACKENDS}
            ),
        )
    )


@pytest.fixture(scope="module", params=["http", "tcp"])
def mesh(
    request: pytest.FixtureRequest, local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, f"permissive-split-{request.param}", manifests(request.param), []) as m:
        for ns, prefix in [("server", f"{b}-") for b in BACKENDS] + [(c, f"{c}-") for c in CLIENTS]:
            m.wait(
                lambda ns=ns, prefix=prefix: len([p for p in m.pods(ns, prefix) if p["ready"]]) == 2,
                90,
                f"{ns}/{prefix}*",
            )
        yield m


def calls_from_every_client(m: LocalMesh, url: str, n: int) -> list[tuple[int, str]]:
    return [
        call
        for c in CLIENTS
        for pod in m.pods(c, f"{c}-")
        for call in podname_calls(m, c, pod["name"], url, n)
    ]


def test_permissive_split_reaches_every_backend(mesh: LocalMesh) -> None:
    backend_pods = {p["name"] for b in BACKENDS for p in mesh.pods("server", f"{b}-")}
    seen: set[str] = set()

    def round_ok() -> bool:
        calls = calls_from_every_client(mesh, "http://traffic-split.server:14001/", 6)
        seen.update(name for _, name in calls)
        return all(status == 200 for status, _ in calls) and seen == backend_pods

    mesh.wait_repeated(round_ok, "all 200 through the apex, every backend pod seen", timeout=150)

    def direct_ok() -> bool:
        return all(
            status == 200
            for b in BACKENDS
            for status, _ in calls_from_every_client(mesh, f"http://{b}.server:14001/", 1)
        )

    mesh.wait_repeated(direct_ok, "all 200 straight to every backend", times=2, timeout=150)
