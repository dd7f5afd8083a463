"""Upstream's e2e_ip_exclusion_test.go on the local runtime: in SMI mode, a meshed client and a server
outside the mesh (an external host, in effect). With the server's ClusterIP in MeshConfig
`traffic.outboundIPRangeExclusionList`, a client created afterwards reaches it directly, bypassing its
sidecar: HEAD gets 200, 5 times in a row. Beyond upstream's case: a client created before the exclusion
(its interception rules are set when the pod starts, as the init container does) is refused (curl exit
7: no TrafficTarget, no egress)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import HTTP_200, mesh_config, pod, small_mesh, yaml_docs

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]


def namespace(name: str, meshed: bool) -> dict[str, object]:
    labels = {"openservicemesh.io/monitored-by": "osm"} if meshed else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def client(name: str, annotations: dict[str, str] | None = None) -> dict[str, object]:
    return pod("client", name, service_account="client", container="client", annotations=annotations or {})


def external_server(port: int) -> str:
    """Namespace client (meshed), namespace server (not) with Service and Pod server on `port`."""
    return yaml_docs(
        namespace("client", True),
        namespace("server", False),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "server", "namespace": "server"},
            "spec": {
                "selector": {"app": "server"},
                "ports": [{"name": "http", "port": port, "targetPort": port}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "server", "namespace": "server", "labels": {"app": "server"}},
            "spec": {
                "containers": [
                    {"name": "server", "command": ["python3", "-c", HTTP_200.replace("PORT", str(port))]}
                ]
            },
        },
        client("before"),
    )


SMI = {"enablePermissiveTrafficPolicyMode": False}


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    manifests = mesh_config(traffic=SMI) + "---\n" + external_server(8080)
    with small_mesh(
        tmp_path_factory, "ip-exclusion", manifests, [("server", "server"), ("client", "before")]
    ) as m:
        yield m


def test_traffic_to_an_excluded_ip_range_bypasses_the_sidecar(mesh: LocalMesh) -> None:
    url = "http://server.server:8080"
    found = mesh.exec("client", "before", "getent", "hosts", "server.server").stdout.split()
    cluster_ip = found[0]
    assert cluster_ip.startswith("10.251.")
    mesh.wait_repeated(lambda: mesh.request("client", "before", url, "-I")[0] == 7, f"HEAD {url}: refused")
    (mesh.manifests / "mesh.yaml").write_text(
        mesh_config(traffic={**SMI, "outboundIPRangeExclusionList": [f"{cluster_ip}/32"]})
        + "---\n"
        + external_server(8080)
        + "---\n"
        + yaml_docs(client("client"))
    )
    mesh.wait_ready([("client", "client")])
    mesh.wait_repeated(lambda: mesh.request("client", "client", url, "-I") == (0, 200), f"HEAD {url}: 200")
    # the client created before the exclusion is still refused: its sidecar has nowhere to send it
    assert mesh.request("client", "before", url, "-I")[0] == 7
