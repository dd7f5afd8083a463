"""An ADS server on 127.0.0.1 over mTLS with the example mesh, and Python gRPC clients acting as proxies.

A client certificate's CN names a pod by the proxy UUID the mesh's source assigned it (`proxy_cn`).
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2

from osm.certificate.manager import CertificateManager
from osm.certificate.tresor import TresorCA
from osm.envoy.ads.cache import XdsCache
from osm.envoy.ads.server import DEFAULT_LIMITS, AdsLimits, AdsServer, server_credentials
from osm.local.source import ManifestSource
from osm.local.uuids import ProxyUuids
from osm.paths import DATA
from osm.state.store import Store
from osm.testing.wait import wait_for

EXAMPLE = DATA / "examples" / "bookstore"
SERVER_CN = "ads.cluster.local"
SOTW = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
TIMEOUT = 5.0
QUIET = 0.5  # how long "nothing arrives" is watched

# The example's pods get their proxy UUIDs from this registry (as the controller's source assigns them).
UUIDS = ProxyUuids()


def now() -> datetime:
    return datetime.now(UTC)


def proxy_cn(
    ns: str, pod: str, sa: str | None = None, *, kind: str = "sidecar", td: str = "cluster.local"
) -> str:
    return f"{UUIDS.assign(ns, pod)}.{kind}.{sa or pod}.{ns}.{td}"


@dataclass
class Mesh:
    ca: TresorCA
    store: Store
    server: AdsServer
    port: int
    source: ManifestSource

    async def push(self) -> int:
        """Adopt the store's snapshot; returns how many proxies were then sent something."""
        before = self.server.stats.pushes
        self.server.update(self.store.snapshot())
        await wait_for(
            lambda: not any(s.dirty or s.update_pending for s in self.server.streams.values()),
            TIMEOUT,
            "every woken stream served",
        )
        return self.server.stats.pushes - before


@contextlib.asynccontextmanager
async def running_mesh(
    manifests: Path = EXAMPLE, *, limits: AdsLimits = DEFAULT_LIMITS
) -> AsyncIterator[Mesh]:
    ca = TresorCA.create(now=now())
    certs = CertificateManager(ca, clock=now)
    store = Store()
    source = ManifestSource(manifests, store, uuids=UUIDS)
    source.load()
    assert not any(source.errors.values()), source.errors
    server_cert = ca.issue(SERVER_CN, timedelta(hours=1), now=now())
    creds = server_credentials(server_cert.cert_pem, server_cert.key_pem, ca.trust_bundle_pem)
    server = AdsServer(XdsCache(certs), address="127.0.0.1:0", credentials=creds, limits=limits)
    server.update(store.snapshot())
    port = await server.start()
    try:
        assert port > 0
        yield Mesh(ca, store, server, port, source)
    finally:
        await server.stop(0)


class Client:
    """One xDS client stream; responses are pumped into a queue so every wait can be bounded."""

    def __init__(
        self,
        mesh: Mesh,
        cn: str | None,
        *,
        delta: bool = False,
        issuer: TresorCA | None = None,
        validity: timedelta = timedelta(hours=1),
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        if channel is None:
            channel = grpc.aio.secure_channel(
                f"127.0.0.1:{mesh.port}",
                client_credentials(mesh, cn, issuer=issuer, validity=validity),
                options=[("grpc.ssl_target_name_override", SERVER_CN)],
            )
        self.channel = channel
        req: Any = discovery_pb2.DeltaDiscoveryRequest if delta else discovery_pb2.DiscoveryRequest
        resp: Any = discovery_pb2.DeltaDiscoveryResponse if delta else discovery_pb2.DiscoveryResponse
        self.call = self.channel.stream_stream(
            DELTA if delta else SOTW,
            request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString,
        )()
        self.responses: asyncio.Queue[Any] = asyncio.Queue()
        self.received: list[Any] = []
        self.error: grpc.aio.AioRpcError | None = None
        self._pump = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for r in self.call:
                self.received.append(r)
                self.responses.put_nowait(r)
        except grpc.aio.AioRpcError as e:
            self.error = e
        finally:
            self.responses.put_nowait(None)  # end of stream

    async def send(self, msg: Any) -> None:
        await asyncio.wait_for(self.call.write(msg), TIMEOUT)

    async def next(self, within: float = TIMEOUT) -> Any:
        """The next response; None if the stream ended."""
        return await asyncio.wait_for(self.responses.get(), within)

    async def quiet(self, seconds: float = QUIET) -> bool:
        """True when nothing arrives for `seconds`."""
        try:
            await asyncio.wait_for(self.responses.get(), seconds)
        except TimeoutError:
            return True
        return False

    async def code(self, within: float = TIMEOUT) -> grpc.StatusCode:
        return await asyncio.wait_for(self.call.code(), within)

    async def details(self, within: float = TIMEOUT) -> str:
        """The status message the stream ended with (waits for its end)."""
        return await asyncio.wait_for(self.call.details(), within) or ""

    async def close(self, *, channel: bool = True) -> None:
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError, TimeoutError):
            await asyncio.wait_for(self._pump, TIMEOUT)
        self._pump.cancel()
        if channel:
            await self.channel.close()


def client_credentials(
    mesh: Mesh, cn: str | None, *, issuer: TresorCA | None = None, validity: timedelta = timedelta(hours=1)
) -> grpc.ChannelCredentials:
    if cn is None:  # no client certificate at all
        return grpc.ssl_channel_credentials(root_certificates=mesh.ca.root_cert_pem)
    cert = (issuer or mesh.ca).issue(cn, validity, now=now())
    return grpc.ssl_channel_credentials(
        root_certificates=mesh.ca.root_cert_pem, private_key=cert.key_pem, certificate_chain=cert.cert_pem
    )


@contextlib.asynccontextmanager
async def client(mesh: Mesh, cn: str | None, **kw: Any) -> AsyncIterator[Client]:
    c = Client(mesh, cn, **kw)
    try:
        yield c
    finally:
        await c.close()


async def eventually(cond: Any, within: float = TIMEOUT) -> None:
    await wait_for(cond, within, "condition")


def cluster_names(resp: discovery_pb2.DiscoveryResponse) -> set[str]:
    out = set()
    for a in resp.resources:
        c = cluster_pb2.Cluster()
        assert a.Unpack(c)
        out.add(c.name)
    return out


def ack(resp: discovery_pb2.DiscoveryResponse, names: tuple[str, ...] = ()) -> discovery_pb2.DiscoveryRequest:
    return discovery_pb2.DiscoveryRequest(
        type_url=resp.type_url,
        version_info=resp.version_info,
        response_nonce=resp.nonce,
        resource_names=names,
    )


async def subscribe(c: Client, type_url: str, names: tuple[str, ...] = ()) -> discovery_pb2.DiscoveryResponse:
    """SotW request + ACK of its answer."""
    await c.send(discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=names))
    resp = await c.next()
    assert resp is not None, c.error
    assert resp.type_url == type_url
    await c.send(ack(resp, names))
    return resp


def total_acks(mesh: Mesh) -> int:
    return sum(s.machine.counters.acks for s in mesh.server.streams.values())
