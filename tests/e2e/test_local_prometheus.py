"""`osm local up --prometheus`: a real Prometheus (Debian's) scrapes the local mesh. Its HTTP API
answers `osm_proxy_connect_count` equal to the number of sidecars, and Envoy's request counters of an
edge (client to server, by source pod and destination cluster) within a bounded wait;
`osm local status --output json` lists the control plane's endpoints and Prometheus'. Per-edge request
metrics come from Envoy's own stats: the source is the scraped sidecar's pod, the destination the
cluster (service) it called, with response codes and latency histograms."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from osm.cli.main import cli
from osm.local import netops
from osm.paths import CHART
from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import ALLOW_ALL, HTTP_200, client_server, mesh_config

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

DASHBOARDS = CHART / "grafana"
METRICS = "  annotations:\n    openservicemesh.io/metrics: enabled\n  labels:"
MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + client_server(HTTP_200.replace("PORT", "80"), port=80)
    .replace("name: client\n  labels:", "name: client\n" + METRICS, 1)
    .replace("name: server\n  labels:", "name: server\n" + METRICS, 1)
    + "---\n"
    + ALLOW_ALL
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (make system-deps installs Debian's package)")
    assert MESH.count("openservicemesh.io/metrics: enabled") == 2
    directory = tmp_path_factory.mktemp("prometheus") / "manifests"
    directory.mkdir()
    (directory / "mesh.yaml").write_text(MESH)
    m = LocalMesh(directory, prometheus=True)
    try:
        m.up()
        m.wait_ready([("server", "server"), ("client", "client")])
        yield m
    finally:
        m.down()
        assert m.leftovers() == []
        shutil.rmtree(m.state_dir, ignore_errors=True)


def query(m: LocalMesh, promql: str) -> list[dict[str, Any]]:
    status = m.status()
    host = status["endpoints"]["prometheus"].removeprefix("http://")
    ip, port = host.split(":")
    code, body = netops.http_fetch_in_netns(
        status["node_netns"], int(port), f"/api/v1/query?query={quote(promql)}", host=ip
    )
    assert code == 200, body[:300]
    result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
    return result


def test_prometheus_scrapes_the_controller_and_the_sidecars(mesh: LocalMesh) -> None:
    out = CliRunner().invoke(cli, ["local", "status", "--output", "json", "--state-dir", str(mesh.state_dir)])
    endpoints = json.loads(out.output)["endpoints"]
    assert endpoints == {
        "metrics": "http://10.250.0.1:9091/metrics",
        "debug": "http://10.250.0.1:9092/debug",
        "prometheus": "http://10.250.0.1:9090",
    }
    mesh.wait(
        lambda: [float(r["value"][1]) for r in query(mesh, "osm_proxy_connect_count")] == [2.0],
        90,
        "osm_proxy_connect_count == 2 (both sidecars) in Prometheus",
    )
    mesh.wait_repeated(lambda: mesh.request("client", "client", "http://server.server") == (0, 200), "200")
    selector = '{source_pod_name="client",envoy_cluster_name="server/server|80"}'
    edge = "envoy_cluster_upstream_rq_total" + selector
    mesh.wait(
        lambda: bool(query(mesh, edge)) and float(query(mesh, edge)[0]["value"][1]) >= 5,
        90,
        "the edge's requests",
    )
    [series] = query(mesh, edge)
    assert series["metric"]["source_namespace"] == "client" and series["metric"]["job"] == "kubernetes-pods"
    assert query(mesh, "envoy_cluster_upstream_rq_time_bucket" + selector)  # the edge's latency histogram


def test_every_grafana_dashboard_query_returns_series(mesh: LocalMesh) -> None:
    mesh.wait_repeated(lambda: mesh.request("client", "client", "http://server.server") == (0, 200), "200")
    exprs = [
        (board.name, target["expr"])
        for board in sorted(DASHBOARDS.glob("*.json"))
        for panel in json.loads(board.read_text())["panels"]
        for target in panel["targets"]
    ]
    assert {name for name, _ in exprs} == {
        "osm-control-plane.json",
        "osm-data-plane.json",
        "osm-service-to-service.json",
        "osm-workload-to-workload.json",
    }
    for name, expr in exprs:
        mesh.wait(lambda expr=expr: bool(query(mesh, expr)), 60, f"{name}: {expr} returns series")
