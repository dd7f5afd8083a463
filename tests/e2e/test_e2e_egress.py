"""Upstream's e2e_egress_test.go on the local runtime: with MeshConfig `traffic.enableEgress: true`, a
meshed client reaches hosts outside the mesh over HTTP and HTTPS (upstream: edition.cnn.com and
github.com; here two names of a server outside the mesh, given to the client by hostAliases as DNS
would): HEAD with -L gets 200, 5 times in a row, for each URL. With `enableEgress: false` each fails with
curl's exit code 7, 5 times in a row; no pod restarts in between (the MeshConfig change is live)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import HTTP_AND_HTTPS_200, mesh_config, pod, small_mesh, yaml_docs

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

HOSTS = ("edition.example.com", "code.example.org")
URLS = [f"{scheme}://{host}" for scheme in ("http", "https") for host in HOSTS]
EXTERNAL = yaml_docs(
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "client", "labels": {"openservicemesh.io/monitored-by": "osm"}},
    },
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "internet"}},
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "www", "namespace": "internet"},
        "spec": {"containers": [{"name": "www", "command": ["python3", "-c", HTTP_AND_HTTPS_200]}]},
    },
)


def client(external_ip: str) -> str:
    return yaml_docs(pod("client", "client", hostAliases=[{"ip": external_ip, "hostnames": list(HOSTS)}]))


def egress(enabled: bool) -> str:
    return mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False, "enableEgress": enabled})


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(
        tmp_path_factory, "egress-passthrough", egress(True) + "---\n" + EXTERNAL, [("internet", "www")]
    ) as m:
        (m.manifests / "client.yaml").write_text(client(m.pod("internet", "www")["ip"]))
        m.wait_ready([("client", "client")])
        yield m


def test_egress_passthrough_follows_enable_egress(mesh: LocalMesh) -> None:
    for url in URLS:
        mesh.wait_repeated(
            lambda url=url: mesh.request("client", "client", url, "-I", "-L") == (0, 200), f"HEAD {url}: 200"
        )
    pid = mesh.pod("client", "client")["containers"][0]["pid"]
    (mesh.manifests / "mesh.yaml").write_text(egress(False) + "---\n" + EXTERNAL)
    for url in URLS:
        mesh.wait_repeated(
            lambda url=url: mesh.request("client", "client", url, "-I", "-L")[0] == 7, f"HEAD {url}: exit 7"
        )
    assert mesh.pod("client", "client")["containers"][0]["pid"] == pid
