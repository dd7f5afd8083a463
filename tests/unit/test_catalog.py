"""The catalog: permissive and SMI policy, splits, endpoints and identities."""

from __future__ import annotations

from typing import Any

import yaml

from osm.catalog import MeshCatalog
from osm.models.identity import ServiceIdentity
from osm.models.service import Endpoint
from osm.models.trafficpolicy import ANY_PRINCIPAL
from osm.state.decode import decode
from osm.state.snapshot import MeshState

BASE = """
apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b, labels: {openservicemesh.io/monitored-by: osm}}
---
apiVersion: v1
kind: Namespace
metadata: {name: outside}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: a, labels: {app: client}}
spec: {serviceAccountName: client}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: a, labels: {app: other}}
spec: {serviceAccountName: other}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Service
metadata: {name: srv, namespace: b}
spec:
  clusterIP: 10.96.0.10
  selector: {app: srv}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: tcp-admin, port: 9000, targetPort: 9000}]
---
apiVersion: v1
kind: Pod
metadata: {name: srv-0, namespace: b, labels: {app: srv}}
spec: {serviceAccountName: srv}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: srv-1, namespace: b, labels: {app: srv}}
spec: {serviceAccountName: srv}
status:
  podIP: 10.0.1.2
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: v1
kind: Service
metadata: {name: hidden, namespace: outside}
spec: {clusterIP: 10.96.9.9, selector: {app: hidden}, ports: [{port: 80}]}
"""

PERMISSIVE = """
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config, namespace: osm-system}
spec: {traffic: {enablePermissiveTrafficPolicyMode: true, enableEgress: true}}
"""

SMI = """
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config, namespace: osm-system}
spec: {traffic: {enablePermissiveTrafficPolicyMode: false}}
"""


def state(*docs: str) -> MeshState:
    objs: list[Any] = []
    for text in docs:
        for d in yaml.safe_load_all(text):
            if d:
                obj = decode(d)
                assert obj is not None
                objs.append(obj)
    return MeshState.build(objs)


def target(name: str, dest: str, sources: list[str], rules: list[dict[str, Any]], ns: str = "b") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "access.smi-spec.io/v1alpha3",
            "kind": "TrafficTarget",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "destination": {"kind": "ServiceAccount", "name": dest, "namespace": ns},
                "sources": [
                    {"kind": "ServiceAccount", "name": s.split(".")[0], "namespace": s.split(".")[1]}
                    for s in sources
                ],
                "rules": rules,
            },
        }
    )


ROUTES = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: b}
spec:
  matches:
  - {name: read, pathRegex: /items, methods: [GET, HEAD]}
  - {name: write, pathRegex: /items/.*, methods: [POST], headers: {Host: "srv.*"}}
"""
TCP = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: admin, namespace: b}
spec: {matches: {ports: [9000]}}
"""


def group(cat: MeshCatalog, ns: str, name: str) -> Any:
    return cat.group_for_pod(cat.state.pods[(ns, name)])


def test_permissive_reaches_every_mesh_service_with_wildcard_routes_and_no_network_rbac() -> None:
    cat = MeshCatalog(state(BASE, PERMISSIVE))
    out = cat.outbound_policy(ServiceIdentity("a", "client"))
    assert [u.service.name for u in out.upstreams] == ["srv", "srv"]  # both ports; nothing from `outside`
    assert {c.service.cluster_name for c in out.clusters} == {"b/srv|8080", "b/srv|9000"}
    http = next(c for c in out.clusters if c.service.port == 80)
    assert http.endpoints == (Endpoint("10.0.1.1", 8080),)  # the not-ready pod is left out
    inbound = cat.inbound_policy(group(cat, "b", "srv-0"))
    assert inbound.network_rbac is None
    routes = inbound.services[0].virtual_hosts[0].routes
    assert [(r.path_regex, r.method, r.principals) for r in routes] == [(".*", "*", (ANY_PRINCIPAL,))]
    tcp_service = next(s for s in inbound.services if s.service.protocol == "tcp")
    assert tcp_service.virtual_hosts == ()


def test_permissive_identities_of_every_namespace_share_one_tuple_of_upstream_clusters() -> None:
    cat = MeshCatalog(state(BASE, PERMISSIVE))
    a = cat.outbound_policy(ServiceIdentity("a", "client"))
    b = cat.outbound_policy(ServiceIdentity("b", "srv"))
    assert a.clusters is b.clusters  # memo keys made of it compare by identity
    assert [u.same_namespace for u in a.upstreams] == [False, False]
    assert [u.same_namespace for u in b.upstreams] == [True, True]  # what differs stays apart


def test_smi_mode_denies_without_a_traffic_target() -> None:
    cat = MeshCatalog(state(BASE, SMI))
    assert cat.outbound_policy(ServiceIdentity("a", "client")).upstreams == ()
    inbound = cat.inbound_policy(group(cat, "b", "srv-0"))
    assert inbound.network_rbac == ()  # an RBAC filter with no policy: deny everything
    assert inbound.services[0].virtual_hosts[0].routes == ()


def test_smi_http_routes_one_per_method_with_sources_as_principals() -> None:
    tt = target(
        "t", "srv", ["client.a"], [{"kind": "HTTPRouteGroup", "name": "routes", "matches": ["read", "write"]}]
    )
    cat = MeshCatalog(state(BASE, SMI, ROUTES, tt))
    out = cat.outbound_policy(ServiceIdentity("a", "client"))
    assert {u.service.port for u in out.upstreams} == {80, 9000}
    assert cat.outbound_policy(ServiceIdentity("a", "other")).upstreams == ()
    routes = cat.inbound_policy(group(cat, "b", "srv-0")).services[0].virtual_hosts[0].routes
    assert [(r.path_regex, r.method, r.headers) for r in routes] == [
        ("/items", "GET", ()),
        ("/items", "HEAD", ()),
        ("/items/.*", "POST", (("host", "srv.*"),)),
    ]
    assert all(r.principals == ("client.a.cluster.local",) for r in routes)


def test_identical_routes_from_several_targets_merge_their_principals() -> None:
    rule = [{"kind": "HTTPRouteGroup", "name": "routes", "matches": ["read"]}]
    cat = MeshCatalog(
        state(
            BASE, SMI, ROUTES, target("t1", "srv", ["client.a"], rule), target("t2", "srv", ["other.a"], rule)
        )
    )
    routes = cat.inbound_policy(group(cat, "b", "srv-0")).services[0].virtual_hosts[0].routes
    assert {r.principals for r in routes} == {("client.a.cluster.local", "other.a.cluster.local")}


def test_empty_matches_grant_every_match_and_unknown_names_are_ignored() -> None:
    all_matches = target("t1", "srv", ["client.a"], [{"kind": "HTTPRouteGroup", "name": "routes"}])
    cat = MeshCatalog(state(BASE, SMI, ROUTES, all_matches))
    assert len(cat.inbound_policy(group(cat, "b", "srv-0")).services[0].virtual_hosts[0].routes) == 3
    unknown = target(
        "t1", "srv", ["client.a"], [{"kind": "HTTPRouteGroup", "name": "routes", "matches": ["nope"]}]
    )
    cat = MeshCatalog(state(BASE, SMI, ROUTES, unknown))
    assert cat.inbound_policy(group(cat, "b", "srv-0")).services[0].virtual_hosts[0].routes == ()


def test_tcp_routes_become_network_rbac_ports() -> None:
    cat = MeshCatalog(
        state(BASE, SMI, TCP, target("t", "srv", ["client.a"], [{"kind": "TCPRoute", "name": "admin"}]))
    )
    (policy,) = cat.inbound_policy(group(cat, "b", "srv-0")).network_rbac or ()
    assert (policy.name, policy.principals, policy.ports) == ("b/t", ("client.a.cluster.local",), (9000,))


def test_a_target_whose_only_tcp_route_is_missing_grants_nothing() -> None:
    cat = MeshCatalog(
        state(BASE, SMI, target("t", "srv", ["client.a"], [{"kind": "TCPRoute", "name": "gone"}]))
    )
    assert cat.inbound_policy(group(cat, "b", "srv-0")).network_rbac == ()
    assert any("TCPRoute b/gone does not exist" in w for w in cat.warnings)


def test_smi_endpoints_are_filtered_to_allowed_identities() -> None:
    extra = """
apiVersion: v1
kind: Pod
metadata: {name: srv-x, namespace: b, labels: {app: srv}}
spec: {serviceAccountName: intruder}
status: {podIP: 10.0.1.9}
"""
    tt = target("t", "srv", ["client.a"], [{"kind": "HTTPRouteGroup", "name": "routes"}])
    cat = MeshCatalog(state(BASE, SMI, ROUTES, tt, extra))
    http = next(
        c for c in cat.outbound_policy(ServiceIdentity("a", "client")).clusters if c.service.port == 80
    )
    assert http.endpoints == (Endpoint("10.0.1.1", 8080),)
    assert http.peer_identities == (ServiceIdentity("b", "srv"),)
    permissive = MeshCatalog(state(BASE, PERMISSIVE, ROUTES, extra))
    http = next(
        c for c in permissive.outbound_policy(ServiceIdentity("a", "client")).clusters if c.service.port == 80
    )
    assert {e.ip for e in http.endpoints} == {"10.0.1.1", "10.0.1.9"}


SPLIT = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: b}
spec: {clusterIP: 10.96.0.20, selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: b}
spec: {clusterIP: 10.96.0.21, selector: {app: web, v: "1"}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: b}
spec: {clusterIP: 10.96.0.22, selector: {app: web, v: "2"}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-v1-0, namespace: b, labels: {app: web, v: "1"}}
spec: {serviceAccountName: web-v1}
status: {podIP: 10.0.2.1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-v2-0, namespace: b, labels: {app: web, v: "2"}}
spec: {serviceAccountName: web-v2}
status: {podIP: 10.0.2.2}
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: a-split, namespace: b}
spec:
  service: web
  backends: [{service: web-v1, weight: 90}, {service: web-v2, weight: 10}]
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: b-split, namespace: b}
spec:
  service: web
  backends: [{service: web-v1, weight: 1}]
"""


def test_split_weights_the_apex_over_backend_clusters_and_only_the_first_split_counts() -> None:
    cat = MeshCatalog(state(BASE, PERMISSIVE, SPLIT))
    out = cat.outbound_policy(ServiceIdentity("a", "client"))
    apex = next(u for u in out.upstreams if u.service.name == "web")
    assert apex.addresses == ("10.96.0.20",)
    assert [(w.service.cluster_name, w.weight) for w in apex.clusters] == [
        ("b/web-v1|80", 90),
        ("b/web-v2|80", 10),
    ]
    assert "b/web|80" not in {
        c.service.cluster_name for c in out.clusters
    }  # the apex has no cluster of its own
    assert any("only the first is honoured" in w for w in cat.warnings)


def test_split_backends_answer_the_apex_hostnames() -> None:
    cat = MeshCatalog(state(BASE, PERMISSIVE, SPLIT))
    inbound = cat.inbound_policy(group(cat, "b", "web-v1-0"))
    vhosts = {vh.service.name for s in inbound.services for vh in s.virtual_hosts}
    assert vhosts == {"web", "web-v1"}


def test_smi_apex_is_reachable_when_a_backend_is_allowed() -> None:
    rule = [{"kind": "HTTPRouteGroup", "name": "routes"}]
    cat = MeshCatalog(state(BASE, SMI, ROUTES, SPLIT, target("t", "web-v2", ["client.a"], rule)))
    out = cat.outbound_policy(ServiceIdentity("a", "client"))
    assert {u.service.name for u in out.upstreams} == {"web", "web-v2"}
    v1 = next(c for c in out.clusters if c.service.name == "web-v1")
    assert v1.endpoints == ()  # web-v1's identity is not allowed: the cluster exists with no endpoints


def test_endpoints_objects_and_named_target_ports() -> None:
    docs = """
apiVersion: v1
kind: Service
metadata: {name: named, namespace: b}
spec: {clusterIP: 10.96.0.30, selector: {app: named}, ports: [{name: web, port: 80, targetPort: web}]}
---
apiVersion: v1
kind: Pod
metadata: {name: named-0, namespace: b, labels: {app: named}}
spec:
  serviceAccountName: named
  containers: [{name: c, ports: [{name: web, containerPort: 7070}]}]
status: {podIP: 10.0.3.1}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: b}
spec: {clusterIP: 10.96.0.31, selector: {app: ext}, ports: [{name: web, port: 80, targetPort: web}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: ext, namespace: b}
subsets:
- addresses: [{ip: 10.0.4.1}, {ip: 10.0.1.1, targetRef: {kind: Pod, name: srv-0}}]
  notReadyAddresses: [{ip: 10.0.4.2}]
  ports: [{name: web, port: 6060}]
---
apiVersion: v1
kind: Service
metadata: {name: lost, namespace: b}
spec: {clusterIP: 10.96.0.32, selector: {app: none}, ports: [{name: web, port: 80, targetPort: web}]}
"""
    cat = MeshCatalog(state(BASE, PERMISSIVE, docs))
    ix = cat.index
    (named,) = ix.mesh_services[("b", "named")]
    assert named.target_port == 7070 and ix.endpoints[named][0].endpoint == Endpoint("10.0.3.1", 7070)
    (ext,) = ix.mesh_services[("b", "ext")]
    eps = ix.endpoints[ext]
    assert [(e.endpoint.ip, e.endpoint.port, e.identity) for e in eps] == [
        ("10.0.1.1", 6060, ServiceIdentity("b", "srv")),
        ("10.0.4.1", 6060, None),
    ]
    assert ix.mesh_services[("b", "lost")] == ()
    assert any("Service b/lost" in w and "targetPort 'web'" in w for w in cat.warnings)


def test_headless_services_match_pod_ips() -> None:
    docs = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: b}
spec: {clusterIP: None, selector: {app: srv}, ports: [{name: tcp, port: 5432}]}
"""
    cat = MeshCatalog(state(BASE, PERMISSIVE, docs))
    db = next(
        u for u in cat.outbound_policy(ServiceIdentity("a", "client")).upstreams if u.service.name == "db"
    )
    assert db.addresses == ("10.0.1.1", "10.0.1.2")


def test_a_headless_service_of_named_pods_sends_each_connection_to_the_pod_dialed() -> None:
    named = """
apiVersion: v1
kind: Service
metadata: {name: zk, namespace: b}
spec: {clusterIP: None, selector: {app: zk}, ports: [{name: tcp, port: 2888}]}
---
apiVersion: v1
kind: Pod
metadata: {name: zk-0, namespace: b, labels: {app: zk}}
spec: {serviceAccountName: zk, hostname: zk-0, subdomain: zk}
status: {podIP: 10.0.2.1}
---
apiVersion: v1
kind: Pod
metadata: {name: zk-1, namespace: b, labels: {app: zk}}
spec: {serviceAccountName: zk, hostname: zk-1, subdomain: zk}
status: {podIP: 10.0.2.2}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: b}
spec: {clusterIP: None, selector: {app: srv}, ports: [{name: tcp, port: 5432}]}
"""
    cat = MeshCatalog(state(BASE, PERMISSIVE, named))
    clusters = {c.service.name: c for c in cat.outbound_policy(ServiceIdentity("a", "client")).clusters}
    assert clusters["zk"].per_pod  # a StatefulSet's pods: ORIGINAL_DST, to the pod dialed by name
    assert not clusters["db"].per_pod  # headless, but its pods have no names of their own: balanced
    assert not clusters["srv"].per_pod


def test_pods_of_one_workload_share_a_proxy_group() -> None:
    extra = """
apiVersion: v1
kind: Pod
metadata: {name: srv-2, namespace: b, labels: {app: srv, pod-template-hash: abc}}
spec: {serviceAccountName: srv}
status: {podIP: 10.0.1.3}
"""
    cat = MeshCatalog(state(BASE, PERMISSIVE, extra))
    assert group(cat, "b", "srv-0") == group(cat, "b", "srv-2")
    assert group(cat, "b", "srv-0") != group(cat, "a", "client")
    assert cat.proxy_policy(group(cat, "b", "srv-0")) == cat.proxy_policy(group(cat, "b", "srv-2"))


def test_traffic_targets_in_unmonitored_namespaces_are_ignored() -> None:
    tt = target("t", "hidden", ["client.a"], [{"kind": "HTTPRouteGroup", "name": "r"}], ns="outside")
    cat = MeshCatalog(state(BASE, SMI, tt))
    assert cat.allowed_destinations(ServiceIdentity("a", "client")) == frozenset()


def test_an_incremental_index_equals_a_full_rebuild_after_endpoint_changes() -> None:
    from dataclasses import replace as dc_replace

    from osm.catalog.index import MeshIndex
    from osm.state.decode import ObjectKey

    before = state(BASE, PERMISSIVE, SPLIT)
    pods = dict(before.pods)
    moved = dc_replace(pods[("b", "srv-0")], pod_ip="10.0.9.9")
    relabelled = dc_replace(
        pods[("b", "web-v1-0")],
        meta=dc_replace(pods[("b", "web-v1-0")].meta, labels={"app": "web", "v": "2"}),
    )
    objs = [o for o in [*before.services.values(), *before.namespaces.values()]]
    after = MeshState.build(
        [
            *objs,
            *[p for k, p in pods.items() if k not in {("b", "srv-0"), ("b", "web-v1-0")}],
            moved,
            relabelled,
            *before.traffic_splits.values(),
        ]
    )
    changed = [ObjectKey("Pod", "b", "srv-0"), ObjectKey("Pod", "b", "web-v1-0")]
    previous = MeshIndex.build(before)
    incremental, full = MeshIndex.build(after, previous, changed), MeshIndex.build(after)
    assert incremental.endpoints == full.endpoints
    assert incremental.service_identities == full.service_identities
    assert incremental.identity_services == full.identity_services
    assert {k: sorted(v) for k, v in incremental.pod_services.items()} == {
        k: sorted(v) for k, v in full.pod_services.items()
    }
    assert incremental.service_pods[("b", "srv")] != previous.service_pods[("b", "srv")]  # really re-indexed
    # A policy change is not an endpoint change: nothing is carried over.
    assert not MeshIndex(after)._can_reuse(previous, [ObjectKey("TrafficSplit", "b", "a-split")])


def test_the_index_is_carried_over_whole_when_nothing_it_indexes_changed() -> None:
    from osm.catalog.index import MeshIndex
    from osm.state.decode import ObjectKey

    before, after = state(BASE, PERMISSIVE, SPLIT), state(BASE, SPLIT, SMI)
    previous = MeshIndex.build(before)
    policy_only = [
        ObjectKey("MeshConfig", "osm-system", "osm-mesh-config"),
        ObjectKey("TrafficTarget", "b", "t"),
    ]
    carried = MeshIndex.build(after, previous, policy_only)
    assert carried.state is after
    assert carried.endpoints is previous.endpoints  # shared, not rebuilt
    full = MeshIndex.build(after)
    assert (carried.endpoints, carried.splits, carried.identity_services) == (
        full.endpoints,
        full.splits,
        full.identity_services,
    )
    # Services, Namespaces and TrafficSplits are indexed: a change to one rebuilds.
    for kind in ("Service", "Namespace", "TrafficSplit"):
        assert (
            MeshIndex.build(after, previous, [ObjectKey(kind, "b", "x")]).endpoints is not previous.endpoints
        )


def test_a_mesh_config_change_carries_policies_over_unless_it_switches_the_traffic_mode() -> None:
    from osm.state.decode import ObjectKey

    tt = target("t", "srv", ["client.a"], [{"kind": "HTTPRouteGroup", "name": "r"}])
    egress_on = SMI.replace(
        "enablePermissiveTrafficPolicyMode: false",
        "enablePermissiveTrafficPolicyMode: false, enableEgress: true",
    )
    mesh_config = [ObjectKey("MeshConfig", "osm-system", "osm-mesh-config")]
    before = MeshCatalog(state(BASE, SPLIT, SMI, tt))
    client, server = group(before, "a", "client"), group(before, "b", "srv-0")
    old_out, old_in = before.outbound_policy(client.identity), before.inbound_policy(server)
    after = MeshCatalog(state(BASE, SPLIT, egress_on, tt), before, mesh_config)
    fresh = MeshCatalog(state(BASE, SPLIT, egress_on, tt))
    for cat in (after, fresh):  # carried or computed, the same policies
        assert cat.outbound_policy(client.identity).egress is True
    assert after.outbound_policy(client.identity) == fresh.outbound_policy(client.identity)
    assert after.outbound_policy(client.identity).upstreams is old_out.upstreams  # carried, not recomputed
    assert after.inbound_policy(server) is old_in
    assert after.proxy_policy(server) == fresh.proxy_policy(group(fresh, "b", "srv-0"))
    # Switching to permissive mode recomputes: every service becomes an upstream.
    permissive = MeshCatalog(state(BASE, PERMISSIVE, SPLIT, tt), after, mesh_config)
    assert permissive.outbound_policy(client.identity).upstreams != old_out.upstreams
    assert permissive.outbound_policy(client.identity) == MeshCatalog(
        state(BASE, PERMISSIVE, SPLIT, tt)
    ).outbound_policy(client.identity)
    # Anything else changed with it: nothing is carried.
    other = MeshCatalog(
        state(BASE, SPLIT, SMI, tt), after, [*mesh_config, ObjectKey("TrafficTarget", "b", "t")]
    )
    assert other.outbound_policy(client.identity).upstreams is not old_out.upstreams


def test_a_split_with_every_weight_zero_is_warned_about() -> None:
    zero = SPLIT.replace("weight: 90", "weight: 0").replace("weight: 10", "weight: 0")
    assert zero != SPLIT
    cat = MeshCatalog(state(BASE, PERMISSIVE, zero))
    assert any("every backend has weight 0" in w and "have nowhere to go" in w for w in cat.warnings)
