"""`osm local up --prometheus`: a real Prometheus (Debian's) scrapes the local mesh. Its HTTP API
answers `osm_proxy_connect_count` equal to the number of sidecars, and Envoy's request counters of an
edge (client to server, by source pod and destination cluster) within a bounded wait;
`osm local status --output json` lists the control plane's endpoints and Prometheus'. Per-edge request
metrics come from Envoy's own stats: the source is the scraped sidecar's pod, the destination the
cluster (service) it called, with response codes and latency histograms."""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from osm import __version__
from osm.cli.main import cli
from osm.paths import CHART
from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import ALLOW_ALL, HTTP_200, client_server, mesh_config

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

DASHBOARDS = CHART / "grafana"
METRICS = "  annotations:\n    openservicemesh.io/metrics: enabled\n  labels:"  # the server's namespace
MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + client_server(HTTP_200.replace("PORT", "80"), port=80).replace(
        "name: server\n  labels:", "name: server\n" + METRICS, 1
    )
    + "---\n"
    + ALLOW_ALL
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (make system-deps installs Debian's package)")
    assert MESH.count("openservicemesh.io/metrics: enabled") == 1
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


def fetch(url: str) -> tuple[int, bytes]:
    """GET from the host (not from inside the mesh's namespaces)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def query(m: LocalMesh, promql: str) -> list[dict[str, Any]]:
    code, body = fetch(m.status()["endpoints"]["prometheus"] + f"/api/v1/query?query={quote(promql)}")
    assert code == 200, body[:300]
    result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
    return result


def enable_client_metrics(m: LocalMesh) -> None:
    """`osm metrics enable` of the client's namespace: its annotation, written into the manifests."""
    args = ["metrics", "enable", "--namespace", "client", "--state-dir", str(m.state_dir)]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert out.output == f"metrics enabled in namespace [client] (written to {m.manifests / 'mesh.yaml'})\n"


def test_prometheus_scrapes_the_controller_and_the_sidecars(mesh: LocalMesh) -> None:
    out = CliRunner().invoke(cli, ["local", "status", "--output", "json", "--state-dir", str(mesh.state_dir)])
    status = json.loads(out.output)
    listed = CliRunner().invoke(cli, ["mesh", "list", "--state-dir", str(mesh.state_dir)]).output
    assert listed.splitlines()[1].split() == ["osm", "osm-system", __version__, "local:", str(mesh.state_dir)]
    assert status["node_endpoints"] == {
        "metrics": "http://10.250.0.1:9091/metrics",
        "debug": "http://10.250.0.1:9092/debug",
        "prometheus": "http://10.250.0.1:9090",
    }
    # the same endpoints from the host: forwarded from 127.0.0.1 into the node's namespace
    endpoints = status["endpoints"]
    assert sorted(endpoints) == ["debug", "metrics", "prometheus"]
    assert all(re.fullmatch(r"http://127\.0\.0\.1:\d+(/metrics|/debug|)", u) for u in endpoints.values())
    code, text = fetch(endpoints["metrics"])
    assert code == 200 and b"# TYPE osm_k8s_api_event_count counter" in text
    assert fetch(endpoints["prometheus"] + "/-/ready") == (200, b"Prometheus Server is Ready.\n")
    mesh.wait(
        lambda: [float(r["value"][1]) for r in query(mesh, "osm_proxy_connect_count")] == [2.0],
        90,
        "osm_proxy_connect_count == 2 (both sidecars) in Prometheus",
    )
    mesh.wait_repeated(lambda: mesh.request("client", "client", "http://server.server") == (0, 200), "200")
    # The client's namespace has not enabled metrics: its sidecar is no target. Enabled while it runs,
    # the same sidecar (not restarted) is scraped.
    assert query(mesh, 'up{source_pod_name="client"}') == []
    envoy_pid = mesh.container("client", "client", "envoy")["pid"]
    enable_client_metrics(mesh)
    selector = '{source_pod_name="client",envoy_cluster_name="server/server|80"}'
    edge = "envoy_cluster_upstream_rq_total" + selector
    mesh.wait(
        lambda: bool(query(mesh, edge)) and float(query(mesh, edge)[0]["value"][1]) >= 5,
        90,
        "the edge's requests",
    )
    [series] = query(mesh, edge)
    assert mesh.container("client", "client", "envoy")["pid"] == envoy_pid
    assert series["metric"]["source_namespace"] == "client" and series["metric"]["job"] == "kubernetes-pods"
    assert query(mesh, "envoy_cluster_upstream_rq_time_bucket" + selector)  # the edge's latency histogram


def test_every_grafana_dashboard_query_returns_series(mesh: LocalMesh) -> None:
    enable_client_metrics(mesh)
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
