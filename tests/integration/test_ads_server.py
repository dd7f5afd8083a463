"""The grpc.aio ADS server over mTLS on 127.0.0.1, with Python gRPC clients as proxies.

The mesh is the bookstore example (osm.testing.xds); a client certificate's CN names a pod by its proxy UUID.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

import osm.envoy.ads.server as ads_server
from osm.certificate.manager import CertificateManager
from osm.certificate.tresor import TresorCA
from osm.envoy.ads.cache import XdsCache
from osm.envoy.ads.server import AdsServer
from osm.envoy.ads.sotw import SotwStream
from osm.envoy.types import TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE, TYPE_SECRET
from osm.state.decode import ObjectKey, decode
from osm.testing.xds import (
    SERVER_CN,
    SOTW,
    TIMEOUT,
    UUIDS,
    ack,
    client,
    cluster_names,
    eventually,
    now,
    proxy_cn,
    running_mesh,
    subscribe,
    total_acks,
)

pytestmark = pytest.mark.asyncio

BOOKBUYER_CLUSTERS = {"bookstore/bookstore-v1|14001", "bookstore/bookstore-v2|14001", "passthrough-outbound"}


# ---- admitted proxies


async def test_sotw_cds_for_a_real_pod() -> None:
    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as c:
        await c.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
        resp = await c.next()
        assert resp is not None, c.error
        assert resp.type_url == TYPE_CLUSTER
        assert cluster_names(resp) == BOOKBUYER_CLUSTERS
        assert resp.version_info != ""
        assert resp.nonce != ""
        await c.send(ack(resp))
        assert await c.quiet()  # an ACK is not answered
        [stream] = mesh.server.streams.values()
        assert (stream.proxy.pod_namespace, stream.proxy.pod_name, stream.protocol) == (
            "bookbuyer",
            "bookbuyer",
            "sotw",
        )
        assert mesh.server.stats.connects == 1
        assert mesh.server.stats.rejected == 0


async def test_a_plain_ack_is_recorded_without_the_streams_task_and_a_changed_request_is_not() -> None:
    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as c:
        await c.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
        cds = await c.next()
        assert cds is not None, c.error
        [stream] = mesh.server.streams.values()
        machine = stream.machine
        assert isinstance(machine, SotwStream)
        handled: list[str] = []
        on_request = machine.on_request

        def spy(req: Any, res: Any) -> Any:
            handled.append(req.type_url)
            return on_request(req, res)

        machine.on_request = spy  # type: ignore[method-assign]
        await c.send(ack(cds))
        await eventually(lambda: machine.counters.acks == 1)
        assert machine.types[TYPE_CLUSTER].acked_version == cds.version_info
        assert handled == []  # taken by the reader
        await c.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_ENDPOINT, resource_names=["x"]))
        eds = await c.next()
        assert eds is not None and eds.type_url == TYPE_ENDPOINT
        assert handled == [TYPE_ENDPOINT]  # a request to answer goes through the stream's task


async def test_delta_cds_and_eds_for_a_real_pod() -> None:
    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer"), delta=True) as c:
        await c.send(discovery_pb2.DeltaDiscoveryRequest(type_url=TYPE_CLUSTER))
        cds = await c.next()
        assert cds is not None, c.error
        assert cds.type_url == TYPE_CLUSTER
        assert {r.name for r in cds.resources} == BOOKBUYER_CLUSTERS
        for r in cds.resources:
            c_msg = cluster_pb2.Cluster()
            assert r.resource.Unpack(c_msg)
            assert c_msg.name == r.name
            assert r.version != ""
        assert list(cds.removed_resources) == []
        await c.send(discovery_pb2.DeltaDiscoveryRequest(type_url=TYPE_CLUSTER, response_nonce=cds.nonce))

        v1 = "bookstore/bookstore-v1|14001"
        await c.send(
            discovery_pb2.DeltaDiscoveryRequest(type_url=TYPE_ENDPOINT, resource_names_subscribe=[v1, "nope"])
        )
        eds = await c.next()
        assert eds is not None, c.error
        assert eds.type_url == TYPE_ENDPOINT
        [res] = eds.resources
        cla = endpoint_pb2.ClusterLoadAssignment()
        assert res.resource.Unpack(cla)
        assert cla.cluster_name == v1
        addrs = [
            (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
            for loc in cla.endpoints
            for e in loc.lb_endpoints
        ]
        assert addrs == [("10.244.1.21", 14001)]
        assert list(eds.removed_resources) == ["nope"]
        await c.send(discovery_pb2.DeltaDiscoveryRequest(type_url=TYPE_ENDPOINT, response_nonce=eds.nonce))
        assert await c.quiet()
        [stream] = mesh.server.streams.values()
        assert stream.protocol == "delta"


# ---- refused proxies


REFUSED = {
    "unknown uuid": "00000000-0000-4000-8000-000000000000.sidecar.bookbuyer.bookbuyer.cluster.local",
    "other service account": proxy_cn("bookbuyer", "bookbuyer", sa="bookthief"),
    "other namespace and sa": (
        f"{UUIDS.assign('bookbuyer', 'bookbuyer')}.sidecar.bookthief.bookthief.cluster.local"
    ),
    "malformed": "bookbuyer.cluster.local",
    "other trust domain": proxy_cn("bookbuyer", "bookbuyer", td="example.org"),
    "other proxy kind": proxy_cn("bookbuyer", "bookbuyer", kind="gateway"),
}


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_proxies_not_matching_a_pod_are_refused(delta: bool) -> None:
    async with running_mesh() as mesh:
        for why, cn in REFUSED.items():
            async with client(mesh, cn, delta=delta) as c:
                # Refused on admission, before any request: sending one could race the refusal and
                # fail on the client's side ("Internal error from Core") instead of reporting it.
                assert await c.code() == grpc.StatusCode.PERMISSION_DENIED, why
                assert await c.next() is None, why  # the stream ended ...
                assert c.received == [], why  # ... without any configuration
        assert mesh.server.stats.rejected == len(REFUSED)
        assert mesh.server.stats.connects == 0
        assert mesh.server.streams == {}


@pytest.mark.parametrize("cert", ["other-ca", "none"])
async def test_client_without_a_mesh_certificate_fails_the_handshake(cert: str) -> None:
    async with running_mesh() as mesh:
        rogue = TresorCA.create(now=now())
        cn = proxy_cn("bookbuyer", "bookbuyer") if cert == "other-ca" else None
        async with client(mesh, cn, issuer=rogue) as c:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await c.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
            assert await c.code() == grpc.StatusCode.UNAVAILABLE
            assert await c.next() is None
            assert c.received == []
        assert mesh.server.stats.connects == 0
        assert mesh.server.stats.rejected == 0  # never got as far as the handler


# ---- pushes


async def test_policy_change_pushes_new_cds_only_to_the_affected_proxy() -> None:
    async with (
        running_mesh() as mesh,
        client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer,
        client(mesh, proxy_cn("bookthief", "bookthief")) as thief,
    ):
        first = await subscribe(buyer, TYPE_CLUSTER)
        assert cluster_names(first) == BOOKBUYER_CLUSTERS
        await subscribe(thief, TYPE_CLUSTER)
        await subscribe(thief, TYPE_LISTENER)
        await eventually(lambda: total_acks(mesh) == 3)
        thief_stream = next(s for s in mesh.server.streams.values() if s.proxy.pod_name == "bookthief")
        thief_sent = thief_stream.machine.counters.responses

        # Revoke every TrafficTarget to bookstore for bookbuyer. (Deleting only the v2 target would keep
        # bookstore-v2's cluster: the bookstore apex TrafficSplit still references it.)
        assert mesh.store.delete(ObjectKey("TrafficTarget", "bookstore", "bookbuyer-access-bookstore-v1"))
        assert mesh.store.delete(ObjectKey("TrafficTarget", "bookstore", "bookbuyer-access-bookstore-v2"))
        assert await mesh.push() == 1  # only bookbuyer's resources changed

        pushed = await buyer.next()
        assert pushed is not None, buyer.error
        assert pushed.type_url == TYPE_CLUSTER
        assert cluster_names(pushed) == {"passthrough-outbound"}
        assert pushed.nonce != first.nonce
        assert pushed.version_info != first.version_info
        await buyer.send(ack(pushed))

        assert await thief.quiet()
        assert thief_stream.machine.counters.responses == thief_sent
        assert await buyer.quiet()  # one push, no repeats


async def test_split_weight_change_pushes_only_rds() -> None:
    rds = "rds-outbound.14001"
    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer:
        await subscribe(buyer, TYPE_CLUSTER)
        await subscribe(buyer, TYPE_LISTENER)
        before = await subscribe(buyer, TYPE_ROUTE, (rds,))
        await eventually(lambda: total_acks(mesh) == 3)

        split = decode(
            {
                "apiVersion": "split.smi-spec.io/v1alpha2",
                "kind": "TrafficSplit",
                "metadata": {"name": "bookstore-split", "namespace": "bookstore"},
                "spec": {
                    "service": "bookstore.bookstore",
                    "backends": [
                        {"service": "bookstore-v1", "weight": 10},
                        {"service": "bookstore-v2", "weight": 90},
                    ],
                },
            }
        )
        assert split is not None
        assert mesh.store.apply(split)
        assert await mesh.push() == 1

        pushed = await buyer.next()
        assert pushed is not None, buyer.error
        assert pushed.type_url == TYPE_ROUTE
        assert pushed.version_info != before.version_info
        [a] = pushed.resources
        rc = route_pb2.RouteConfiguration()
        assert a.Unpack(rc)
        assert rc.name == rds
        [apex] = [vh for vh in rc.virtual_hosts if "bookstore.bookstore" in vh.domains]
        weights = {w.name: w.weight.value for r in apex.routes for w in r.route.weighted_clusters.clusters}
        assert weights == {"bookstore/bookstore-v1|14001": 10, "bookstore/bookstore-v2|14001": 90}
        await buyer.send(ack(pushed, (rds,)))
        assert await buyer.quiet()  # no CDS or LDS push


async def test_snapshot_without_changes_wakes_nobody() -> None:
    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer:
        await subscribe(buyer, TYPE_CLUSTER)
        await eventually(lambda: total_acks(mesh) == 1)
        assert await mesh.push() == 0
        assert await buyer.quiet()


async def test_nack_over_the_wire_is_counted_and_not_answered() -> None:
    seen: list[tuple[str, str]] = []
    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer:
        mesh.server.on_nack = lambda s, type_url, msg: seen.append((type_url, msg))
        await buyer.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
        resp = await buyer.next()
        assert resp is not None, buyer.error
        await buyer.send(
            discovery_pb2.DiscoveryRequest(
                type_url=TYPE_CLUSTER,
                response_nonce=resp.nonce,
                error_detail=status_pb2.Status(code=3, message="cluster rejected"),
            )
        )
        await eventually(lambda: mesh.server.stats.nacks == 1)
        assert seen == [(TYPE_CLUSTER, "cluster rejected")]
        assert await mesh.push() == 0
        assert await buyer.quiet()


async def test_stop_ends_connected_streams() -> None:
    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer:
        await subscribe(buyer, TYPE_CLUSTER)
        await eventually(lambda: len(mesh.server.streams) == 1)
        await mesh.server.stop(0)
        assert await buyer.next() is None  # the stream ended
        await eventually(lambda: len(mesh.server.streams) == 0)


async def test_request_during_failed_generation_is_answered_once_config_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = True
    real_resources = XdsCache.resources
    parsed = asyncio.Event()
    real_parse = ads_server.parse_sotw

    def resources(self: XdsCache, group: Any, previous: Any = None) -> Any:
        if broken:
            raise RuntimeError("generator bug")
        return real_resources(self, group, previous)

    def parse(raw: bytes) -> Any:
        req = real_parse(raw)
        parsed.set()
        return req

    monkeypatch.setattr(XdsCache, "resources", resources)
    monkeypatch.setattr(ads_server, "parse_sotw", parse)
    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer:
        await buyer.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
        await asyncio.wait_for(parsed.wait(), TIMEOUT)
        [stream] = mesh.server.streams.values()
        await eventually(lambda: stream.queue.empty())  # the request was taken off the queue
        assert stream.resources is None
        broken = False
        assert await mesh.push() == 1
        resp = await buyer.next(2.0)
        assert resp is not None
        assert cluster_names(resp) == BOOKBUYER_CLUSTERS


async def test_pod_in_an_unmonitored_namespace_is_refused() -> None:
    async with running_mesh() as mesh:
        ns = decode({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bookthief"}})
        assert ns is not None
        assert mesh.store.apply(ns)  # drops the monitored-by label
        await mesh.push()
        async with client(mesh, proxy_cn("bookthief", "bookthief")) as c:
            assert await c.code() == grpc.StatusCode.PERMISSION_DENIED  # on admission (see above)
            assert c.received == []
        assert mesh.server.stats.rejected == 1


async def test_push_of_every_type_arrives_in_cds_eds_lds_rds_sds_order() -> None:
    v1, v2 = "bookstore/bookstore-v1|14001", "bookstore/bookstore-v2|14001"
    secrets = (
        "root-cert-for-mtls-inbound:bookbuyer/bookbuyer",
        "root-cert-for-mtls-outbound",
        "service-cert:bookbuyer/bookbuyer",
    )
    subscriptions = [
        (TYPE_CLUSTER, ()),
        (TYPE_ENDPOINT, (v1, v2)),
        (TYPE_LISTENER, ()),
        (TYPE_ROUTE, ("rds-outbound.14001",)),
        (TYPE_SECRET, secrets),
    ]
    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer:
        for type_url, names in subscriptions:
            resp = await subscribe(buyer, type_url, names)
            assert resp.resources
            assert len(resp.resources) == len(names) or not names  # every requested name exists
        await eventually(lambda: total_acks(mesh) == len(subscriptions))

        keys = [
            ObjectKey("TrafficTarget", "bookstore", "bookbuyer-access-bookstore-v1"),
            ObjectKey("TrafficTarget", "bookstore", "bookbuyer-access-bookstore-v2"),
        ]
        targets = [mesh.store.get(k) for k in keys]
        assert all(k is not None and mesh.store.delete(k) for k in keys)
        assert await mesh.push() == 1

        # Clusters and listeners go out whole. The bookstore endpoints, routes and outbound root are
        # gone, and a SotW response of those by-name types would only repeat what the proxy holds: a
        # name left out is not removed. Nothing is sent for them; the proxy stops asking.
        pushed = [await buyer.next() for _ in range(2)]
        assert None not in pushed, buyer.error
        assert [p.type_url for p in pushed] == [TYPE_CLUSTER, TYPE_LISTENER]
        assert cluster_names(pushed[0]) == {"passthrough-outbound"}
        assert await buyer.quiet()

        # Allowed again (the proxy still asks for the same names): everything that came back is sent,
        # in order, although the proxy held the very same endpoints, routes and secrets before.
        for t in targets:
            assert t is not None and mesh.store.apply(t)
        assert await mesh.push() == 1
        again = [await buyer.next() for _ in subscriptions]
        assert None not in again, buyer.error
        assert [p.type_url for p in again] == [t for t, _ in subscriptions]
        by_type = {p.type_url: p for p in again}
        assert len(by_type[TYPE_ENDPOINT].resources) == 2
        assert len(by_type[TYPE_ROUTE].resources) == 1
        assert len(by_type[TYPE_SECRET].resources) == 1  # the outbound root, back with the clusters
        assert await buyer.quiet()


async def test_disconnect_forgets_the_stream() -> None:
    async with running_mesh() as mesh:
        async with client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer:
            await subscribe(buyer, TYPE_CLUSTER)
            await eventually(lambda: mesh.server.stats.connected == 1)
        await eventually(lambda: mesh.server.streams == {})
        assert mesh.server.stats.connected == 0
        assert mesh.server.stats.connects == 1
        assert await mesh.push() == 0  # nobody left to wake


async def test_delta_reconnect_with_initial_versions_sends_only_what_is_missing() -> None:
    cn = proxy_cn("bookbuyer", "bookbuyer")
    async with running_mesh() as mesh:
        async with client(mesh, cn, delta=True) as first:
            await first.send(discovery_pb2.DeltaDiscoveryRequest(type_url=TYPE_CLUSTER))
            cds = await first.next()
            assert cds is not None, first.error
            have = {r.name: r.version for r in cds.resources}
        assert set(have) == BOOKBUYER_CLUSTERS
        del have["passthrough-outbound"]
        have["bookstore/retired|14001"] = "v-old"
        async with client(mesh, cn, delta=True) as again:
            await again.send(
                discovery_pb2.DeltaDiscoveryRequest(type_url=TYPE_CLUSTER, initial_resource_versions=have)
            )
            resp = await again.next()
            assert resp is not None, again.error
            assert [r.name for r in resp.resources] == ["passthrough-outbound"]
            assert list(resp.removed_resources) == ["bookstore/retired|14001"]


async def test_a_malformed_request_ends_the_stream_with_invalid_argument() -> None:
    async with running_mesh() as mesh:
        cert = mesh.ca.issue(proxy_cn("bookbuyer", "bookbuyer"), timedelta(hours=1), now=now())
        creds = grpc.ssl_channel_credentials(
            root_certificates=mesh.ca.root_cert_pem, private_key=cert.key_pem, certificate_chain=cert.cert_pem
        )
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{mesh.port}", creds, options=[("grpc.ssl_target_name_override", SERVER_CN)]
        )
        try:
            call = channel.stream_stream(SOTW, request_serializer=None, response_deserializer=None)()
            await asyncio.wait_for(call.write(b"\xff\xff\xff"), TIMEOUT)  # not a DiscoveryRequest
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(call.read(), TIMEOUT)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "malformed request" in (err.value.details() or "")
        finally:
            await channel.close()


async def test_a_disconnected_proxy_gets_unavailable_and_is_served_whole_when_it_comes_back() -> None:
    cn = proxy_cn("bookbuyer", "bookbuyer")
    async with running_mesh() as mesh:
        async with client(mesh, cn) as c:
            await subscribe(c, TYPE_CLUSTER)
            [stream] = mesh.server.streams.values()
            mesh.server.disconnect(stream, "resync")
            assert await c.code() == grpc.StatusCode.UNAVAILABLE
            await eventually(lambda: c.error is not None)
            assert c.error is not None and c.error.details() == "resync"
            await eventually(lambda: not mesh.server.streams)
        async with client(mesh, cn) as again:
            resp = await subscribe(again, TYPE_CLUSTER)
            assert cluster_names(resp) == BOOKBUYER_CLUSTERS


async def test_the_reader_keeps_no_request_while_the_stream_waits_for_the_next() -> None:
    # A permissive proxy's last request names a thousand resources; two thousand of them add up.
    import gc
    import weakref
    from types import SimpleNamespace

    class Parsed:  # a stand-in request that can be watched with a weak reference
        type_url = ""

    made: list[weakref.ref[Parsed]] = []

    def parse(raw: bytes) -> Parsed:
        r = Parsed()
        made.append(weakref.ref(r))
        return r

    more = asyncio.Event()

    async def requests() -> AsyncIterator[bytes]:
        yield b"first"
        await more.wait()

    s: Any = SimpleNamespace(
        machine=object(),
        queue=asyncio.Queue(),
        backlog=[],
        proxy=SimpleNamespace(cn=SimpleNamespace(uuid="u-1")),
        identity="proxy.ns",
        labels=("u-1", "proxy.ns"),
        requested={},
        slots=asyncio.Semaphore(4),
    )
    server = AdsServer(
        XdsCache(CertificateManager(TresorCA.create(now=now()), clock=now)), address="", credentials=None
    )
    reader = asyncio.create_task(server._read(requests(), s, parse))
    try:
        queued = await asyncio.wait_for(s.queue.get(), TIMEOUT)
        assert made[0]() is queued
        del queued
        await asyncio.sleep(0.01)  # the reader now waits for the next request
        gc.collect()
        assert made[0]() is None
    finally:
        more.set()
        await asyncio.wait_for(reader, TIMEOUT)


async def test_an_endpoint_change_recomputes_and_pushes_only_the_services_clients() -> None:
    from dataclasses import replace

    from osm.models.k8s import Pod

    async with (
        running_mesh() as mesh,
        client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer,
        client(mesh, proxy_cn("bookwarehouse", "bookwarehouse")) as warehouse,
    ):
        await subscribe(buyer, TYPE_CLUSTER)
        eds = ("bookstore/bookstore-v1|14001", "bookstore/bookstore-v2|14001")
        await subscribe(buyer, TYPE_ENDPOINT, eds)
        await subscribe(warehouse, TYPE_CLUSTER)
        await eventually(lambda: total_acks(mesh) == 3)
        builds = mesh.server.cache.generator.builds
        key = ObjectKey("Pod", "bookstore", "bookstore-v1")
        pod = mesh.store.get(key)
        assert isinstance(pod, Pod)
        mesh.store.apply(replace(pod, pod_ip="10.244.9.9"))
        assert mesh.server.update(mesh.store.snapshot(), {key}) == 1  # bookstore-v1's clients: bookbuyer
        pushed = await buyer.next()
        assert pushed is not None and pushed.type_url == TYPE_ENDPOINT
        assert b"10.244.9.9" in pushed.SerializeToString()
        assert await warehouse.quiet()
        # Only bookbuyer's group was recomputed: its changed CLA, nothing for bookwarehouse's group.
        assert mesh.server.cache.generator.builds - builds <= 2


async def test_a_proxy_woken_by_one_change_computes_after_a_second_change_it_is_not_in() -> None:
    """Streams recompute lazily; a later scoped update must not freeze a pending one's stale config."""
    from dataclasses import replace

    from osm.models.k8s import Pod

    async with running_mesh() as mesh, client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer:
        first = await subscribe(buyer, TYPE_CLUSTER)
        assert cluster_names(first) == BOOKBUYER_CLUSTERS
        await eventually(lambda: total_acks(mesh) == 1)
        policy = [
            ObjectKey("TrafficTarget", "bookstore", "bookbuyer-access-bookstore-v1"),
            ObjectKey("TrafficTarget", "bookstore", "bookbuyer-access-bookstore-v2"),
        ]
        for key in policy:
            assert mesh.store.delete(key)
        assert mesh.server.update(mesh.store.snapshot(), set(policy)) == 1
        # Before bookbuyer's stream ran: a change that does not concern bookbuyer.
        other = ObjectKey("Pod", "bookwarehouse", "bookwarehouse")
        pod = mesh.store.get(other)
        assert isinstance(pod, Pod)
        mesh.store.apply(replace(pod, pod_ip="10.244.9.8"))
        assert mesh.server.update(mesh.store.snapshot(), {other}) == 0  # bookbuyer is not selected
        pushed = await buyer.next()
        assert pushed is not None and pushed.type_url == TYPE_CLUSTER
        assert cluster_names(pushed) == {"passthrough-outbound"}
        assert await buyer.quiet()


async def test_a_proxy_left_alone_through_memo_sweeps_keeps_its_parts() -> None:
    """Groups adopted snapshot after snapshot keep their generator parts across memo sweeps, so
    recomputing them later builds nothing."""
    from dataclasses import replace

    from osm.envoy.ads.cache import SWEEP_EVERY
    from osm.models.k8s import Pod

    async with (
        running_mesh() as mesh,
        client(mesh, proxy_cn("bookbuyer", "bookbuyer")) as buyer,
        client(mesh, proxy_cn("bookwarehouse", "bookwarehouse")) as warehouse,
    ):
        await subscribe(buyer, TYPE_CLUSTER)
        await subscribe(warehouse, TYPE_CLUSTER)
        await eventually(lambda: total_acks(mesh) == 2)
        key = ObjectKey("Pod", "bookstore", "bookstore-v1")
        for i in range(SWEEP_EVERY + 1):  # bookbuyer recomputed each time, bookwarehouse adopted
            pod = mesh.store.get(key)
            assert isinstance(pod, Pod)
            mesh.store.apply(replace(pod, pod_ip=f"10.244.9.{i + 1}"))
            assert mesh.server.update(mesh.store.snapshot(), {key}) == 1
            await eventually(lambda: not any(s.dirty for s in mesh.server.streams.values()))
        builds = mesh.server.cache.generator.builds
        assert await mesh.push() == 0  # everything recomputed, nothing changed
        assert mesh.server.cache.generator.builds == builds
        assert await warehouse.quiet()
