"""Upstream's e2e_multiple_ports_per_service_test.go on the local runtime: in permissive mode, a Service
with two ports, `http` 14002 -> the app's 14001 (a service port other than its target port) and `tcp`
90; the client's HEAD to `server.server:14002` gets 200, and once it has, 10 in a row without a single
failure (upstream's regression case for duplicate endpoints of a multi-port service)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import HTTP_200, mesh_config, pod, small_mesh, yaml_docs

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

MESH = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": True})
    + "---\n"
    + yaml_docs(
        *(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"openservicemesh.io/monitored-by": "osm"}},
            }
            for ns in ("client", "server")
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "server", "namespace": "server"},
            "spec": {
                "selector": {"app": "server"},
                "ports": [
                    {"name": "http", "port": 14002, "targetPort": 14001},
                    {"name": "tcp", "port": 90, "targetPort": 90},
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "server", "namespace": "server", "labels": {"app": "server"}},
            "spec": {
                "serviceAccountName": "server",
                "containers": [
                    {
                        "name": "server",
                        "command": ["python3", "-c", HTTP_200.replace("PORT", "14001")],
                        "ports": [{"containerPort": 14001}, {"containerPort": 90}],
                    }
                ],
            },
        },
        pod("client", "client"),
    )
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "multiport", MESH, [("server", "server"), ("client", "client")]) as m:
        yield m


def test_a_service_port_other_than_its_target_port_on_a_multi_port_service(mesh: LocalMesh) -> None:
    url = "http://server.server:14002"
    mesh.wait_steady(lambda: mesh.request("client", "client", url, "-I") == (0, 200), f"HEAD {url}: 200")
    eps = mesh.envoy_stats("client", "client", r"cluster\.server/server\|14001\.membership_total")
    assert eps == {"cluster.server/server|14001.membership_total": 1}  # one endpoint, not one per port
