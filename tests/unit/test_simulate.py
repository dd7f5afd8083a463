"""Requests sent through the generated config of the example mesh (osm.envoy.simulate).

The same policy behaviour the end-to-end tests show with real sidecars, here in milliseconds: who may
call whom, on which paths and ports, and which hop decided.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from tests.golden.scenarios import FAKE_CERT

from osm.envoy.simulate import MeshProxies, Request, mesh_proxies
from osm.local.workloads import nat_of
from osm.state.decode import decode
from osm.state.snapshot import MeshState

EXAMPLE = Path(__file__).parents[2] / "examples" / "bookstore"
BOOKSTORE = "10.96.0.20"  # the apex's ClusterIP
BOOKSTORE_V1 = "10.96.0.21"
MYSQL = "10.96.0.31"


def example(*extra: str, permissive: bool = False) -> MeshState:
    objs = []
    for path in sorted(EXAMPLE.glob("*.yaml")):
        text = path.read_text()
        if permissive:
            text = text.replace(
                "enablePermissiveTrafficPolicyMode: false", "enablePermissiveTrafficPolicyMode: true"
            )
        objs += [o for d in yaml.safe_load_all(text) if d and (o := decode(d)) is not None]
    for text in extra:
        objs += [o for d in yaml.safe_load_all(text) if d and (o := decode(d)) is not None]
    return MeshState.build(objs)


def _proxies(state: MeshState) -> MeshProxies:
    return mesh_proxies(state, FAKE_CERT, nat_of(state))


@pytest.fixture(scope="module")
def smi() -> MeshProxies:
    return _proxies(example())


def get(
    path: str, host: str = "bookstore.bookstore:14001", ip: str = BOOKSTORE, method: str = "GET"
) -> Request:
    return Request(ip, 14001, host=host, path=path, method=method)


def test_an_allowed_request_is_served_by_each_backend_of_the_split(smi: MeshProxies) -> None:
    outcomes = smi.send("bookbuyer", "bookbuyer", get("/books-bought"))
    assert [(o.result, o.status) for o in outcomes] == [("served", 200), ("served", 200)]
    servers = {h.name.split()[0] for o in outcomes for h in o.hops if h.what == "server listener"}
    assert servers == {"bookstore/bookstore-v1", "bookstore/bookstore-v2"}
    assert {o.hops[-1].name for o in outcomes} == {"bookstore/bookstore|14001|local"}  # the apex's vhost
    hops = [str(h) for h in outcomes[0].hops]
    assert hops[:3] == [
        "listener outbound-listener",
        "filter chain outbound-mesh-http.14001",
        "route configuration rds-outbound.14001",
    ]
    assert "server route /books-bought" in hops


def test_a_path_no_route_group_allows_gets_404_from_the_server(smi: MeshProxies) -> None:
    (o, _) = smi.send("bookbuyer", "bookbuyer", get("/admin"))
    assert (o.result, o.status) == ("http-error", 404)
    assert "no route of bookstore/bookstore-v" in o.reason


def test_a_method_no_route_group_allows_gets_404(smi: MeshProxies) -> None:
    (o, _) = smi.send("bookbuyer", "bookbuyer", get("/books-bought", method="POST"))
    assert o.status == 404


def test_a_client_without_a_traffic_target_is_passed_through_and_refused_by_the_server(
    smi: MeshProxies,
) -> None:
    (o,) = smi.send("bookthief", "bookthief", get("/books-bought"))
    assert o.result == "closed" and not o.allowed
    assert "accepts only mTLS" in o.reason
    assert [str(h) for h in o.hops] == [
        "listener outbound-listener",
        "filter chain outbound-egress-filter-chain",
        "cluster passthrough-outbound",
    ]


def test_without_egress_a_client_without_a_traffic_target_has_no_outbound_listener() -> None:
    state = example()
    mc = state.mesh_config
    off = replace(mc, traffic=replace(mc.traffic, enable_egress=False))
    proxies = _proxies(MeshState.build([*state.pods.values(), *_all_but_mesh_config(state), off]))
    (o,) = proxies.send("bookthief", "bookthief", get("/books-bought"))
    assert o.result == "refused" and "has no outbound listener" in o.reason  # curl exits with 7


def test_a_route_the_rbac_of_the_route_denies_gets_403() -> None:
    # bookthief is granted only books-bought on v1; the route for buy-a-book denies it with 403.
    grant = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: thief, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore-v1, namespace: bookstore}
  rules: [{kind: HTTPRouteGroup, name: bookstore-service-routes, matches: [books-bought]}]
  sources: [{kind: ServiceAccount, name: bookthief, namespace: bookthief}]
"""
    proxies = _proxies(example(grant))
    v1 = get("/books-bought", host="bookstore-v1.bookstore:14001", ip=BOOKSTORE_V1)
    assert [(o.result, o.status) for o in proxies.send("bookthief", "bookthief", v1)] == [("served", 200)]
    buy = replace(v1, path="/buy-a-book/new")
    (o,) = proxies.send("bookthief", "bookthief", buy)
    assert (o.result, o.status) == ("http-error", 403)
    assert "does not allow bookthief.bookthief.cluster.local" in o.reason


def test_tcp_is_governed_by_the_tcp_route_and_network_rbac(smi: MeshProxies) -> None:
    (ok,) = smi.send("bookwarehouse", "bookwarehouse", Request(MYSQL, 3306))
    assert ok.result == "served"
    assert "network RBAC policy bookwarehouse/mysql" in [str(h) for h in ok.hops]
    (denied,) = smi.send("bookbuyer", "bookbuyer", Request(MYSQL, 3306))
    assert not denied.allowed  # no upstream for bookbuyer: passed through and refused


def test_permissive_mode_lets_every_meshed_client_in() -> None:
    proxies = _proxies(example(permissive=True))
    outcomes = proxies.send("bookthief", "bookthief", get("/anything"))
    assert outcomes and all((o.result, o.status) == ("served", 200) for o in outcomes)


def _all_but_mesh_config(state: MeshState) -> list[object]:
    return [
        *state.namespaces.values(),
        *state.service_accounts.values(),
        *state.services.values(),
        *state.traffic_targets.values(),
        *state.http_route_groups.values(),
        *state.tcp_routes.values(),
        *state.traffic_splits.values(),
    ]
