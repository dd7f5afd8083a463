"""Upstream's e2e_trafficsplit_test.go on the local runtime, its three contexts (HTTP with SMI policies,
TCP with SMI policies, HTTP in permissive mode), at a smaller scale (3 backends of 2 replicas, 2 client
namespaces of 2 replicas; upstream 5 x 2 and 2 x 5).

Each backend `server<i>` has its own ServiceAccount and Service (port 14001, appProtocol http or tcp);
in SMI mode every client may reach every backend (an HTTPRouteGroup, or a TCPRoute of port 14001, and a
TrafficTarget per pair). The apex `traffic-split` selects no pod and is split evenly. Every client pod's
HEAD requests to the apex get 200 and every backend pod answers, 5 rounds in a row; then every client
pod's requests to each backend Service directly get 200, 2 rounds in a row. (Upstream's TCP context
also sends HTTP over the TCP route.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import (
    allow_all,
    mesh_config,
    namespace,
    podname_calls,
    podname_deployment,
    service_of,
    sleeper_deployment,
    small_mesh,
    tcp_allow,
    traffic_split,
    yaml_docs,
)
from tests.e2e.conftest import (
    wait_replicas as wait_all,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

BACKENDS = [f"server{i}" for i in range(3)]
CLIENTS = ["client0", "client1"]


def manifests(
    app_protocol: str,
    permissive: bool,
    *,
    weights: dict[str, int] | None = None,
    service_account: str | None = None,
) -> str:
    """The split's mesh: ports of `app_protocol` ("": none given, HTTP), `weights` by backend (default:
    even), every backend running as its own ServiceAccount or as `service_account`; in SMI mode each
    client allowed to each ServiceAccount."""
    weights = weights or {b: 100 // len(BACKENDS) for b in BACKENDS}
    accounts = {b: service_account or b for b in BACKENDS}
    docs = [
        mesh_config(traffic={"enablePermissiveTrafficPolicyMode": permissive}),
        yaml_docs(
            namespace("server"),
            *(namespace(c) for c in CLIENTS),
            *(
                d
                for b in BACKENDS
                for d in podname_deployment(
                    "server", b, replicas=2, service_account=accounts[b], app_protocol=app_protocol
                )
            ),
            *(sleeper_deployment(c, c, 2) for c in CLIENTS),
            service_of("server", "traffic-split", {"app": "traffic-split"}, 14001, app_protocol),
            traffic_split("server", "traffic-split", "traffic-split", weights),
        ),
    ]
    if not permissive:
        for c in CLIENTS:
            for sa in sorted(set(accounts.values())):
                docs.append(
                    allow_all((c, c), ("server", sa), f"{c}-{sa}")
                    if app_protocol != "tcp"
                    else tcp_allow((c, c), ("server", sa), f"{c}-{sa}", [14001])
                )
    return "---\n".join(docs)


CONTEXTS = {"HTTP, SMI": ("http", False), "TCP, SMI": ("tcp", False), "HTTP, permissive": ("http", True)}


@pytest.fixture(scope="module", params=list(CONTEXTS))
def mesh(
    request: pytest.FixtureRequest, local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "split", manifests(*CONTEXTS[request.param]), []) as m:
        wait_replicas(m)
        yield m


def wait_replicas(m: LocalMesh) -> None:
    wait_all(m, [("server", f"{b}-", 2) for b in BACKENDS] + [(c, f"{c}-", 2) for c in CLIENTS])


def calls_from_every_client(m: LocalMesh, url: str, n: int) -> list[tuple[int, str]]:
    return [
        call
        for c in CLIENTS
        for pod in m.pods(c, f"{c}-")
        for call in podname_calls(m, c, pod["name"], url, n)
    ]


def test_traffic_split_over_every_backend(mesh: LocalMesh) -> None:
    split_reaches_every_backend(mesh)


def split_reaches_every_backend(mesh: LocalMesh) -> None:
    """Through the apex: all 200 and every backend pod seen, 5 rounds in a row; then straight to every
    backend: all 200, 2 rounds in a row."""
    backend_pods = {p["name"] for b in BACKENDS for p in mesh.pods("server", f"{b}-")}
    seen: set[str] = set()

    def round_ok() -> bool:
        calls = calls_from_every_client(mesh, "http://traffic-split.server:14001/", 6)
        seen.update(name for _, name in calls)
        return all(status == 200 for status, _ in calls) and seen == backend_pods

    mesh.wait_repeated(round_ok, "all 200 through the apex, every backend pod seen", timeout=150)

    def direct_ok() -> bool:
        return all(
            status == 200
            for b in BACKENDS
            for status, _ in calls_from_every_client(mesh, f"http://{b}.server:14001/", 1)
        )

    mesh.wait_repeated(direct_ok, "all 200 straight to every backend", times=2, timeout=150)
