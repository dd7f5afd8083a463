"""Upstream's e2e_trafficsplit_same_sa_test.go on the local runtime, at a smaller scale (3 backends of 2
replicas and 2 client namespaces of 2 replicas; upstream 5 x 2 and 2 x 5).

SMI mode. Every backend Deployment `server<i>` (with its Service) runs as the one ServiceAccount
`server`; each client namespace has upstream's simple allow policy to it. The apex Service
`traffic-split` selects no pod; the TrafficSplit sends it to every backend with equal weight. Every
client pod's HEAD requests to `traffic-split.server:14001` get 200, and across the rounds every backend
pod answers (its `podname` header): all 6, 5 rounds in a row.
"""

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
    service_of,
    sleeper_deployment,
    small_mesh,
    traffic_split,
    wait_replicas,
    yaml_docs,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

BACKENDS = [f"server{i}" for i in range(3)]
CLIENTS = ["client0", "client1"]
REPLICAS = 2
MESH = "---\n".join(
    [
        mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False}),
        yaml_docs(
            namespace("server"),
            *(namespace(c) for c in CLIENTS),
            *(
                d
                for b in BACKENDS
                for d in podname_deployment("server", b, replicas=REPLICAS, service_account="server")
            ),
            *(sleeper_deployment(c, c, REPLICAS) for c in CLIENTS),
            service_of("server", "traffic-split", {"app": "traffic-split"}, 14001),
            traffic_split(
                "server", "traffic-split", "traffic-split", {b: 100 // len(BACKENDS) for b in BACKENDS}
            ),
        ),
        *(allow_all((c, c), ("server", "server"), f"{c}-server") for c in CLIENTS),
    ]
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "split-same-sa", MESH, []) as m:
        wait_replicas(
            m, [("server", f"{b}-", REPLICAS) for b in BACKENDS] + [(c, f"{c}-", REPLICAS) for c in CLIENTS]
        )
        yield m


def test_traffic_split_over_backends_of_one_service_account(mesh: LocalMesh) -> None:
    backend_pods = {p["name"] for b in BACKENDS for p in mesh.pods("server", f"{b}-")}
    assert len(backend_pods) == len(BACKENDS) * REPLICAS
    seen: set[str] = set()

    def round_ok() -> bool:
        ok = True
        for c in CLIENTS:
            for pod in mesh.pods(c, f"{c}-"):
                for status, name in podname_calls(
                    mesh, c, pod["name"], "http://traffic-split.server:14001/", 6
                ):
                    ok = ok and status == 200
                    seen.add(name)
        return ok and seen == backend_pods

    mesh.wait_repeated(round_ok, "every client's requests 200 and every backend pod seen", timeout=150)
