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
from tests.e2e.conftest import podname_calls, small_mesh, wait_replicas
from tests.e2e.test_e2e_trafficsplit import BACKENDS, CLIENTS, manifests

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

REPLICAS = 2
MESH = manifests("", False, service_account="server")


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
