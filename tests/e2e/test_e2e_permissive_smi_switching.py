"""Upstream's e2e_permissive_smi_switching_test.go on the local runtime (2 client namespaces of 2
replicas and a server of 2 replicas, as upstream): every client pod's HEAD to `server.server:14001`,
15 rounds in a row each step. Without permissive mode or a policy: none gets 200; permissive on: all
200; off: none; on: all; with a simple allow policy per client namespace: all; permissive off again:
still all (the policies allow them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import (
    allow_all,
    mesh_config,
    namespace,
    podname_deployment,
    sleeper_deployment,
    small_mesh,
    wait_replicas,
    yaml_docs,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

CLIENTS = ["client0", "client1"]
URL = "http://server.server:14001/"
APPS = yaml_docs(
    namespace("server"),
    *(namespace(c) for c in CLIENTS),
    *podname_deployment("server", "server", replicas=2, service_account="server"),
    *(sleeper_deployment(c, c, 2) for c in CLIENTS),
)
POLICIES = "---\n".join(allow_all((c, c), ("server", "server"), c) for c in CLIENTS)


def write(m: LocalMesh, permissive: bool, policies: bool = False) -> None:
    text = mesh_config(traffic={"enablePermissiveTrafficPolicyMode": permissive}) + "---\n" + APPS
    (m.manifests / "mesh.yaml").write_text(text + ("---\n" + POLICIES if policies else ""))


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(
        tmp_path_factory,
        "switching",
        mesh_config(traffic={"enablePermissiveTrafficPolicyMode": False}) + "---\n" + APPS,
        [],
    ) as m:
        wait_replicas(m, [("server", "server-", 2)] + [(c, f"{c}-", 2) for c in CLIENTS])
        yield m


def traffic(m: LocalMesh, expect_pass: bool) -> None:
    def round_ok() -> bool:
        codes = [m.request(c, pod["name"], URL, "-I")[1] for c in CLIENTS for pod in m.pods(c, f"{c}-")]
        return all(code == 200 for code in codes) if expect_pass else all(code != 200 for code in codes)

    m.wait_repeated(
        round_ok, f"every client pod {'gets' if expect_pass else 'does not get'} 200", times=15, timeout=200
    )


def test_switching_between_permissive_and_smi_mode(mesh: LocalMesh) -> None:
    traffic(mesh, False)
    write(mesh, permissive=True)
    traffic(mesh, True)
    write(mesh, permissive=False)
    traffic(mesh, False)
    write(mesh, permissive=True)
    traffic(mesh, True)
    write(mesh, permissive=True, policies=True)
    traffic(mesh, True)
    write(mesh, permissive=False, policies=True)
    traffic(mesh, True)
