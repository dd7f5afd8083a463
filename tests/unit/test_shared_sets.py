"""Resources shared between proxy groups (SharedSet) and one group's view of them (Composed).

A permissive mesh gives every identity the same thousand clusters but for the name of its own
certificate; those live once, and serving the whole type joins their pieces without making a resource
per group.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf import any_pb2
from tests.golden.scenarios import FAKE_CERT

from osm.catalog import MeshCatalog
from osm.envoy import wire
from osm.envoy.ads.delta import DeltaRequest, DeltaStream
from osm.envoy.ads.sotw import Request, Response, SotwStream
from osm.envoy.generator import ConfigGenerator
from osm.envoy.sds import names
from osm.envoy.types import (
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_SECRET,
    Composed,
    ProxyResources,
    Resource,
    SharedSet,
    changed_names,
)
from osm.state.snapshot import MeshState
from osm.testing.mesh import build

T = TYPE_CLUSTER


def own(name: str, payload: bytes, type_url: str = T) -> Resource:
    return Resource.from_body(type_url, name, wire.field_str(1, name) + payload)


def family(**tails: bytes) -> SharedSet:
    """Clusters framed as head + insert + tail; the head frames a body of name + insert + tail."""
    out = []
    for name, tail in tails.items():
        body_len = len(wire.field_str(1, name)) + len(INSERT) + len(tail)
        out.append((name, wire.framed_any_head(T, body_len) + wire.field_str(1, name), tail))
    return SharedSet.of_pieces(T, out)


INSERT = wire.field_str(2, "mine")


def test_the_whole_type_is_every_resource_without_making_shared_ones() -> None:
    shared = family(b=wire.field_str(3, "tb"), d=wire.field_str(3, "td"))
    mine = [own("e", b"\x18\x03"), own("a", b"\x18\x01"), own("c", b"\x18\x02")]
    res = ProxyResources.of(mine, shared={T: (shared, INSERT)})
    m = res.get(T)
    assert isinstance(m, Composed)
    whole = res.whole(T)
    assert len(whole) == 5
    joined = b"".join(whole.framed())
    assert not m._made  # served whole: no per-group resource was made
    # the shared ones first, then the group's own, each by name (a response may list them in any order)
    assert [r.name for r in whole] == ["b", "d", "a", "c", "e"]
    assert joined == b"".join(r.framed for r in whole)
    assert {r.name: r for r in whole} == {r.name: r for r in res.sorted_all(T)}
    made_b = m["b"]
    assert made_b.framed == wire.framed_any(T, wire.field_str(1, "b") + INSERT + wire.field_str(3, "tb"))
    assert made_b.version == shared.versions["b"] and m["a"] is mine[1]
    assert dict(res.version_map(T)) == {r.name: r.version for r in res.sorted_all(T)}
    # a SotW response of the whole type encodes the same bytes as one listing each resource
    s = SotwStream()
    [resp] = s.on_request(Request(T), res)
    assert resp.encode() == Response(T, resp.version, resp.nonce, tuple(whole)).encode()
    assert s.counters.resources == 5


def test_a_shared_set_without_inserts_is_joined_once_for_every_group() -> None:
    cla = [own("x", b"\x18\x01", TYPE_ENDPOINT), own("w", b"\x18\x02", TYPE_ENDPOINT)]
    eds = SharedSet.of_resources(TYPE_ENDPOINT, cla)
    one = ProxyResources.of([], shared={TYPE_ENDPOINT: (eds, b"")})
    two = ProxyResources.of([], shared={TYPE_ENDPOINT: (eds, b"")})
    [a] = one.whole(TYPE_ENDPOINT).framed()
    [b] = two.whole(TYPE_ENDPOINT).framed()
    assert a is b and a == b"".join(r.framed for r in one.sorted_all(TYPE_ENDPOINT))
    assert one.names(TYPE_ENDPOINT) is two.names(TYPE_ENDPOINT) == {"w", "x"}  # one set for every group
    assert one.version_map(TYPE_ENDPOINT) is two.version_map(TYPE_ENDPOINT)


def test_versions_follow_the_shared_pieces_and_the_groups_own_resources() -> None:
    one = ProxyResources.of([own("a", b"\x18\x01")], shared={T: (family(b=b"x", d=b"y"), INSERT)})
    again = ProxyResources.of([own("a", b"\x18\x01")], shared={T: (family(b=b"x", d=b"y"), INSERT)})
    assert one.versions[T] == again.versions[T]
    tail_changed = ProxyResources.of([own("a", b"\x18\x01")], shared={T: (family(b=b"x", d=b"z"), INSERT)})
    assert tail_changed.versions[T] != one.versions[T]
    assert tail_changed.version_map(T)["b"] == one.version_map(T)["b"]
    assert tail_changed.version_map(T)["d"] != one.version_map(T)["d"]
    own_changed = ProxyResources.of([own("a", b"\x18\x09")], shared={T: (family(b=b"x", d=b"y"), INSERT)})
    assert own_changed.versions[T] != one.versions[T]
    # the same shared set, insert and own resources: the previous map, version and views are reused
    shared = family(b=b"x")
    mine = [own("a", b"\x18\x01")]
    first = ProxyResources.of(mine, shared={T: (shared, INSERT)})
    views = first.version_map(T)
    second = ProxyResources.of(mine, first, shared={T: (shared, INSERT)})
    assert second.get(T) is first.get(T) and second.version_map(T) is views


def test_changed_names_agree_with_comparing_every_name() -> None:
    shared, other = family(b=b"x", d=b"y"), family(b=b"x", d=b"z")

    def vmap(mine: list[Resource], s: SharedSet | None) -> Mapping[str, str]:
        res = ProxyResources.of(mine, shared={T: (s, INSERT)} if s is not None else None)
        return res.version_map(T)

    maps: dict[str, Mapping[str, str]] = {
        "shared only": vmap([], shared),
        "shared, other tail": vmap([], other),
        "shared + a": vmap([own("a", b"\x18\x01")], shared),
        "shared + a changed": vmap([own("a", b"\x18\x02")], shared),
        "shared + a, c": vmap([own("a", b"\x18\x01"), own("c", b"\x18\x01")], shared),
        "other tail + a": vmap([own("a", b"\x18\x01")], other),
        "plain": vmap([own("a", b"\x18\x01"), own("b", b"\x18\x01")], None),
        "empty": {},
    }
    checked = set()
    for old_name, old in maps.items():
        for new_name, new in maps.items():
            expected = {n for n, v in dict(new).items() if dict(old).get(n) != v}
            assert changed_names(old, new) == expected, (old_name, new_name)
            checked.add(frozenset(expected))
    assert {frozenset(), frozenset({"a"}), frozenset({"d"}), frozenset({"a", "c"})} <= checked


def test_a_shared_name_wins_over_a_groups_own_resource_of_the_same_name() -> None:
    res = ProxyResources.of([own("b", b"\x18\x07")], shared={T: (family(b=b"x"), INSERT)})
    assert len(res.get(T)) == 1 and res.get(T)["b"].version == res.get(T).shared.versions["b"]  # type: ignore[attr-defined]


def permissive_groups() -> tuple[MeshState, dict[int, list[ProxyResources]]]:
    """Every group's resources in a small permissive mesh, by the length of its identity's name."""
    state = MeshState.build(build(12, 2, mode="permissive").objects)
    catalog, gen = MeshCatalog(state), ConfigGenerator()
    by_len: dict[int, list[ProxyResources]] = defaultdict(list)
    seen = set()
    for pod in state.pods.values():
        group = catalog.group_for_pod(pod)
        if state.is_monitored(pod.meta.namespace) and group not in seen:
            seen.add(group)
            policy = catalog.proxy_policy(group)
            by_len[len(names.service_cert(policy.identity))].append(gen.resources(policy, FAKE_CERT))
    return state, by_len


def test_identities_share_their_upstream_clusters_endpoints_and_outbound_root() -> None:
    _, by_len = permissive_groups()
    groups = max(by_len.values(), key=len)
    assert len(groups) >= 2
    a, b = groups[0].get(TYPE_CLUSTER), groups[1].get(TYPE_CLUSTER)
    assert isinstance(a, Composed) and isinstance(b, Composed)
    assert a.shared is b.shared and a.insert != b.insert
    name = a.shared.order[0]
    # the same version, different bytes: each names its own certificate
    assert a[name].version == b[name].version and a[name].framed != b[name].framed
    certs = set()
    for m in (a, b):
        c = cluster_pb2.Cluster.FromString(any_pb2.Any.FromString(m[name].any_bytes).value)
        certs.add(c.transport_socket.typed_config.value)
    assert len(certs) == 2
    ea, eb = groups[0].get(TYPE_ENDPOINT), groups[1].get(TYPE_ENDPOINT)
    assert isinstance(ea, Composed) and isinstance(eb, Composed) and ea.shared is eb.shared
    assert all(ea[n] is eb[n] for n in ea.shared.order)  # the very same objects
    # The CA goes out once per proxy, the same object for all: each cluster names its allowed peers.
    sa, sb = groups[0].get(TYPE_SECRET), groups[1].get(TYPE_SECRET)
    assert sa[names.OUTBOUND_ROOT] is sb[names.OUTBOUND_ROOT]
    assert [n for n in sa if n.startswith(names.PREFIX_OUTBOUND_ROOT)] == [names.OUTBOUND_ROOT]


def rebuilt(res: ProxyResources) -> ProxyResources:
    """The same resources in new maps (as a fresh computation of the same group gives)."""
    plain: list[Resource] = []
    shared = {}
    for t, m in res.by_type.items():
        if isinstance(m, Composed):
            shared[t] = (m.shared, m.insert)
            plain += m.own.values()
        else:
            plain += m.values()
    return ProxyResources.of(plain, shared=shared)


def test_a_delta_stream_compares_versions_without_making_resources() -> None:
    _, by_len = permissive_groups()
    res = max(by_len.values(), key=len)[0]
    s = DeltaStream()
    [first] = s.on_request(DeltaRequest(TYPE_CLUSTER, subscribe=("*",)), res)
    assert {r.name for r in first.resources} == set(res.get(TYPE_CLUSTER))
    s.on_request(DeltaRequest(TYPE_CLUSTER, nonce=first.nonce), res)
    fresh = rebuilt(res)
    m = fresh.get(TYPE_CLUSTER)
    assert isinstance(m, Composed) and m is not res.get(TYPE_CLUSTER)
    assert fresh.versions == res.versions
    assert s.on_update(fresh) == [] and not m._made


def test_a_delta_response_of_composed_clusters_makes_none_and_equals_the_made_ones() -> None:
    from envoy.service.discovery.v3 import discovery_pb2

    _, by_len = permissive_groups()
    res = max(by_len.values(), key=len)[0]
    m = res.get(TYPE_CLUSTER)
    assert isinstance(m, Composed) and m.shared.pieces
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_CLUSTER, subscribe=("*",)), res)
    raw = resp.encode()
    assert not m._made  # encoded from the shared pieces and the group's insert
    made = [p for n in resp.names for p in m[n].delta_parts()]
    assert raw == wire.delta_discovery_response(resp.system_version, TYPE_CLUSTER, resp.nonce, made, [])
    got = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)
    assert [(r.name, r.version) for r in got.resources] == [(n, m[n].version) for n in resp.names]


def test_delta_streams_of_a_group_share_what_they_subscribed_to_and_were_sent() -> None:
    _, by_len = permissive_groups()
    res = max(by_len.values(), key=len)[0]
    everything = tuple(sorted(res.names(TYPE_ENDPOINT)))
    streams = [DeltaStream(), DeltaStream()]
    for s in streams:
        [cds] = s.on_request(DeltaRequest(TYPE_CLUSTER, subscribe=("*",)), res)
        s.on_request(DeltaRequest(TYPE_CLUSTER, nonce=cds.nonce), res)
        # each stream's request carries its own copies of the names, as parsed from its own bytes
        [eds] = s.on_request(
            DeltaRequest(TYPE_ENDPOINT, subscribe=tuple((n + "x")[:-1] for n in everything)), res
        )
        assert sorted(eds.names) == sorted(everything)
        s.on_request(DeltaRequest(TYPE_ENDPOINT, nonce=eds.nonce), res)
    a, b = (s.types[TYPE_ENDPOINT] for s in streams)
    assert a.names is b.names is res.names(TYPE_ENDPOINT)
    assert a.known is b.known is res.version_map(TYPE_ENDPOINT)
    assert streams[0].types[TYPE_CLUSTER].known is res.version_map(TYPE_CLUSTER)
    # Unsubscribing makes the stream's own copy; the other keeps the shared views.
    gone = everything[0]
    assert streams[0].on_request(DeltaRequest(TYPE_ENDPOINT, unsubscribe=(gone,)), res) == []
    a, b = (s.types[TYPE_ENDPOINT] for s in streams)
    assert gone not in a.names and gone not in a.known and len(a.known) == len(everything) - 1
    assert b.names is res.names(TYPE_ENDPOINT)
    # Subscribing to it again sends it again.
    [again] = streams[0].on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=(gone,)), res)
    assert again.names == (gone,)
    assert streams[0].types[TYPE_ENDPOINT].known is res.version_map(TYPE_ENDPOINT)
