"""The ADS server against hostile and broken clients: each limit holds, is logged once and counted.

The real grpc.aio server on 127.0.0.1 over mTLS (osm.testing.xds), with small limits so each is
reached quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from osm import errcode
from osm.envoy.ads.server import AdsLimits
from osm.envoy.types import TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER
from osm.models.k8s import Pod
from osm.state.decode import ObjectKey
from osm.testing import wait
from osm.testing.xds import (
    EXAMPLE,
    SERVER_CN,
    TIMEOUT,
    Client,
    client,
    client_credentials,
    eventually,
    proxy_cn,
    running_mesh,
    subscribe,
)

pytestmark = pytest.mark.asyncio

BUYER = ("bookbuyer", "bookbuyer")


async def test_a_request_larger_than_the_limit_ends_the_stream_and_nothing_of_it_is_kept() -> None:
    # The probe: one 15 MB request of 1.5 M names held ~200 MB per stream.
    limits = AdsLimits(max_request_bytes=64 * 1024)
    async with running_mesh(limits=limits) as mesh, client(mesh, proxy_cn(*BUYER)) as c:
        names = [f"cluster-{i:07d}" for i in range(10_000)]  # ~150 KB
        await c.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_ENDPOINT, resource_names=names))
        assert await c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await eventually(lambda: not mesh.server.streams)


async def test_a_request_naming_more_resources_than_the_limit_ends_the_stream() -> None:
    async with running_mesh(limits=AdsLimits(max_names=100)) as mesh, client(mesh, proxy_cn(*BUYER)) as c:
        names = [f"n{i}" for i in range(101)]
        await c.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_ENDPOINT, resource_names=names))
        assert await c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "names 101 resources; the limit is 100" in await c.details()
        assert mesh.server.limit_log.hits["names"] == 1


async def test_a_delta_subscription_grown_request_by_request_is_bounded() -> None:
    async with (
        running_mesh(limits=AdsLimits(max_names=100)) as mesh,
        client(mesh, proxy_cn(*BUYER), delta=True) as c,
    ):
        for batch in range(3):
            names = [f"n{batch}-{i}" for i in range(40)]
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await c.send(
                    discovery_pb2.DeltaDiscoveryRequest(
                        type_url=TYPE_ENDPOINT, resource_names_subscribe=names
                    )
                )
        assert await c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "would hold 120 names; the limit is 100" in await c.details()


async def test_streams_per_connection_are_capped() -> None:
    # The probe: 100,000 streams per connection were allowed.
    async with running_mesh(limits=AdsLimits(max_streams_per_connection=3, max_streams_per_proxy=10)) as mesh:
        first = Client(mesh, proxy_cn(*BUYER))
        others: list[Client] = []
        try:
            await first.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
            assert await first.next() is not None
            others += [Client(mesh, None, channel=first.channel) for _ in range(5)]
            for c in others:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        c.call.write(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER)), 0.2
                    )
            await eventually(lambda: len(mesh.server.streams) == 3)
            # the other streams wait for a free slot (HTTP/2): no fourth comes within half a second
            assert not await wait.eventually(lambda: len(mesh.server.streams) > 3, within=0.5)
        finally:
            for c in others:
                await c.close(channel=False)
            await first.close()


async def test_a_proxy_opening_more_streams_than_allowed_loses_its_oldest() -> None:
    async with running_mesh(limits=AdsLimits(max_streams_per_proxy=2)) as mesh:
        cn = proxy_cn(*BUYER)
        async with client(mesh, cn) as a:
            await subscribe(a, TYPE_CLUSTER)  # a stream starts when its client first sends or reads
            async with client(mesh, cn) as b:
                await subscribe(b, TYPE_CLUSTER)
                async with client(mesh, cn) as c:
                    await subscribe(c, TYPE_CLUSTER)
                    assert await a.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert "replaced by a newer stream" in await a.details()
                    await eventually(lambda: len(mesh.server.streams) == 2)
                    assert mesh.server.limit_log.hits["streams-per-proxy"] == 1


async def test_max_data_plane_connections_from_the_mesh_config_refuses_further_streams_counted() -> None:
    async with running_mesh() as mesh:
        mc = mesh.store.get(ObjectKey("MeshConfig", "osm-system", "osm-mesh-config"))
        assert mc is not None
        mesh.store.apply(replace(mc, sidecar=replace(mc.sidecar, max_data_plane_connections=1)))  # type: ignore[arg-type]
        await mesh.push()
        async with client(mesh, proxy_cn(*BUYER)) as a:
            await subscribe(a, TYPE_CLUSTER)
            async with client(mesh, proxy_cn("bookthief", "bookthief")) as b:
                await b.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
                assert await b.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "at most 1 proxies" in await b.details()
        assert (
            mesh.server.metrics.proxy_max_connections_rejected.value() == 1
        )  # osm_proxy_max_connections_rejected


async def test_queued_requests_are_bounded_while_a_stream_cannot_be_served() -> None:
    # The probe: requests of a proxy whose config cannot be built piled up (67 -> 657 MB).
    async with running_mesh(limits=AdsLimits(max_queued_requests=4)) as mesh:
        real = mesh.server.cache.resources

        def broken(group, previous=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("generation is broken")

        mesh.server.cache.resources = broken  # type: ignore[method-assign]
        async with client(mesh, proxy_cn(*BUYER)) as c:
            for i in range(50):
                try:
                    await asyncio.wait_for(
                        c.call.write(
                            discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER, version_info=str(i))
                        ),
                        0.2,
                    )
                except TimeoutError:
                    break  # the server stopped reading: HTTP/2 flow control holds the client back
            await eventually(lambda: mesh.server.limit_log.hits["queued-requests"] >= 1)
            [s] = mesh.server.streams.values()
            assert len(s.backlog) <= 4 and s.queue.qsize() <= 4
            assert s.failed == "generation is broken"
            # Generation works again: the next snapshot retries the stream although nothing of it changed.
            mesh.server.cache.resources = real  # type: ignore[method-assign]
            mesh.server.update(mesh.store.snapshot(), set())
            resp = await c.next()
            assert resp is not None and resp.type_url == TYPE_CLUSTER
            assert not s.failed


async def test_nack_text_floods_are_logged_once_per_version_and_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The probe: 19 MB of log in 2 s from NACK text.
    async with running_mesh() as mesh, client(mesh, proxy_cn(*BUYER)) as c:
        resp = await subscribe(c, TYPE_CLUSTER)
        caplog.set_level(logging.WARNING, logger="osm.envoy.ads.server")
        text = "x" * 100_000
        for _ in range(200):
            await c.send(
                discovery_pb2.DiscoveryRequest(
                    type_url=TYPE_CLUSTER,
                    version_info="old",
                    response_nonce=resp.nonce,
                    error_detail=status_pb2.Status(code=3, message=text),
                )
            )
        await eventually(lambda: mesh.server.stats.nacks == 200)
        nack_lines = [r for r in caplog.records if "NACK" in r.getMessage()]
        assert len(nack_lines) == 1
        assert len(nack_lines[0].getMessage()) < 1000
        assert getattr(nack_lines[0], "err_code", "") == errcode.ADS_NACK == "E9101"


async def test_unknown_type_urls_are_logged_once_per_stream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="osm.envoy.ads.server")
    async with running_mesh() as mesh, client(mesh, proxy_cn(*BUYER)) as c:
        for _ in range(20):
            await c.send(discovery_pb2.DiscoveryRequest(type_url="type.googleapis.com/not.a.Type"))
        await c.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_LISTENER))
        assert (await c.next()).type_url == TYPE_LISTENER
        [stream] = mesh.server.streams.values()
        assert stream.machine.counters.unknown == 20
        assert sum("does not serve" in r.getMessage() for r in caplog.records) == 1


def _raw_connections(port: int, n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        out.append(s)
    return out


def _closed_by_peer(s: socket.socket) -> bool:
    s.settimeout(0.01)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


async def test_idle_connections_without_a_handshake_are_dropped_and_a_proxy_gets_in() -> None:
    # The probe: 20,000 idle TCP connections without a certificate kept new proxies out for ~120 s.
    limits = AdsLimits(max_connections=40, handshake_timeout=1.0)
    async with running_mesh(limits=limits) as mesh:
        idle = await asyncio.to_thread(_raw_connections, mesh.port, 60)
        try:
            # Beyond the connection limit, connections are closed at once.
            await eventually(lambda: sum(_closed_by_peer(s) for s in idle) >= 20, within=TIMEOUT)
            # The others are dropped when the handshake timeout passes ...
            await eventually(lambda: all(_closed_by_peer(s) for s in idle), within=TIMEOUT)
            # ... and a real proxy connects.
            async with client(mesh, proxy_cn(*BUYER)) as c:
                resp = await subscribe(c, TYPE_CLUSTER)
                assert resp.resources
        finally:
            for s in idle:
                s.close()


async def test_the_stream_of_a_deleted_pod_ends_with_permission_denied() -> None:
    async with running_mesh() as mesh, client(mesh, proxy_cn(*BUYER)) as c:
        await subscribe(c, TYPE_CLUSTER)
        key = ObjectKey("Pod", *BUYER)
        assert mesh.store.delete(key)
        mesh.server.update(mesh.store.snapshot(), {key})
        assert await c.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "no pod with label osm-proxy-uuid" in await c.details()
        assert mesh.server.stats.evicted == 1


async def test_the_stream_of_a_pod_whose_service_account_changed_ends() -> None:
    async with running_mesh() as mesh, client(mesh, proxy_cn(*BUYER)) as c:
        await subscribe(c, TYPE_CLUSTER)
        key = ObjectKey("Pod", *BUYER)
        pod = mesh.store.get(key)
        assert isinstance(pod, Pod)
        mesh.store.apply(replace(pod, spec=replace(pod.spec, service_account="bookthief")))
        mesh.server.update(mesh.store.snapshot(), {key})
        assert await c.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_stream_ends_when_its_client_certificate_expires() -> None:
    async with running_mesh() as mesh:
        c = Client(mesh, proxy_cn(*BUYER), validity=timedelta(seconds=2))
        try:
            await subscribe(c, TYPE_CLUSTER)
            assert await c.code(within=10) == grpc.StatusCode.UNAUTHENTICATED
            assert "certificate expired" in await c.details()
        finally:
            await c.close()


async def test_a_certificate_of_another_mesh_ca_gets_no_stream() -> None:
    from osm.certificate.tresor import TresorCA
    from osm.testing.xds import now

    async with running_mesh() as mesh:
        other = TresorCA.create(now=now())
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{mesh.port}",
            client_credentials(mesh, proxy_cn(*BUYER), issuer=other),
            options=[("grpc.ssl_target_name_override", SERVER_CN)],
        )
        c = Client(mesh, None, channel=channel)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await c.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
        try:
            assert await c.code() == grpc.StatusCode.UNAVAILABLE
            assert not mesh.server.streams
        finally:
            await c.close()


async def test_a_pod_created_again_under_the_same_name_does_not_take_the_old_certificate(
    tmp_path: Path,
) -> None:
    # Proxy UUIDs used to derive from namespace/name: an old certificate worked again for the new pod.
    manifests = tmp_path / "m"
    shutil.copytree(EXAMPLE, manifests)
    apps = manifests / "10-apps.yaml"
    original = apps.read_text()
    async with running_mesh(manifests) as mesh:
        old_cn = proxy_cn(*BUYER)
        async with client(mesh, old_cn) as c:
            await subscribe(c, TYPE_CLUSTER)
            # bookbuyer's pod goes away (its document removed), then a pod of that name is created again
            docs = original.split("\n---\n")
            apps.write_text(
                "\n---\n".join(d for d in docs if "name: bookbuyer\n  namespace: bookbuyer" not in d)
            )
            mesh.source.load()
            await mesh.push()
            assert await c.code() == grpc.StatusCode.PERMISSION_DENIED
        apps.write_text(original)
        mesh.source.load()
        await mesh.push()
        async with client(mesh, old_cn) as again:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await again.send(discovery_pb2.DiscoveryRequest(type_url=TYPE_CLUSTER))
            assert await again.code() == grpc.StatusCode.PERMISSION_DENIED
        async with client(mesh, proxy_cn(*BUYER)) as new:  # the new pod's proxy UUID
            assert proxy_cn(*BUYER) != old_cn
            assert (await subscribe(new, TYPE_CLUSTER)).resources
