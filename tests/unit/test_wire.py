"""Hand-assembled protobuf envelopes (osm.envoy.wire) parse back with protobuf itself."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from osm.envoy import wire
from osm.envoy.types import TYPE_CLUSTER, TYPE_ENDPOINT, ProxyResources, Resource, content_version


def cluster_msg(name: str, timeout_s: int = 1) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(name=name, connect_timeout=duration_pb2.Duration(seconds=timeout_s))


def cluster(name: str, timeout_s: int = 1) -> Resource:
    return Resource.from_message(TYPE_CLUSTER, name, cluster_msg(name, timeout_s))


@pytest.mark.parametrize("n", [1, 127, 128, 255, 300, 16_383, 16_384, 2**31 - 1, 2**32, 2**63 - 1, 2**64 - 1])
def test_varint_matches_protobuf_encoding(n: int) -> None:
    # UInt64Value{value=1}: tag 0x08 then the varint
    assert b"\x08" + wire.varint(n) == wrappers_pb2.UInt64Value(value=n).SerializeToString()


def test_varint_of_zero_is_a_single_zero_byte() -> None:
    assert wire.varint(0) == b"\x00"
    assert wrappers_pb2.UInt64Value.FromString(b"\x08" + wire.varint(0)).value == 0


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 70_000])
def test_any_envelope_matches_protobuf_any(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    built = wire.any_bytes("type.googleapis.com/x.Y", body)
    expect = any_pb2.Any(type_url="type.googleapis.com/x.Y", value=body)
    assert any_pb2.Any.FromString(built) == expect
    if body:  # protobuf omits an empty `value`; wire writes it as an empty field, which parses the same
        assert built == expect.SerializeToString()


def test_resource_any_bytes_equal_protobuf_pack() -> None:
    msg = cluster_msg("bookstore/bookstore-v1|14001", 3)
    packed = any_pb2.Any()
    packed.Pack(msg, deterministic=True)
    r = Resource.from_message(TYPE_CLUSTER, msg.name, msg)
    assert r.any_bytes == packed.SerializeToString(deterministic=True)
    assert packed.type_url == TYPE_CLUSTER


def test_resource_version_follows_content() -> None:
    assert cluster("a").version == cluster("a").version
    assert cluster("a", 1).version != cluster("a", 2).version


def test_content_version_depends_on_names_and_versions_not_order() -> None:
    a, b = cluster("a"), cluster("b")
    assert content_version([a, b]) == content_version([b, a])
    assert content_version([a, b]) != content_version([a])
    assert content_version([a, b]) != content_version([a, cluster("b", 5)])
    # same bytes under another name is a different set
    renamed = Resource(name="z", type_url=a.type_url, framed=a.framed, version=a.version)
    assert content_version([a]) != content_version([renamed])


def test_proxy_resources_drop_duplicate_names_keeping_the_first() -> None:
    first, dup = cluster("a", 1), cluster("a", 2)
    pr = ProxyResources.of([first, dup, cluster("b")])
    assert dict(pr.get(TYPE_CLUSTER)) == {"a": first, "b": pr.get(TYPE_CLUSTER)["b"]}
    assert pr.versions[TYPE_CLUSTER] == content_version([first, cluster("b")])
    assert dict(pr.get(TYPE_ENDPOINT)) == {}
    assert dict(pr.get("type.googleapis.com/unknown")) == {}


def test_discovery_response_parses_back() -> None:
    rs = [cluster("a", 1), cluster("b", 2)]
    raw = wire.discovery_response("v-123", TYPE_CLUSTER, "42", (r.any_bytes for r in rs))
    m = discovery_pb2.DiscoveryResponse.FromString(raw)
    assert m.version_info == "v-123"
    assert m.nonce == "42"
    assert m.type_url == TYPE_CLUSTER
    assert [a.type_url for a in m.resources] == [TYPE_CLUSTER, TYPE_CLUSTER]
    got = cluster_pb2.Cluster()
    assert m.resources[1].Unpack(got)
    assert got == cluster_msg("b", 2)
    # re-serializing the parsed message gives the same bytes: no unknown or misplaced fields
    assert m.SerializeToString() == raw


def test_discovery_response_with_no_resources() -> None:
    raw = wire.discovery_response("v", TYPE_ENDPOINT, "1", [])
    m = discovery_pb2.DiscoveryResponse.FromString(raw)
    assert (m.version_info, m.type_url, m.nonce, len(m.resources)) == ("v", TYPE_ENDPOINT, "1", 0)


def test_delta_discovery_response_parses_back() -> None:
    cla_msg = endpoint_pb2.ClusterLoadAssignment(cluster_name="a")
    rs = [Resource.from_message(TYPE_ENDPOINT, "a", cla_msg), cluster("ignored-type-but-valid")]
    raw = wire.delta_discovery_response("7", TYPE_ENDPOINT, "n-9", rs[0].delta_parts(), ["gone-1", "gone-2"])
    m = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)
    assert m.system_version_info == "7"
    assert m.type_url == TYPE_ENDPOINT
    assert m.nonce == "n-9"
    assert list(m.removed_resources) == ["gone-1", "gone-2"]
    [res] = m.resources
    assert res.name == "a"
    assert res.version == rs[0].version
    got = endpoint_pb2.ClusterLoadAssignment()
    assert res.resource.Unpack(got)
    assert got == cla_msg
    assert m.SerializeToString() == raw


def test_delta_resource_matches_protobuf_resource() -> None:
    r = cluster("bookstore/bookstore-v2|14001", 4)
    expect = discovery_pb2.Resource(name=r.name, version=r.version)
    expect.resource.Pack(cluster_msg(r.name, 4), deterministic=True)
    raw = wire.delta_discovery_response("", TYPE_CLUSTER, "", r.delta_parts(), [])
    [got] = discovery_pb2.DeltaDiscoveryResponse.FromString(raw).resources
    assert got == expect


def test_large_response_with_multibyte_lengths_parses_back() -> None:
    # 500 resources with long names: every length prefix needs more than one varint byte
    rs = [cluster("c" * 200 + str(i), i % 7 + 1) for i in range(500)]
    raw = wire.discovery_response("v" * 300, TYPE_CLUSTER, "9" * 130, [r.any_bytes for r in rs])
    m = discovery_pb2.DiscoveryResponse.FromString(raw)
    assert len(m.resources) == 500
    assert m.version_info == "v" * 300
    assert m.nonce == "9" * 130
    last = cluster_pb2.Cluster()
    m.resources[-1].Unpack(last)
    assert last.name == "c" * 200 + "499"


@pytest.mark.parametrize("size", [0, 100, 127, 128, 16_370, 16_384, 70_000])
def test_framed_resources_serve_the_same_bytes_as_framing_each_any(size: int) -> None:
    # SotW responses are joined from Resource.framed; they must equal framing the packed Any per response
    body = cluster_msg("c" * size).SerializeToString(deterministic=True)
    r = Resource.from_body(TYPE_CLUSTER, "c" * size, body)
    assert r.any_bytes == wire.any_bytes(TYPE_CLUSTER, body)
    assert r.framed == wire.field_bytes(2, r.any_bytes)
    framed = wire.discovery_response_framed("v", TYPE_CLUSTER, "n", [r.framed, r.framed])
    assert framed == wire.discovery_response("v", TYPE_CLUSTER, "n", [r.any_bytes, r.any_bytes])
    m = discovery_pb2.DiscoveryResponse.FromString(framed)
    assert [a.value for a in m.resources] == [body, body]


def test_proxy_resources_share_what_did_not_change_with_their_previous_version() -> None:
    cla = Resource.from_message(TYPE_ENDPOINT, "a", endpoint_pb2.ClusterLoadAssignment(cluster_name="a"))
    a, b = cluster("a"), cluster("b")
    before = ProxyResources.of([a, b, cla])
    names = before.names(TYPE_CLUSTER)  # a view, computed once
    after = ProxyResources.of([a, b, cluster("c")], previous=before)
    fresh = ProxyResources.of([a, b, cluster("c")])
    assert after.versions == fresh.versions
    assert {t: dict(m) for t, m in after.by_type.items()} == {t: dict(m) for t, m in fresh.by_type.items()}
    # The clusters changed (c added) and the endpoints went away: neither is shared.
    assert after.get(TYPE_CLUSTER) is not before.get(TYPE_CLUSTER)
    assert after.names(TYPE_CLUSTER) == {"a", "b", "c"}
    same = ProxyResources.of([a, b, cla], previous=before)
    assert same.get(TYPE_CLUSTER) is before.get(TYPE_CLUSTER)
    assert same.get(TYPE_ENDPOINT) is before.get(TYPE_ENDPOINT)
    assert same.names(TYPE_CLUSTER) is names
    # Equal content in new objects is not taken for the same: compared by identity, never wrong.
    rebuilt = ProxyResources.of([cluster("a"), cluster("b"), cla], previous=before)
    assert rebuilt.get(TYPE_CLUSTER) is not before.get(TYPE_CLUSTER)
    assert rebuilt.versions == before.versions
