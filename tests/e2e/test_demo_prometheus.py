"""The bookstore demo with Prometheus (as `osm demo` runs it when Debian's prometheus is installed): its
HTTP API answers `osm_proxy_connect_count` equal to the number of sidecars, and
`envoy_cluster_upstream_rq` for a demo edge (bookbuyer to bookstore-v1), within a bounded wait."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from osm.paths import DATA
from osm.testing.localmesh import LocalMesh
from tests.e2e.test_local_prometheus import query

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (make system-deps installs Debian's package)")
    manifests = tmp_path_factory.mktemp("demo") / "manifests"
    shutil.copytree(DATA / "demo", manifests)
    m = LocalMesh(manifests, prometheus=True)
    try:
        m.up()
        m.wait_ready(
            [("bookbuyer", "bookbuyer-"), ("bookstore", "bookstore-v1-"), ("bookwarehouse", "bookwarehouse-")]
        )
        yield m
    finally:
        m.down()
        assert m.leftovers() == []
        shutil.rmtree(m.state_dir, ignore_errors=True)


def test_prometheus_sees_every_sidecar_and_a_demo_edge(mesh: LocalMesh) -> None:
    sidecars = len([p for p in mesh.status()["pods"] if p["meshed"]])
    assert sidecars >= 5
    mesh.wait(
        lambda: [float(r["value"][1]) for r in query(mesh, "osm_proxy_connect_count")] == [float(sidecars)],
        90,
        f"osm_proxy_connect_count == {sidecars}",
    )
    edge = (
        'envoy_cluster_upstream_rq{source_namespace="bookbuyer",'
        'envoy_cluster_name="bookstore/bookstore-v1|14001"}'
    )
    mesh.wait(lambda: bool(query(mesh, edge)), 90, "bookbuyer's requests to bookstore-v1")
    codes = {r["metric"]["envoy_response_code"] for r in query(mesh, edge)}
    assert "200" in codes
