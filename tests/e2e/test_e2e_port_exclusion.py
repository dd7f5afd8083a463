"""Upstream's e2e_port_exclusion_test.go on the local runtime, both contexts: a meshed client reaches a
server outside the mesh on port 80 directly, bypassing its sidecar, when port 80 is excluded from
interception, by MeshConfig `traffic.outboundPortExclusionList` (global) or by the pod's annotation
`openservicemesh.io/outbound-port-exclusion-list` (pod level): HEAD gets 200, 5 times in a row. Beyond
upstream's case: a client with neither is refused (curl exit 7: SMI mode, no egress)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import mesh_config, small_mesh, yaml_docs
from tests.e2e.test_e2e_ip_exclusion import SMI, client, external_server

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

URL = "http://server.server"
POD_LEVEL = client("pod-level", {"openservicemesh.io/outbound-port-exclusion-list": "80"})


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    manifests = mesh_config(traffic=SMI) + "---\n" + external_server(80) + "---\n" + yaml_docs(POD_LEVEL)
    pods = [("server", "server"), ("client", "before"), ("client", "pod-level")]
    with small_mesh(tmp_path_factory, "port-exclusion", manifests, pods) as m:
        yield m


def ok(m: LocalMesh, pod: str) -> bool:
    return m.request("client", pod, URL, "-I") == (0, 200)


def test_pod_level_port_exclusion(mesh: LocalMesh) -> None:
    mesh.wait_repeated(lambda: ok(mesh, "pod-level"), f"HEAD {URL} from the annotated pod: 200")
    assert mesh.request("client", "before", URL, "-I")[0] == 7


def test_global_port_exclusion(mesh: LocalMesh) -> None:
    (mesh.manifests / "mesh.yaml").write_text(
        mesh_config(traffic={**SMI, "outboundPortExclusionList": [80]})
        + "---\n"
        + external_server(80)
        + "---\n"
        + yaml_docs(POD_LEVEL, client("client"))
    )
    mesh.wait_ready([("client", "client")])
    mesh.wait_repeated(lambda: ok(mesh, "client"), f"HEAD {URL} with port 80 excluded globally: 200")
