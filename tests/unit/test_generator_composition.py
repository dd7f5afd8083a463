"""Resources composed from shared serialized parts equal the messages the builders make directly.

Checked on every proxy of the golden scenarios and of standard meshes (SMI and permissive): the outbound
listener (a shared shell, filter chains and per-address matcher entries) and the upstream clusters
(shared parts plus the proxy's own certificate). Then, after a change to one upstream, only that
upstream's parts rebuild.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.trace.v3 import zipkin_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import any_pb2, wrappers_pb2
from google.protobuf.json_format import MessageToDict
from tests.golden.scenarios import FAKE_CERT, load_state, scenario_and_standard_meshes
from xds.type.matcher.v3 import ip_pb2

from osm.catalog import MeshCatalog
from osm.envoy.cds import clusters
from osm.envoy.common import TRACING_CLUSTER
from osm.envoy.generator import ConfigGenerator
from osm.envoy.lds import outbound
from osm.envoy.lds.hcm import HCM_FILTER
from osm.envoy.types import TYPE_CLUSTER, TYPE_LISTENER
from osm.models.trafficpolicy import ProxyPolicy, Tracing
from osm.state.snapshot import MeshState
from osm.testing.mesh import build


def body(any_bytes: bytes) -> bytes:
    return any_pb2.Any.FromString(any_bytes).value


@pytest.mark.parametrize(
    ("name", "state"), scenario_and_standard_meshes(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_composed_resources_equal_the_built_messages(name: str, state: MeshState) -> None:
    catalog, gen = MeshCatalog(state), ConfigGenerator()
    listeners = 0
    for pod in state.pods.values():
        if not state.is_monitored(pod.meta.namespace):
            continue
        policy = catalog.proxy_policy(catalog.group_for_pod(pod))
        res = gen.resources(policy, FAKE_CERT)
        built = outbound.outbound_listener(policy.outbound)
        composed = res.get(TYPE_LISTENER).get(outbound.OUTBOUND_LISTENER)
        assert (composed is None) == (built is None)
        if built is not None and composed is not None:
            assert listener_pb2.Listener.FromString(body(composed.any_bytes)) == built
            listeners += 1
        for c in policy.outbound.clusters:
            expected = clusters.upstream_cluster(c, policy.identity, policy.tls, policy.trust_domain)
            got = cluster_pb2.Cluster.FromString(
                body(res.get(TYPE_CLUSTER)[c.service.cluster_name].any_bytes)
            )
            # Equal once nested Any payloads are unpacked (their bytes may order fields differently).
            assert MessageToDict(got) == MessageToDict(expected)
    assert listeners > 0


def test_a_changed_upstream_rebuilds_only_its_own_filter_chain() -> None:
    state = MeshState.build(build(12, 2, mode="permissive").objects)
    catalog, gen = MeshCatalog(state), ConfigGenerator()
    pod = next(iter(state.pods.values()))
    policy = catalog.proxy_policy(catalog.group_for_pod(pod))
    before = gen.resources(policy, FAKE_CERT).get(TYPE_LISTENER)[outbound.OUTBOUND_LISTENER]
    first, *rest = policy.outbound.upstreams
    moved = replace(first, addresses=("10.96.99.99",))
    changed = replace(policy, outbound=replace(policy.outbound, upstreams=(moved, *rest)))
    builds = gen.builds
    after = gen.resources(changed, FAKE_CERT).get(TYPE_LISTENER)[outbound.OUTBOUND_LISTENER]
    assert after.version != before.version
    assert b"10.96.99.99" in after.any_bytes
    # The listener's composition, the moved upstream's chain and its port's route configuration (keyed
    # by its upstreams); the other chains and the listener shell come from the previous generation.
    assert gen.builds - builds == 3


def test_a_sweep_keeps_what_live_parts_are_made_of_and_drops_the_rest() -> None:
    """A proxy's upstream set kept by a sweep still has its per-upstream parts, so a later endpoint
    change rebuilds that upstream's endpoints only; parts no live group uses are dropped."""
    state = MeshState.build(build(12, 2, mode="permissive").objects)
    catalog, gen = MeshCatalog(state), ConfigGenerator()
    pod = next(iter(state.pods.values()))
    policy = catalog.proxy_policy(catalog.group_for_pod(pod))
    first, *rest = policy.outbound.clusters
    moved = replace(first, endpoints=())
    changed = replace(policy, outbound=replace(policy.outbound, clusters=(moved, *rest)))
    gen.resources(changed, FAKE_CERT)
    gen.resources(policy, FAKE_CERT)
    gen.sweep(gen.last_parts)  # only `policy` is still served
    builds = gen.builds
    gen.resources(policy, FAKE_CERT)
    assert gen.builds == builds  # everything it uses was kept
    gen.resources(changed, FAKE_CERT)
    # Its upstream set (composed from kept parts) and the changed cluster's endpoints were dropped; not
    # the other upstreams' cluster parts, endpoints and secrets, nor the clusters' framing or the listener.
    assert gen.builds - builds == 2


def test_an_http_upstream_comes_and_goes_in_the_chain_matcher_alone() -> None:
    state = MeshState.build(build(12, 2, mode="permissive").objects)
    catalog, gen = MeshCatalog(state), ConfigGenerator()
    policy = catalog.proxy_policy(catalog.group_for_pod(next(iter(state.pods.values()))))
    first, *rest = policy.outbound.upstreams
    assert first.service.protocol == "http" and any(u.service.port == first.service.port for u in rest)
    without = replace(policy, outbound=replace(policy.outbound, upstreams=tuple(rest)))

    def listener(p: ProxyPolicy) -> listener_pb2.Listener:
        got = gen.resources(p, FAKE_CERT).get(TYPE_LISTENER)[outbound.OUTBOUND_LISTENER]
        return listener_pb2.Listener.FromString(body(got.any_bytes))

    def by_ip(m: listener_pb2.Listener, port: str) -> dict[str, str]:
        """The port's address -> chain name, read from its IP range matcher."""
        inner = m.filter_chain_matcher.matcher_tree.exact_match_map.map[port].matcher.matcher_tree
        assert inner.custom_match.name == outbound.IP_MATCHER
        ip_matcher = ip_pb2.IPMatcher()
        assert inner.custom_match.typed_config.Unpack(ip_matcher)
        out = {}
        for rm in ip_matcher.range_matchers:
            chain = wrappers_pb2.StringValue()
            assert rm.on_match.action.typed_config.Unpack(chain)
            for r in rm.ranges:
                assert r.prefix_len.value == 32
                out[r.address_prefix] = chain.value
        return out

    a, b = listener(policy), listener(without)
    # The chains Envoy would drain on a change are the same; only the matcher lost the address.
    assert list(a.filter_chains) == list(b.filter_chains)
    port = str(first.service.port)
    ips, left = by_ip(a, port), by_ip(b, port)
    assert set(ips) - set(left) == set(first.addresses)
    assert ips[first.addresses[0]] == f"outbound-mesh-http.{port}"


TRACING = Tracing("jaeger.osm-system.svc.cluster.local", 9411, "/api/v2/spans", 50.0)


def hcms(listener: listener_pb2.Listener) -> list[hcm_pb2.HttpConnectionManager]:
    out = []
    for chain in listener.filter_chains:
        for f in chain.filters:
            if f.name == HCM_FILTER:
                out.append(hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value))
    return out


@pytest.mark.parametrize("name", ["egress", "ingress_backend", "split", "smi_http"])
def test_tracing_reaches_every_http_connection_manager_and_adds_the_collector_cluster(name: str) -> None:
    state = load_state(name)
    catalog, gen = MeshCatalog(state), ConfigGenerator()
    traced = 0
    for pod in state.pods.values():
        if not state.is_monitored(pod.meta.namespace):
            continue
        plain = catalog.proxy_policy(catalog.group_for_pod(pod))
        assert plain.tracing is None
        res = gen.resources(replace(plain, tracing=TRACING), FAKE_CERT)
        untraced = gen.resources(plain, FAKE_CERT)
        assert TRACING_CLUSTER not in untraced.get(TYPE_CLUSTER)
        cluster = cluster_pb2.Cluster.FromString(body(res.get(TYPE_CLUSTER)[TRACING_CLUSTER].any_bytes))
        address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
        assert (cluster.type, address.address, address.port_value) == (
            cluster_pb2.Cluster.LOGICAL_DNS,
            TRACING.address,
            TRACING.port,
        )
        for lname, listener in res.get(TYPE_LISTENER).items():
            msg = listener_pb2.Listener.FromString(body(listener.any_bytes))
            plain_msg = listener_pb2.Listener.FromString(body(untraced.get(TYPE_LISTENER)[lname].any_bytes))
            for h in hcms(msg):
                assert h.generate_request_id.value is True
                assert h.tracing.random_sampling.value == 50.0
                assert h.tracing.provider.name == "envoy.tracers.zipkin"
                z = zipkin_pb2.ZipkinConfig.FromString(h.tracing.provider.typed_config.value)
                assert (z.collector_cluster, z.collector_endpoint) == (TRACING_CLUSTER, "/api/v2/spans")
                assert z.collector_endpoint_version == zipkin_pb2.ZipkinConfig.HTTP_JSON
                traced += 1
            assert all(not h.HasField("tracing") for h in hcms(plain_msg))
            if lname == outbound.OUTBOUND_LISTENER:
                # composed from parts, it equals the listener built as one message
                built = outbound.outbound_listener(plain.outbound, TRACING)
                assert msg == built
    assert traced > 0
