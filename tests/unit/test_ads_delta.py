"""Incremental (delta) ADS state machine (DeltaStream) driven with fake requests."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import duration_pb2

from osm.envoy.ads.delta import DeltaRequest, DeltaResponse, DeltaStream
from osm.envoy.ads.sotw import LimitExceeded
from osm.envoy.types import TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER, ProxyResources, Resource


def cluster(name: str, timeout_s: int = 1) -> Resource:
    msg = cluster_pb2.Cluster(name=name, connect_timeout=duration_pb2.Duration(seconds=timeout_s))
    return Resource.from_message(TYPE_CLUSTER, name, msg)


def cla(name: str, ip: str = "10.0.0.1") -> Resource:
    msg = endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(
                            address=address_pb2.Address(
                                socket_address=address_pb2.SocketAddress(address=ip, port_value=80)
                            )
                        )
                    )
                ]
            )
        ],
    )
    return Resource.from_message(TYPE_ENDPOINT, name, msg)


def listener(name: str, port: int = 15001) -> Resource:
    msg = listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address="0.0.0.0", port_value=port)
        ),
    )
    return Resource.from_message(TYPE_LISTENER, name, msg)


def mesh(
    *extra: Resource, a_timeout: int = 1, a_ip: str = "10.0.0.1", drop: tuple[str, ...] = ()
) -> ProxyResources:
    """Clusters a, b, c with their CLAs and one listener; `drop` removes clusters (and CLAs) by name."""
    rs = [
        cluster("a", a_timeout),
        cluster("b"),
        cluster("c"),
        cla("a", a_ip),
        cla("b", "10.0.0.2"),
        cla("c", "10.0.0.3"),
        listener("outbound"),
        *extra,
    ]
    return ProxyResources.of(r for r in rs if r.name not in drop)


def names(resp: DeltaResponse) -> list[str]:
    return [r.name for r in resp.resources]


def ack(resp: DeltaResponse) -> DeltaRequest:
    return DeltaRequest(resp.type_url, nonce=resp.nonce)


# ---- wildcard


def test_first_cds_request_without_names_is_legacy_wildcard() -> None:
    pr = mesh()
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_CLUSTER), pr)
    assert resp.type_url == TYPE_CLUSTER
    assert names(resp) == ["a", "b", "c"]
    assert resp.resources == tuple(pr.get(TYPE_CLUSTER)[n] for n in ("a", "b", "c"))
    assert resp.removed == ()
    assert resp.nonce != ""


def test_star_subscription_is_wildcard() -> None:
    pr = mesh()
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_CLUSTER, subscribe=("*",)), pr)
    assert names(resp) == ["a", "b", "c"]
    assert resp.removed == ()  # "*" is not a missing resource name
    # a new cluster reaches a wildcard subscriber
    s.on_request(ack(resp), pr)
    [push] = s.on_update(mesh(cluster("d")))
    assert names(push) == ["d"]


def test_ack_gets_no_response() -> None:
    pr = mesh()
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_CLUSTER), pr)
    assert s.on_request(ack(resp), pr) == []
    assert s.counters.acks == 1
    assert s.counters.responses == 1


def test_unknown_type_url_is_ignored() -> None:
    s = DeltaStream()
    assert s.on_request(DeltaRequest("type.googleapis.com/some.Other"), mesh()) == []
    assert s.on_request(DeltaRequest(""), mesh()) == []
    assert s.counters.requests == 0


# ---- subscribe / unsubscribe by name


def test_eds_subscribe_answers_just_those_names() -> None:
    pr = mesh()
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a", "c")), pr)
    assert names(resp) == ["a", "c"]
    assert resp.removed == ()
    # a later subscription to one more name sends only that one
    s.on_request(ack(resp), pr)
    [more] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("b",), nonce=resp.nonce), pr)
    assert names(more) == ["b"]


def test_resubscribing_to_a_name_already_sent_is_answered() -> None:
    pr = mesh()
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a",)), pr)
    s.on_request(ack(resp), pr)
    [again] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a",), nonce=resp.nonce), pr)
    assert names(again) == ["a"]


def test_subscribe_to_a_missing_name_is_answered_in_removed_resources() -> None:
    pr = mesh()
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a", "ghost")), pr)
    assert names(resp) == ["a"]
    assert resp.removed == ("ghost",)
    # the name stays subscribed: when it appears it is sent
    s.on_request(ack(resp), pr)
    [push] = s.on_update(mesh(cla("ghost", "10.0.0.66")))
    assert names(push) == ["ghost"]
    assert push.removed == ()


def test_unsubscribed_name_is_no_longer_sent() -> None:
    pr = mesh()
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a", "b")), pr)
    s.on_request(ack(resp), pr)
    assert s.on_request(DeltaRequest(TYPE_ENDPOINT, unsubscribe=("a",), nonce=resp.nonce), pr) == []
    assert s.on_update(mesh(a_ip="10.9.9.9")) == []  # only "a" changed
    [push] = s.on_update(
        ProxyResources.of([cla("a", "10.9.9.8"), cla("b", "10.8.8.8"), cla("c", "10.0.0.3")])
    )
    assert names(push) == ["b"]


# ---- updates


def test_update_sends_only_changed_resources_and_removes_vanished_ones() -> None:
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_CLUSTER), mesh())
    s.on_request(ack(resp), mesh())
    after = mesh(cluster("d"), a_timeout=7, drop=("b",))
    [push] = s.on_update(after)
    assert names(push) == ["a", "d"]
    assert push.resources == (after.get(TYPE_CLUSTER)["a"], after.get(TYPE_CLUSTER)["d"])
    assert push.removed == ("b",)
    assert push.nonce != resp.nonce
    # the same state again sends nothing
    assert s.on_update(mesh(cluster("d"), a_timeout=7, drop=("b",))) == []


def test_update_of_unsubscribed_types_is_not_pushed() -> None:
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_LISTENER), mesh())
    s.on_request(ack(resp), mesh())
    assert s.on_update(mesh(cluster("d"), a_ip="10.1.1.1")) == []


# ---- initial_resource_versions


def test_reconnect_with_initial_versions_sends_only_what_the_client_lacks() -> None:
    pr = mesh(cluster("d"))
    have = {n: r.version for n, r in pr.get(TYPE_CLUSTER).items() if n in ("a", "b")}
    have["c"] = "some-old-version"
    have["gone"] = "v-gone"
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_CLUSTER, initial_versions=have), pr)
    assert names(resp) == ["c", "d"]  # a and b are current on the client
    assert resp.removed == ("gone",)


def test_reconnect_when_the_client_is_up_to_date_gets_an_empty_answer() -> None:
    pr = mesh()
    have = {n: r.version for n, r in pr.get(TYPE_CLUSTER).items()}
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_CLUSTER, initial_versions=have), pr)
    assert resp.resources == ()
    assert resp.removed == ()
    assert resp.nonce != ""
    # and it is then tracked: an unchanged update sends nothing, a changed one only the change
    s.on_request(ack(resp), pr)
    assert s.on_update(mesh()) == []
    [push] = s.on_update(mesh(a_timeout=4))
    assert names(push) == ["a"]


# ---- NACK


def test_nack_is_counted_not_answered_and_not_resent_until_changed() -> None:
    pr = mesh()
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_CLUSTER), pr)
    assert s.on_request(DeltaRequest(TYPE_CLUSTER, nonce=resp.nonce, error="bad cluster a"), pr) == []
    assert s.counters.nacks == 1
    assert s.counters.acks == 0
    assert s.last_nack == (TYPE_CLUSTER, "", "bad cluster a")
    assert s.on_update(pr) == []
    assert s.on_update(mesh()) == []
    fixed = mesh(a_timeout=3)
    [fix] = s.on_update(fixed)
    assert fix.resources == (fixed.get(TYPE_CLUSTER)["a"],)


# ---- stale nonce


def test_stale_nonce_still_has_its_subscription_change_honoured() -> None:
    pr = mesh()
    s = DeltaStream()
    [first] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a",)), pr)
    now = mesh(a_ip="10.5.5.5")
    [pushed] = s.on_update(now)
    assert pushed.nonce != first.nonce
    [resp] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("b",), nonce=first.nonce), now)
    assert names(resp) == ["b"]
    assert s.counters.stale == 1


def test_stale_ack_without_subscription_change_is_not_answered() -> None:
    pr = mesh()
    s = DeltaStream()
    [first] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a",)), pr)
    s.on_update(mesh(a_ip="10.5.5.5"))
    assert s.on_request(ack(first), pr) == []
    assert s.counters.stale == 1


# ---- empty first answer


def test_first_request_for_a_type_with_no_resources_gets_an_empty_answer() -> None:
    s = DeltaStream()
    empty = ProxyResources.of([])
    [cds] = s.on_request(DeltaRequest(TYPE_CLUSTER), empty)
    assert (cds.type_url, cds.resources, cds.removed) == (TYPE_CLUSTER, (), ())
    assert cds.nonce != ""
    # a non-wildcard type with nothing subscribed yet answers too
    [eds] = s.on_request(DeltaRequest(TYPE_ENDPOINT), mesh())
    assert (eds.type_url, eds.resources, eds.removed) == (TYPE_ENDPOINT, (), ())
    assert eds.nonce not in ("", cds.nonce)


# ---- CDS -> EDS warming


def test_cluster_change_forces_its_cla_to_be_resent() -> None:
    pr = mesh()
    s = DeltaStream()
    [cds] = s.on_request(DeltaRequest(TYPE_CLUSTER), pr)
    s.on_request(ack(cds), pr)
    [eds] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a", "b", "c")), pr)
    s.on_request(ack(eds), pr)
    out = s.on_update(mesh(a_timeout=9))  # cluster a changes, its endpoints do not
    assert [(r.type_url, names(r)) for r in out] == [(TYPE_CLUSTER, ["a"]), (TYPE_ENDPOINT, ["a"])]
    assert out[1].resources == (pr.get(TYPE_ENDPOINT)["a"],)
    # next time nothing is forced any more
    assert s.on_update(mesh(a_timeout=9)) == []


def test_delta_routes_to_a_new_cluster_wait_for_its_endpoints() -> None:
    from tests.unit.test_ads_sotw import route

    from osm.envoy.types import TYPE_LISTENER, TYPE_ROUTE

    s = DeltaStream()
    first = ProxyResources.of([cluster("a"), cla("a", "10.0.0.1"), listener("out", 15001), route("r", "x")])
    s.on_request(DeltaRequest(TYPE_CLUSTER), first)
    s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a",)), first)
    s.on_request(DeltaRequest(TYPE_LISTENER), first)
    s.on_request(DeltaRequest(TYPE_ROUTE, subscribe=("r",)), first)
    grown = ProxyResources.of(
        [
            cluster("a"),
            cluster("c"),
            cla("a", "10.0.0.1"),
            cla("c", "10.0.0.3"),
            listener("out", 15002),
            route("r", "y"),
        ]
    )
    pushed = s.on_update(grown)
    assert [r.type_url for r in pushed] == [TYPE_CLUSTER] and s.order.hold == {"c"}
    out = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("c",), nonce=pushed[0].nonce), grown)
    assert [r.type_url for r in out] == [TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE]
    assert [r.name for r in out[0].resources] == ["c"] and not s.order.hold


# ---- the NACK rule, reconnects and limits


def test_a_nack_of_the_cds_push_that_added_clusters_ends_the_hold() -> None:
    pr = mesh()
    s = DeltaStream()
    s.on_request(ack(s.on_request(DeltaRequest(TYPE_CLUSTER), pr)[0]), pr)
    [eds] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a", "b", "c")), pr)
    s.on_request(ack(eds), pr)
    s.on_request(ack(s.on_request(DeltaRequest(TYPE_LISTENER), pr)[0]), pr)
    grown = mesh(cluster("d"), cla("d", "10.0.0.4"), listener("extra", 15002))
    [cds] = s.on_update(grown)
    assert s.order.hold == {"d"}
    out = s.on_request(DeltaRequest(TYPE_CLUSTER, nonce=cds.nonce, error="bad cluster d"), grown)
    assert [(r.type_url, names(r)) for r in out] == [(TYPE_LISTENER, ["extra"])]
    assert not s.order.hold


def test_after_a_nack_each_rejected_resource_is_resent_once_it_changes() -> None:
    pr = mesh()
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_CLUSTER), pr)
    s.on_request(DeltaRequest(TYPE_CLUSTER, nonce=resp.nonce, error="bad clusters"), pr)
    assert s.on_update(mesh(a_timeout=1)) == []  # nothing rejected changed
    [fix] = s.on_update(mesh(a_timeout=2))
    assert names(fix) == ["a"]
    s.on_request(ack(fix), pr)
    b_changed = ProxyResources.of(
        [r for r in mesh(a_timeout=2).get(TYPE_CLUSTER).values() if r.name != "b"] + [cluster("b", 7)]
    )
    [another] = s.on_update(b_changed)
    assert names(another) == ["b"]


def test_reconnect_of_a_by_name_type_with_initial_versions_sends_only_what_the_client_lacks() -> None:
    pr = mesh(a_ip="10.1.1.1")
    have = {"a": "stale-version", "b": pr.get(TYPE_ENDPOINT)["b"].version}
    s = DeltaStream()
    [resp] = s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a", "b", "c"), initial_versions=have), pr)
    assert names(resp) == ["a", "c"]


def test_unknown_type_urls_are_counted() -> None:
    s = DeltaStream()
    assert s.on_request(DeltaRequest("type.googleapis.com/some.Other"), mesh()) == []
    assert (s.counters.unknown, s.last_unknown) == (1, "type.googleapis.com/some.Other")


def test_a_subscription_growing_beyond_the_limit_is_refused() -> None:
    s = DeltaStream(max_names=2)
    pr = mesh()
    s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("a", "b")), pr)
    with pytest.raises(LimitExceeded, match="would hold 3 names; the limit is 2"):
        s.on_request(DeltaRequest(TYPE_ENDPOINT, subscribe=("c",)), pr)
