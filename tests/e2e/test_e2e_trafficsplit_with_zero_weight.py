"""Upstream's e2e_trafficsplit_with_zero_weight_test.go on the local runtime, at a smaller scale (3
backends of 2 replicas, 2 client namespaces of 2 replicas): SMI mode, each backend with its own
ServiceAccount and an allow policy from every client. The TrafficSplit gives `server0` weight 100 and
the others 0: every request gets 200, and only server0's two pods ever answer, 5 rounds in a row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import podname_calls, small_mesh, wait_replicas
from tests.e2e.test_e2e_trafficsplit import BACKENDS, CLIENTS, manifests

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

MESH = manifests("", False, weights={b: 100 if b == "server0" else 0 for b in BACKENDS})


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "split-zero", MESH, []) as m:
        wait_replicas(m, [("server", f"{b}-", 2) for b in BACKENDS] + [(c, f"{c}-", 2) for c in CLIENTS])
        yield m


def test_backends_of_weight_zero_get_no_traffic(mesh: LocalMesh) -> None:
    server0 = {p["name"] for p in mesh.pods("server", "server0-")}
    seen: set[str] = set()

    def round_ok() -> bool:
        calls = [
            call
            for c in CLIENTS
            for pod in mesh.pods(c, f"{c}-")
            for call in podname_calls(mesh, c, pod["name"], "http://traffic-split.server:14001/", 6)
        ]
        seen.update(name for _, name in calls)
        return all(status == 200 for status, _ in calls) and seen == server0

    mesh.wait_repeated(round_ok, "all 200, from server0's two pods only", timeout=150)
