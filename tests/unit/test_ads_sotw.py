"""State-of-the-world ADS state machine (SotwStream) driven with fake requests."""

from __future__ import annotations

import itertools

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import duration_pb2

from osm.envoy.ads.sotw import LimitExceeded, Request, Response, SotwStream
from osm.envoy.types import (
    ORDER,
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    TYPE_SECRET,
    ProxyResources,
    Resource,
    content_version,
)


def cluster(name: str, timeout_s: int = 1) -> Resource:
    msg = cluster_pb2.Cluster(name=name, connect_timeout=duration_pb2.Duration(seconds=timeout_s))
    return Resource.from_message(TYPE_CLUSTER, name, msg)


def cla(name: str, *ips: str) -> Resource:
    eps = [
        endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address=ip, port_value=8080)
                )
            )
        )
        for ip in ips
    ]
    msg = endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name, endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=eps)]
    )
    return Resource.from_message(TYPE_ENDPOINT, name, msg)


def listener(name: str, port: int) -> Resource:
    msg = listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address="0.0.0.0", port_value=port)
        ),
    )
    return Resource.from_message(TYPE_LISTENER, name, msg)


def route(name: str, domain: str) -> Resource:
    msg = route_pb2.RouteConfiguration(
        name=name, virtual_hosts=[route_components_pb2.VirtualHost(name="vh", domains=[domain])]
    )
    return Resource.from_message(TYPE_ROUTE, name, msg)


def secret(name: str, sni: str = "a") -> Resource:
    msg = secret_pb2.Secret(
        name=name, generic_secret=secret_pb2.GenericSecret(secret=base_pb2.DataSource(inline_string=sni))
    )
    return Resource.from_message(TYPE_SECRET, name, msg)


def base(
    *,
    cds_timeout: int = 1,
    eds_ip: str = "10.0.0.1",
    lds_port: int = 15001,
    rds_domain: str = "a.example",
    sni: str = "a",
) -> list[Resource]:
    """A full resource set for one proxy; each keyword changes the content of one type."""
    return [
        cluster("a", cds_timeout),
        cluster("b"),
        cla("a", eds_ip),
        cla("b", "10.0.0.2"),
        listener("outbound", lds_port),
        route("rds-out", rds_domain),
        secret("cert", sni),
    ]


NAMED = {TYPE_ENDPOINT: ("a", "b"), TYPE_ROUTE: ("rds-out",), TYPE_SECRET: ("cert",)}


def names(resp: Response) -> list[str]:
    return [r.name for r in resp.resources]


def ack(resp: Response, names: tuple[str, ...] = ()) -> Request:
    return Request(resp.type_url, version_info=resp.version, nonce=resp.nonce, names=names)


def subscribe_all(s: SotwStream, pr: ProxyResources) -> dict[str, Response]:
    """Request every type (EDS/RDS/SDS by name) and ACK each answer; returns the answers."""
    out = {}
    for t in ORDER:
        [resp] = s.on_request(Request(t, names=NAMED.get(t, ())), pr)
        assert s.on_request(ack(resp, NAMED.get(t, ())), pr) == []
        out[t] = resp
    return out


# ---- initial request, ACK, ignored type URLs


def test_initial_wildcard_cds_request_gets_every_cluster_with_content_version_and_nonce() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    [resp] = s.on_request(Request(TYPE_CLUSTER), pr)
    assert resp.type_url == TYPE_CLUSTER
    assert names(resp) == ["a", "b"]
    assert tuple(resp.resources) == (pr.get(TYPE_CLUSTER)["a"], pr.get(TYPE_CLUSTER)["b"])
    assert resp.version == content_version(pr.get(TYPE_CLUSTER).values())
    assert resp.version == pr.versions[TYPE_CLUSTER]
    assert resp.nonce != ""


def test_cds_explicit_names_are_ignored_for_wildcard_types() -> None:
    pr = ProxyResources.of(base())
    [resp] = SotwStream().on_request(Request(TYPE_CLUSTER, names=("a",)), pr)
    assert names(resp) == ["a", "b"]


def test_ack_of_cds_gets_no_response() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    [resp] = s.on_request(Request(TYPE_CLUSTER), pr)
    assert s.on_request(ack(resp), pr) == []
    assert s.counters.acks == 1
    assert s.counters.responses == 1
    assert s.types[TYPE_CLUSTER].acked_version == resp.version


def test_nonces_are_distinct_across_types_and_responses() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    answers = subscribe_all(s, pr)
    assert len({r.nonce for r in answers.values()}) == len(ORDER)


def test_unknown_and_empty_type_urls_are_ignored() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    assert s.on_request(Request("type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"), pr) == []
    assert s.on_request(Request(""), pr) == []
    assert s.counters.requests == 0
    assert s.counters.responses == 0
    # nothing was subscribed, so nothing is ever pushed
    assert s.on_update(ProxyResources.of(base(cds_timeout=9))) == []


# ---- EDS by name


def test_eds_request_returns_only_the_requested_names() -> None:
    pr = ProxyResources.of([*base(), cla("c", "10.0.0.3")])
    s = SotwStream()
    [resp] = s.on_request(Request(TYPE_ENDPOINT, names=("c", "a")), pr)
    assert names(resp) == ["a", "c"]
    assert resp.version == content_version([pr.get(TYPE_ENDPOINT)["a"], pr.get(TYPE_ENDPOINT)["c"]])
    assert resp.version != pr.versions[TYPE_ENDPOINT]  # a subset, not the whole type


def test_eds_request_with_changed_names_on_the_last_nonce_gets_the_new_names_only() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=("a",)), pr)
    [second] = s.on_request(ack(first, ("a", "b")), pr)
    assert names(second) == ["b"]  # the proxy holds a already: a SotW EDS response may leave it out
    assert second.nonce != first.nonce
    # the version is that of everything the proxy now holds
    assert second.version == content_version([pr.get(TYPE_ENDPOINT)["a"], pr.get(TYPE_ENDPOINT)["b"]])


def test_eds_ack_with_the_same_names_is_not_answered() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=("a", "b")), pr)
    assert s.on_request(ack(first, ("b", "a")), pr) == []


def test_eds_names_dropped_to_empty_after_explicit_names_sends_nothing_then_or_later() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=("a",)), pr)
    assert s.on_request(ack(first, ()), pr) == []
    assert s.types[TYPE_ENDPOINT].names == frozenset()
    assert s.on_update(ProxyResources.of(base(eds_ip="10.3.3.3"))) == []


def test_a_name_dropped_and_asked_for_again_is_sent_again() -> None:
    # Envoy forgets a resource with its last watch, so a name that comes back must be sent whole.
    pr = ProxyResources.of(base())
    s = SotwStream()
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=("a", "b")), pr)
    assert s.on_request(ack(first, ("a",)), pr) == []
    [again] = s.on_request(Request(TYPE_ENDPOINT, nonce=first.nonce, names=("a", "b")), pr)
    assert names(again) == ["b"]


def test_secrets_asked_for_again_with_more_names_send_only_the_new_ones() -> None:
    # Envoy's cold start: its clusters' secrets first, then those and its listeners' secrets.
    pr = ProxyResources.of([*base(), secret("root-a"), secret("root-b"), secret("inbound", "i")])
    s = SotwStream()
    [first] = s.on_request(Request(TYPE_SECRET, names=("root-a", "root-b", "cert")), pr)
    assert names(first) == ["cert", "root-a", "root-b"]
    [second] = s.on_request(ack(first, ("root-a", "root-b", "cert", "inbound")), pr)
    assert names(second) == ["inbound"]
    # a rotated certificate goes out alone
    [push] = s.on_update(
        ProxyResources.of([*base(sni="z"), secret("root-a"), secret("root-b"), secret("inbound", "i")])
    )
    assert names(push) == ["cert"]


def test_after_a_nack_of_a_by_name_type_the_next_response_carries_every_requested_name() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=("a", "b")), pr)
    nack = Request(TYPE_ENDPOINT, nonce=first.nonce, names=("a", "b"), error="bad")
    assert s.on_request(nack, pr) == []
    assert s.on_update(ProxyResources.of(base())) == []  # the same content is not resent
    [fix] = s.on_update(ProxyResources.of(base(eds_ip="10.4.4.4")))
    assert names(fix) == ["a", "b"]  # b did not change, but whether the proxy took it is unknown


def test_an_endpoint_change_sends_only_the_changed_assignment() -> None:
    many = [cla(f"s{i}", f"10.1.0.{i}") for i in range(50)]
    wanted = tuple(f"s{i}" for i in range(50))
    s = SotwStream()
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=wanted), ProxyResources.of([*base(), *many]))
    assert len(first.resources) == 50
    changed = [*many[:7], cla("s7", "10.2.0.7"), *many[8:]]
    [push] = s.on_update(ProxyResources.of([*base(), *changed]))
    assert names(push) == ["s7"]
    assert push.version == content_version(sorted(changed, key=lambda r: r.name))


def test_requested_but_missing_eds_name_is_sent_when_it_appears() -> None:
    s = SotwStream()
    pr = ProxyResources.of(base())
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=("a", "late")), pr)
    assert names(first) == ["a"]
    s.on_request(ack(first, ("a", "late")), pr)
    [push] = s.on_update(ProxyResources.of([*base(), cla("late", "10.0.0.9")]))
    assert names(push) == ["late"]


# ---- stale nonces


def test_request_with_an_older_nonce_is_ignored_and_counted_stale() -> None:
    pr1 = ProxyResources.of(base())
    s = SotwStream()
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=("a",)), pr1)
    [pushed] = s.on_update(ProxyResources.of(base(eds_ip="10.9.9.9")))
    assert pushed.nonce != first.nonce
    # the client's reply to the first response arrives after the push: stale, even with new names
    assert s.on_request(ack(first, ("a", "b")), pr1) == []
    assert s.counters.stale == 1
    assert s.counters.acks == 0
    # a NACK carrying the stale nonce is not a NACK of the latest version either
    stale_nack = Request(TYPE_ENDPOINT, nonce=first.nonce, names=("a",), error="old")
    assert s.on_request(stale_nack, pr1) == []
    assert s.counters.stale == 2
    assert s.counters.nacks == 0
    assert s.last_nack is None


def test_a_name_dropped_by_a_stale_request_and_asked_for_again_is_sent_again() -> None:
    # Envoy drops a cluster's endpoints watch while a response is in flight (its request is stale, so it
    # is not answered) and watches it again before it ACKs that response: it no longer holds "b".
    s = SotwStream()
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=("a", "b")), ProxyResources.of(base()))
    s.on_request(ack(first, ("a", "b")), ProxyResources.of(base()))
    pr = ProxyResources.of(base(eds_ip="10.7.7.7"))
    [pushed] = s.on_update(pr)
    assert names(pushed) == ["a"]
    assert s.on_request(ack(first, ("a",)), pr) == []  # stale
    assert not s.try_ack(ack(pushed, ("a", "b")))  # not a plain ACK any more: the slow path answers it
    [again] = s.on_request(ack(pushed, ("a", "b")), pr)
    assert names(again) == ["b"]
    assert s.on_request(ack(again, ("a", "b")), pr) == []
    assert s.try_ack(ack(again, ("a", "b")))


def test_a_name_dropped_by_a_stale_request_and_left_out_after_is_not_sent() -> None:
    s = SotwStream()
    pr = ProxyResources.of(base())
    [first] = s.on_request(Request(TYPE_ENDPOINT, names=("a", "b")), pr)
    [pushed] = s.on_update(pr2 := ProxyResources.of(base(eds_ip="10.7.7.7")))
    assert s.on_request(ack(first, ("a",)), pr2) == []  # stale
    assert s.on_request(ack(pushed, ("a",)), pr2) == []  # the proxy really dropped it: nothing to send
    # and a stale request of a wildcard type forgets nothing
    [cds] = s.on_request(Request(TYPE_CLUSTER), pr2)
    s.on_update(ProxyResources.of(base(cds_timeout=3, eds_ip="10.7.7.7")))
    assert s.on_request(ack(cds), pr2) == [] and s.types[TYPE_CLUSTER].forgotten == frozenset()


# ---- NACK


def test_nack_is_counted_recorded_and_never_answered_with_the_same_resources() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    [resp] = s.on_request(Request(TYPE_CLUSTER), pr)
    nack = Request(TYPE_CLUSTER, version_info="", nonce=resp.nonce, error="cluster a: bad timeout")
    assert s.on_request(nack, pr) == []
    assert s.counters.nacks == 1
    assert s.counters.acks == 0
    assert s.last_nack == (TYPE_CLUSTER, resp.version, "cluster a: bad timeout")
    # the same resources again (even as a freshly built, equal ProxyResources): no resend loop
    assert s.on_update(pr) == []
    assert s.on_update(ProxyResources.of(base())) == []
    # a change of another type the stream did not ask for does not resend CDS either
    assert s.on_update(ProxyResources.of(base(lds_port=1))) == []
    # the fix goes out
    fixed = ProxyResources.of(base(cds_timeout=5))
    [fix] = s.on_update(fixed)
    assert fix.type_url == TYPE_CLUSTER
    assert fix.version == fixed.versions[TYPE_CLUSTER]
    assert fix.version != resp.version
    assert fix.nonce not in (resp.nonce, "")


# ---- push ordering and scoping


def test_update_of_every_type_is_pushed_in_cds_eds_lds_rds_sds_order() -> None:
    s = SotwStream()
    subscribe_all(s, ProxyResources.of(base()))
    changed = ProxyResources.of(base(cds_timeout=2, eds_ip="10.1.1.1", lds_port=2, rds_domain="b", sni="b"))
    out = s.on_update(changed)
    assert [r.type_url for r in out] == list(ORDER)
    # clusters and listeners whole; of the by-name types only what changed (eds_ip changes a only)
    sent = {r.type_url: names(r) for r in out}
    assert sent == {
        TYPE_CLUSTER: ["a", "b"],
        TYPE_ENDPOINT: ["a"],
        TYPE_LISTENER: ["outbound"],
        TYPE_ROUTE: ["rds-out"],
        TYPE_SECRET: ["cert"],
    }
    for r in out:
        assert tuple(r.resources) == tuple(changed.get(r.type_url)[n] for n in sent[r.type_url])


def test_pushes_for_a_subset_of_types_keep_the_order() -> None:
    s = SotwStream()
    subscribe_all(s, ProxyResources.of(base()))
    out = s.on_update(ProxyResources.of(base(sni="z", lds_port=7, rds_domain="q")))
    assert [r.type_url for r in out] == [TYPE_LISTENER, TYPE_ROUTE, TYPE_SECRET]


def test_cds_change_forces_an_eds_response_even_when_endpoints_are_unchanged() -> None:
    s = SotwStream()
    before = subscribe_all(s, ProxyResources.of(base()))
    after = ProxyResources.of(base(cds_timeout=3))
    out = s.on_update(after)
    assert [r.type_url for r in out] == [TYPE_CLUSTER, TYPE_ENDPOINT]
    eds = out[1]
    assert eds.resources == (before[TYPE_ENDPOINT].resources[0],)  # the changed cluster a's same CLA ...
    assert eds.nonce != before[TYPE_ENDPOINT].nonce  # ... in a new response


def test_types_never_requested_are_never_pushed() -> None:
    s = SotwStream()
    [resp] = s.on_request(Request(TYPE_CLUSTER), ProxyResources.of(base()))
    s.on_request(ack(resp), ProxyResources.of(base()))
    out = s.on_update(
        ProxyResources.of(base(cds_timeout=2, eds_ip="10.1.1.1", lds_port=2, rds_domain="b", sni="b"))
    )
    assert [r.type_url for r in out] == [TYPE_CLUSTER]  # no EDS push either: EDS was never requested


def test_update_that_changes_nothing_sends_nothing() -> None:
    s = SotwStream(nonces=itertools.count(100))
    subscribe_all(s, ProxyResources.of(base()))
    sent = s.counters.responses
    assert s.on_update(ProxyResources.of(base())) == []
    # a change to an EDS resource this stream did not request sends nothing either
    assert s.on_update(ProxyResources.of([*base(), cla("unrequested", "10.7.7.7")])) == []
    assert s.counters.responses == sent


def test_cluster_removal_is_pushed_as_the_complete_remaining_set() -> None:
    s = SotwStream()
    [resp] = s.on_request(Request(TYPE_CLUSTER), ProxyResources.of(base()))
    s.on_request(ack(resp), ProxyResources.of(base()))
    smaller = ProxyResources.of([r for r in base() if not (r.type_url == TYPE_CLUSTER and r.name == "b")])
    [push] = s.on_update(smaller)
    assert names(push) == ["a"]
    assert push.version == smaller.versions[TYPE_CLUSTER]


def test_first_request_carrying_a_nonce_from_a_previous_stream_is_answered() -> None:
    # Nonces do not survive a stream restart: a reconnecting client's first request is not an ACK.
    pr = ProxyResources.of(base())
    s = SotwStream()
    out = s.on_request(Request(TYPE_CLUSTER, version_info="v-old", nonce="17"), pr)
    assert [names(r) for r in out] == [["a", "b"]]


# ---- make before break: routes wait for new clusters' endpoints


def test_routes_to_a_new_cluster_wait_until_its_endpoints_went_out() -> None:
    s = SotwStream()
    subscribe_all(s, ProxyResources.of(base()))
    grown = ProxyResources.of(
        [*base(rds_domain="c.example", lds_port=15002), cluster("c"), cla("c", "10.0.0.3")]
    )
    pushed = s.on_update(grown)
    assert [r.type_url for r in pushed] == [TYPE_CLUSTER]  # listeners and routes are held; a, b unchanged
    assert "c" in names(pushed[0])
    assert s.order.hold == {"c"}
    # Envoy asks for the new cluster's endpoints: they go out, then the held listener and routes.
    eds_nonce = s.types[TYPE_ENDPOINT].nonce
    out = s.on_request(Request(TYPE_ENDPOINT, nonce=eds_nonce, names=("a", "b", "c")), grown)
    assert [r.type_url for r in out] == [TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE]
    assert names(out[0]) == ["c"] and not s.order.hold


def test_a_push_without_new_clusters_is_not_held() -> None:
    s = SotwStream()
    subscribe_all(s, ProxyResources.of(base()))
    out = s.on_update(ProxyResources.of(base(cds_timeout=5, lds_port=15002)))
    assert [r.type_url for r in out] == [TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER] and not s.order.hold


def test_the_hold_ends_when_the_new_cluster_disappears_again() -> None:
    s = SotwStream()
    subscribe_all(s, ProxyResources.of(base()))
    s.on_update(ProxyResources.of([*base(lds_port=15002), cluster("c"), cla("c", "10.0.0.3")]))
    back = ProxyResources.of(base(lds_port=15003))
    cds = s.on_update(back)  # c is gone: its endpoints will never be asked for
    [ack_resp] = [r for r in cds if r.type_url == TYPE_CLUSTER]
    out = s.on_request(ack(ack_resp), back)
    assert [r.type_url for r in out] == [TYPE_LISTENER] and not s.order.hold


def test_endpoints_are_resent_only_for_clusters_whose_definition_changed() -> None:
    s = SotwStream()
    subscribe_all(s, ProxyResources.of(base()))
    # A cluster without endpoints (e.g. the egress passthrough) appears: a, b are untouched.
    other = Resource.from_message(TYPE_CLUSTER, "passthrough", cluster_pb2.Cluster(name="passthrough"))
    out = s.on_update(ProxyResources.of([*base(), other]))
    assert [r.type_url for r in out] == [TYPE_CLUSTER]
    # Cluster a's definition changes: Envoy re-warms it, so its endpoints go out again unchanged.
    out = s.on_update(ProxyResources.of([*base(cds_timeout=9), other]))
    assert [r.type_url for r in out] == [TYPE_CLUSTER, TYPE_ENDPOINT]


# ---- the ACK fast path the server takes without waking the stream's task


def test_try_ack_records_only_plain_acks_that_on_request_would_answer_with_nothing() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    [cds] = s.on_request(Request(TYPE_CLUSTER), pr)
    [eds] = s.on_request(Request(TYPE_ENDPOINT, names=("a", "b")), pr)
    assert not s.try_ack(Request(TYPE_LISTENER, nonce="1"))  # never requested: on_request answers it
    assert not s.try_ack(Request(TYPE_CLUSTER))  # no nonce: a (re)subscription
    assert not s.try_ack(Request(TYPE_CLUSTER, nonce="999"))  # stale: on_request counts it
    assert not s.try_ack(ack(eds, ("a",)))  # names changed: answered
    nack = Request(TYPE_CLUSTER, version_info="", nonce=cds.nonce, error="bad cluster")
    assert not s.try_ack(nack)
    requests, acks = s.counters.requests, s.counters.acks
    assert s.try_ack(ack(cds)) and s.try_ack(ack(eds, ("a", "b")))
    assert (s.counters.requests, s.counters.acks) == (requests + 2, acks + 2)
    assert s.types[TYPE_CLUSTER].acked_version == cds.version
    assert s.types[TYPE_ENDPOINT].acked_version == eds.version


def test_a_wildcard_ack_is_recognised_by_its_bytes_as_envoy_serializes_it() -> None:
    from envoy.service.discovery.v3 import discovery_pb2

    def wire_ack(resp: Response, **extra: object) -> bytes:
        req = discovery_pb2.DiscoveryRequest(
            version_info=resp.version, type_url=resp.type_url, response_nonce=resp.nonce, **extra
        )
        return req.SerializeToString()

    pr = ProxyResources.of(base())
    s = SotwStream()
    [cds] = s.on_request(Request(TYPE_CLUSTER), pr)
    [eds] = s.on_request(Request(TYPE_ENDPOINT, names=("a", "b")), pr)
    assert not s.try_ack_raw(wire_ack(eds, resource_names=["a", "b"]))  # by name: parsed, as before
    assert not s.try_ack_raw(wire_ack(cds, node=base_pb2.Node(id="x")))  # not the plain form: parsed
    assert not s.try_ack_raw(wire_ack(cds, error_detail={"message": "bad"}))  # a NACK is never taken
    requests, acks = s.counters.requests, s.counters.acks
    assert s.try_ack_raw(wire_ack(cds))
    assert (s.counters.requests, s.counters.acks) == (requests + 1, acks + 1)
    assert s.types[TYPE_CLUSTER].acked_version == cds.version
    # a newer response replaces the expected bytes: the old ACK is stale now and goes the slow way
    [cds2] = s.on_update(ProxyResources.of(base(cds_timeout=7)))[:1]
    assert cds2.type_url == TYPE_CLUSTER
    assert not s.try_ack_raw(wire_ack(cds)) and s.try_ack_raw(wire_ack(cds2))
    assert len(s.acks) == 1


def test_try_ack_leaves_an_ack_that_releases_held_config_to_on_request() -> None:
    s = SotwStream()
    subscribe_all(s, ProxyResources.of(base()))
    grown = ProxyResources.of([*base(lds_port=15002), cluster("c"), cla("c", "10.0.0.3")])
    [cds] = s.on_update(grown)
    assert s.order.hold == {"c"}
    assert not s.try_ack(ack(cds))  # this CDS ACK may release the held listener: the slow path decides
    assert s.types[TYPE_CLUSTER].acked_version != cds.version


# ---- the NACK rule and limits (order.py)


def test_a_nack_of_the_cds_push_that_added_clusters_ends_the_hold() -> None:
    s = SotwStream()
    subscribe_all(s, ProxyResources.of(base()))
    grown = ProxyResources.of([*base(lds_port=15002), cluster("c"), cla("c", "10.0.0.3")])
    [cds] = s.on_update(grown)
    assert s.order.hold == {"c"}
    # Envoy rejects the clusters: cluster c never warms, so its endpoints are never asked for.
    out = s.on_request(Request(TYPE_CLUSTER, nonce=cds.nonce, error="bad cluster c"), grown)
    assert [r.type_url for r in out] == [TYPE_LISTENER]  # the held listener goes out now
    assert not s.order.hold
    # and a later listener change is not withheld
    later = ProxyResources.of([*base(lds_port=15003), cluster("c"), cla("c", "10.0.0.3")])
    assert [r.type_url for r in s.on_update(later)] == [TYPE_LISTENER]


def test_a_nack_that_asks_for_more_names_is_answered_with_those_names_only() -> None:
    pr = ProxyResources.of([*base(), cla("c", "10.0.0.3")])
    s = SotwStream()
    [eds] = s.on_request(Request(TYPE_ENDPOINT, names=("a", "b")), pr)
    out = s.on_request(Request(TYPE_ENDPOINT, nonce=eds.nonce, names=("a", "b", "c"), error="bad a"), pr)
    assert [names(r) for r in out] == [["c"]]
    assert s.types[TYPE_ENDPOINT].names == {"a", "b", "c"}
    assert s.counters.nacks == 1
    # what the rejected response carried (a, b) is not held: a change resends it; c, answered since, is
    [push] = s.on_update(ProxyResources.of([*base(eds_ip="10.9.9.9"), cla("c", "10.0.0.3")]))
    assert names(push) == ["a", "b"]


def test_unknown_type_urls_are_counted() -> None:
    s = SotwStream()
    assert s.on_request(Request("type.googleapis.com/some.Other"), ProxyResources.of(base())) == []
    assert (s.counters.unknown, s.last_unknown) == (1, "type.googleapis.com/some.Other")


def test_a_request_naming_more_resources_than_the_limit_is_refused() -> None:
    s = SotwStream(max_names=2)
    pr = ProxyResources.of(base())
    s.on_request(Request(TYPE_ENDPOINT, names=("a", "b")), pr)
    with pytest.raises(LimitExceeded, match="names 3 resources; the limit is 2"):
        s.on_request(Request(TYPE_ENDPOINT, names=("a", "b", "c")), pr)


def test_every_request_is_classified_by_the_branch_it_took() -> None:
    pr = ProxyResources.of(base())
    s = SotwStream()
    seen = []
    [eds] = s.on_request(Request(TYPE_ENDPOINT, names=("a",)), pr)
    seen.append(s.decision)
    s.on_request(ack(eds, ("a",)), pr)
    seen.append(s.decision)
    [more] = s.on_request(
        Request(TYPE_ENDPOINT, version_info=eds.version, nonce=eds.nonce, names=("a", "b")), pr
    )
    seen.append(s.decision)
    s.on_request(ack(eds, ("a",)), pr)  # the nonce of an earlier response
    seen.append(s.decision)
    s.on_request(Request(TYPE_ENDPOINT, nonce=more.nonce, names=("a", "b"), error="bad"), pr)
    seen.append(s.decision)
    s.on_request(Request("type.googleapis.com/x.Y"), pr)
    seen.append(s.decision)
    assert seen == ["first-request", "ack", "subscription-change", "stale-nonce", "nack", "unknown-type"]
