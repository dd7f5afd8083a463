"""The ADS gRPC server (grpc.aio): mTLS, proxy admission by certificate, SotW and delta streams.

The only module that imports grpc. Requests are parsed with protobuf; responses are assembled from
pre-serialized resources (see envoy/wire.py) and written as raw bytes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import DecodeError

from osm.catalog import ProxyGroup
from osm.envoy.ads.cache import ProxyIdentity, ProxyRejected, XdsCache
from osm.envoy.ads.delta import DeltaRequest, DeltaResponse, DeltaStream
from osm.envoy.ads.sotw import Request, Response, SotwStream
from osm.envoy.types import SHORT, ProxyResources
from osm.models.identity import ServiceIdentity
from osm.state.decode import ObjectKey
from osm.state.snapshot import MeshState, NsName

log = logging.getLogger(__name__)

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
SERVER_OPTIONS = [
    ("grpc.max_concurrent_streams", 100_000),
    # The default (1000) drops streams in a reconnect storm of a few thousand proxies.
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]

_UPDATE = object()
_CLOSED = object()


@dataclass(frozen=True)
class _Abort:
    """Ends the stream with this status (a malformed request, or a disconnect)."""

    reason: str
    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT


@dataclass
class AdsStats:
    connected: int = 0
    connects: int = 0
    rejected: int = 0
    nacks: int = 0
    responses: int = 0
    pushes: int = 0  # config changes that sent a proxy at least one response


@dataclass(eq=False)
class ProxyStream:
    """One connected proxy."""

    id: int
    proxy: ProxyIdentity
    protocol: str  # "sotw" | "delta"
    machine: SotwStream | DeltaStream
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    resources: ProxyResources | None = None
    update_pending: bool = False
    dirty: bool = False  # a change may affect its config: recompute before serving
    # Items taken from the queue that the stream's task has yet to process (requests held while no
    # config could be built, and those after the one being served).
    backlog: list[Any] = field(default_factory=list)
    group: ProxyGroup | None = None
    deps: frozenset[NsName] = frozenset()  # the services whose clusters its config holds
    connected_at: float = field(default_factory=time.time)

    @property
    def identity(self) -> ServiceIdentity:
        return self.proxy.cn.identity


def _peer_cn(context: grpc.aio.ServicerContext) -> str:
    auth = context.auth_context() or {}
    values = auth.get("x509_common_name") or []
    return values[0].decode() if values else ""


class AdsServer:
    def __init__(self, cache: XdsCache, *, address: str, credentials: grpc.ServerCredentials | None) -> None:
        self.cache = cache
        self.address = address
        self.credentials = credentials
        self.stats = AdsStats()
        self.streams: dict[int, ProxyStream] = {}
        self._ids = itertools.count(1)
        self._server: grpc.aio.Server | None = None
        self.port = 0
        self.on_nack: Callable[[ProxyStream, str, str], None] | None = None

    # ---- lifecycle

    async def start(self) -> int:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        handlers = {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(self._sotw),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(self._delta),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        if self.credentials is None:
            self.port = server.add_insecure_port(self.address)
        else:
            self.port = server.add_secure_port(self.address, self.credentials)
        if self.port == 0:
            raise OSError(f"ADS server cannot listen on {self.address}")
        await server.start()
        self._server = server
        log.info("ADS server listening on %s (port %d)", self.address, self.port)
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        for s in list(self.streams.values()):
            s.queue.put_nowait(_CLOSED)
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    def disconnect(self, s: ProxyStream, reason: str) -> None:
        """End one proxy's stream with UNAVAILABLE: it reconnects, as Envoy does, and is sent its config
        anew (nonces do not survive a reconnect)."""
        s.queue.put_nowait(_Abort(reason, grpc.StatusCode.UNAVAILABLE))

    # ---- config changes

    def update(self, state: MeshState, changed: Collection[ObjectKey] | None = None) -> int:
        """Adopt a new snapshot and wake the proxies it may affect. Returns how many.

        With `changed` (the keys that changed since the last snapshot), only the proxies the change can
        affect are recomputed (see XdsCache.scope); the others keep their resources.
        """
        self.cache.update(state, changed)
        scope = None if changed is None else self.cache.scope(changed)
        if scope is None:
            return self._refresh(lambda s: True)
        return self._refresh(
            lambda s: (
                bool(s.deps & scope.services)
                or (s.proxy.pod_namespace, s.proxy.pod_name) in scope.pods
                or s.identity in scope.identities
            ),
            keep_others=True,
        )

    def identity_changed(self, identity: ServiceIdentity) -> int:
        """A certificate of `identity` was rotated: recompute and push to that identity's proxies only."""
        self.cache.invalidate_identity(identity)
        return self._refresh(lambda s: s.identity == identity)

    def _refresh(self, selected: Callable[[ProxyStream], bool], keep_others: bool = False) -> int:
        """Mark the selected streams dirty and wake them; each recomputes its config when it runs.

        Computing in the stream's own task, not here, pipelines a large push: the first proxies are
        being written to while the later ones are still being computed. Unchanged configs send nothing.
        """
        woken = 0
        for s in list(self.streams.values()):
            if not selected(s):
                if keep_others and not s.dirty and s.resources is not None and s.group is not None:
                    self.cache.adopt(s.group, s.resources, s.deps)  # still valid: nothing it uses changed
                continue
            s.dirty = True
            woken += 1
            if not s.update_pending:
                s.update_pending = True
                s.queue.put_nowait(_UPDATE)
        return woken

    def _compute(self, s: ProxyStream) -> ProxyResources | None:
        try:
            pod = self.cache.pod_for(s.proxy.cn)
        except ProxyRejected as e:
            log.warning("proxy %s: keeping its last config: %s", s.proxy.cn, e)
            return None
        try:
            group = self.cache.group_for(pod)
            res = self.cache.resources(group, s.resources if s.group == group else None)
            s.group, s.deps = group, self.cache.deps(group)
            return res
        except Exception:
            log.exception("proxy %s: config generation failed; keeping its last config", s.proxy.cn)
            return None

    # ---- streams

    async def _admit(self, context: grpc.aio.ServicerContext, protocol: str) -> ProxyStream:
        cn = _peer_cn(context)
        try:
            if not cn:
                raise ProxyRejected("no client certificate CN")
            proxy, _ = self.cache.authenticate(cn)
        except ProxyRejected as e:
            self.stats.rejected += 1
            log.warning("refused xDS stream from %s (CN %r): %s", context.peer(), cn, e)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
            raise  # not reached: abort raises
        s = ProxyStream(
            next(self._ids), proxy, protocol, SotwStream() if protocol == "sotw" else DeltaStream()
        )
        s.resources = self._compute(s)
        self.streams[s.id] = s
        self.stats.connects += 1
        self.stats.connected = len(self.streams)
        log.info("proxy connected: %s pod %s/%s (%s)", cn, proxy.pod_namespace, proxy.pod_name, protocol)
        return s

    def _close(self, s: ProxyStream) -> None:
        self.streams.pop(s.id, None)
        self.stats.connected = len(self.streams)
        log.info("proxy disconnected: %s", s.proxy.cn)

    @staticmethod
    async def _read(requests: AsyncIterator[bytes], s: ProxyStream, parse: Callable[[bytes], Any]) -> None:
        try:
            async for raw in requests:
                accepted = AdsServer._accept(s, raw, parse)
                # Nothing of a request stays referenced here while the stream waits for the next: a
                # proxy's last request may name a thousand resources.
                del raw
                if not accepted:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the stream broke (the client went away)
            log.debug("proxy %s: stream read ended: %s", s.proxy.cn, e)
        finally:
            s.queue.put_nowait(_CLOSED)

    @staticmethod
    def _accept(s: ProxyStream, raw: bytes, parse: Callable[[bytes], Any]) -> bool:
        """Queue a request for the stream's task, or record it here if it is a plain ACK with nothing
        before it still to process (an item stays in the queue until the task takes it): waking the
        task for it would cost a task switch per ACK (two per proxy in a full push). False when the
        request is malformed and the stream ends. Envoy's ACK of a wildcard type is recognised by its
        bytes, before any parsing."""
        machine = (
            s.machine if isinstance(s.machine, SotwStream) and s.queue.empty() and not s.backlog else None
        )
        if machine is not None and machine.try_ack_raw(raw):
            return True
        try:
            req = parse(raw)
        except DecodeError as e:
            log.warning("proxy %s: malformed request: %s", s.proxy.cn, e)
            s.queue.put_nowait(_Abort(f"malformed request: {e}"))
            return False
        if machine is not None and machine.try_ack(req):
            return True
        s.queue.put_nowait(req)
        return True

    def _log_nack(self, s: ProxyStream, type_url: str, version: str, message: str) -> None:
        self.stats.nacks += 1
        log.warning(
            "NACK from %s for %s version %s: %s", s.proxy.cn, SHORT.get(type_url, type_url), version, message
        )
        if self.on_nack is not None:
            self.on_nack(s, type_url, message)

    def _next_items(self, s: ProxyStream, item: Any) -> ProxyResources | None:
        """The resources to serve now; `item` joins the backlog, to be processed in order once there are
        resources (an update needs none while there are none)."""
        if item is _UPDATE:
            s.update_pending = False
        if s.dirty:
            s.dirty = False
            s.resources = self._compute(s) or s.resources  # a failed computation keeps the last config
        elif s.resources is None:
            s.resources = self._compute(s)
        if s.resources is not None or item is not _UPDATE:
            s.backlog.append(item)
        return s.resources

    async def _serve(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext, protocol: str
    ) -> None:
        s = await self._admit(context, protocol)
        reader = asyncio.create_task(
            self._read(requests, s, parse_sotw if protocol == "sotw" else parse_delta)
        )
        try:
            while (item := await s.queue.get()) is not _CLOSED:
                if isinstance(item, _Abort):
                    await context.abort(item.code, item.reason)
                res = self._next_items(s, item)
                pushed = item is _UPDATE
                del item  # not kept while the stream waits (see _read); the backlog holds it if needed
                out = self._drain(s, res, pushed) if res is not None else []
                out.reverse()
                while out:  # nothing sent stays referenced while the stream waits
                    await context.write(out.pop().encode())
        finally:
            reader.cancel()
            self._close(s)

    def _drain(self, s: ProxyStream, res: ProxyResources, pushed: bool) -> list[Response | DeltaResponse]:
        """Process the stream's backlog in order; the responses to send."""
        machine = s.machine
        out: list[Response | DeltaResponse] = []
        while s.backlog:
            it = s.backlog.pop(0)  # left in the backlog until processed (see _read)
            if it is _UPDATE:
                out += machine.on_update(res)
            else:
                nacks = machine.counters.nacks
                out += machine.on_request(it, res)
                if machine.counters.nacks != nacks and machine.last_nack is not None:
                    self._log_nack(s, *machine.last_nack)
        if pushed and out:
            self.stats.pushes += 1
        self.stats.responses += len(out)
        return out

    # Coroutine handlers writing with context.write (in _serve, with no generator between): a handler
    # that yields its responses leaves grpc holding each stream's last response until the next one (up
    # to megabytes per proxy).
    async def _sotw(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        await self._serve(requests, context, "sotw")

    async def _delta(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        await self._serve(requests, context, "delta")


def parse_sotw(raw: bytes) -> Request:
    m = discovery_pb2.DiscoveryRequest.FromString(raw)
    return Request(
        type_url=m.type_url,
        version_info=m.version_info,
        nonce=m.response_nonce,
        names=tuple(m.resource_names),
        error=m.error_detail.message or f"code {m.error_detail.code}" if m.HasField("error_detail") else None,
    )


def parse_delta(raw: bytes) -> DeltaRequest:
    m = discovery_pb2.DeltaDiscoveryRequest.FromString(raw)
    return DeltaRequest(
        type_url=m.type_url,
        subscribe=tuple(m.resource_names_subscribe),
        unsubscribe=tuple(m.resource_names_unsubscribe),
        initial_versions=dict(m.initial_resource_versions),
        nonce=m.response_nonce,
        error=m.error_detail.message or f"code {m.error_detail.code}" if m.HasField("error_detail") else None,
    )


def server_credentials(cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> grpc.ServerCredentials:
    """TLS that requires and verifies a client certificate issued by the mesh CA."""
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )
