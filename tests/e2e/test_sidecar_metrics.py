"""Each sidecar's 15010 listener on the local runtime, as the injector's bootstrap has it: `/ready`, and
Envoy's stats in Prometheus' format at `/stats/prometheus`, fetched from the node as Prometheus would
(15010 is not intercepted); nothing else of Envoy's admin interface. Every sidecar serves its stats;
the namespace's `openservicemesh.io/metrics` annotation (`osm metrics enable`) decides whether
Prometheus scrapes them (test_local_prometheus), so enabling reaches sidecars already running."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from osm.local import netops
from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import ALLOW_ALL, HTTP_200, client_server, mesh_config, small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False})
    + "---\n"
    + client_server(HTTP_200.replace("PORT", "80"), port=80).replace(
        "name: server\n  labels:",
        "name: server\n  annotations:\n    openservicemesh.io/metrics: enabled\n  labels:",
        1,
    )
    + "---\n"
    + ALLOW_ALL
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    assert "openservicemesh.io/metrics: enabled" in MESH
    with small_mesh(
        tmp_path_factory, "sidecar-metrics", MESH, [("server", "server"), ("client", "client")]
    ) as m:
        yield m


def scrape(m: LocalMesh, pod: dict[str, Any], path: str) -> tuple[int, str]:
    status, body = netops.http_fetch_in_netns(m.status()["node_netns"], 15010, path, host=pod["ip"])
    return status, body.decode(errors="replace")


def test_every_sidecar_serves_ready_and_its_stats_on_15010(mesh: LocalMesh) -> None:
    mesh.wait_repeated(lambda: mesh.request("client", "client", "http://server.server") == (0, 200), "200")
    server, client = mesh.pod("server", "server"), mesh.pod("client", "client")
    assert scrape(mesh, server, "/ready") == (200, "LIVE\n")
    assert scrape(mesh, client, "/ready") == (200, "LIVE\n")
    status, text = scrape(mesh, server, "/stats/prometheus")
    assert status == 200
    assert "# TYPE envoy_cluster_upstream_rq_total counter" in text
    assert (
        'envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="' in text
    )
    # the client's namespace has not enabled metrics: it is not scraped, but its stats are there
    status, text = scrape(mesh, client, "/stats/prometheus")
    assert status == 200 and 'envoy_cluster_name="server/server|80"' in text
    assert scrape(mesh, client, "/config_dump")[0] == 404


def test_the_sidecars_log_level_follows_the_mesh_config_live(mesh: LocalMesh) -> None:
    """MeshConfig sidecar.logLevel: the level Envoy starts at, and, changed, the running sidecars' level
    (Envoy's admin /logging), without a restart."""
    pods = [("server", "server"), ("client", "client")]
    pids = {p: mesh.container(*p, "envoy")["pid"] for p in pods}

    def level(p: tuple[str, str]) -> str:
        out = mesh.exec(
            *p, "curl", "-s", "-X", "POST", "--max-time", "5", "http://127.0.0.1:15000/logging"
        ).stdout
        return next(
            (line.split(":")[1].strip() for line in out.splitlines() if line.strip().startswith("http:")), ""
        )

    assert [level(p) for p in pods] == ["error", "error"]  # the MeshConfig's default
    mesh.edit("mesh.yaml", "  traffic:", "  sidecar:\n    logLevel: debug\n  traffic:")
    mesh.wait(lambda: [level(p) for p in pods] == ["debug", "debug"], 30, "the sidecars at debug")
    assert {p: mesh.container(*p, "envoy")["pid"] for p in pods} == pids
