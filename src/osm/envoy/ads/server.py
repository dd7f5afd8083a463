"""The ADS gRPC server (grpc.aio): mTLS, proxy admission by certificate, SotW and delta streams.

The only module that imports grpc. Requests are parsed with protobuf; responses are assembled from
pre-serialized resources (see envoy/wire.py) and written as raw bytes.

Bounded against a hostile or broken client (AdsLimits): connections and their TLS handshake time,
streams per connection, per proxy certificate and in all, request size and the names a request or a
subscription may hold, the requests queued per stream (reading pauses; HTTP/2 flow control pushes back)
and the error text logged. A stream lives only while its pod does and its certificate is valid.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from cryptography import x509
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import DecodeError

from osm import errcode
from osm.catalog import ProxyGroup
from osm.envoy.ads.cache import ProxyIdentity, ProxyRejected, XdsCache
from osm.envoy.ads.delta import DeltaRequest, DeltaResponse, DeltaStream
from osm.envoy.ads.sotw import LimitExceeded, Request, Response, SotwStream
from osm.envoy.types import SHORT, ProxyResources
from osm.metrics import ControlPlaneMetrics
from osm.models.identity import ServiceIdentity
from osm.state.decode import ObjectKey
from osm.state.snapshot import MeshState, NsName

log = logging.getLogger(__name__)

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"


@dataclass(frozen=True)
class AdsLimits:
    """What one client, or all of them, may make the server hold. 0 means no limit where noted."""

    max_connections: int = 10_000  # TCP connections (gRPC refuses more)
    handshake_timeout: float = 5.0  # seconds a connection may take to complete its TLS handshake
    max_streams_per_connection: int = 8  # Envoy opens one ADS stream per connection
    max_streams_per_proxy: int = 2  # per client certificate; a newer stream replaces the oldest
    max_streams: int = 0  # in all (MeshConfig sidecar.maxDataPlaneConnections overrides; 0: no limit)
    max_request_bytes: int = 1024 * 1024  # a permissive proxy's EDS request at 2,000 services: ~80 KB
    max_names: int = 20_000  # resource names per request and per delta subscription
    max_queued_requests: int = 64  # per stream, before reading pauses
    max_logged_text: int = 512  # characters of a client's error text that are logged
    # A connection is asked to go away (GOAWAY) after this long, so that a proxy reconnects with a full
    # TLS handshake, presenting its renewed certificate; streams then have `grace` to move.
    max_connection_age: float = 1800.0
    max_connection_age_grace: float = 10.0


DEFAULT_LIMITS = AdsLimits()
LIMIT_LOG_INTERVAL = 10.0  # seconds: a limit hit again within this is counted, not logged


def server_options(limits: AdsLimits = DEFAULT_LIMITS) -> list[tuple[str, int]]:
    return [
        ("grpc.max_concurrent_streams", limits.max_streams_per_connection),
        # The default (1000) drops streams in a reconnect storm of a few thousand proxies.
        ("grpc.server.max_pending_requests", 100_000),
        ("grpc.server.max_pending_requests_hard_limit", 100_000),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.max_receive_message_length", limits.max_request_bytes),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_allowed_incoming_connections", limits.max_connections),
        ("grpc.server_handshake_timeout_ms", int(limits.handshake_timeout * 1000)),
        ("grpc.max_connection_age_ms", int(limits.max_connection_age * 1000)),
        ("grpc.max_connection_age_grace_ms", int(limits.max_connection_age_grace * 1000)),
    ]


SERVER_OPTIONS = server_options()


def bounded(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


class LimitLog:
    """Counts every hit of a limit; logs the first, then at most one line per interval per limit."""

    def __init__(self, interval: float = LIMIT_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.hits: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self._since_logged: Counter[str] = Counter()
        self._interval = interval
        self._clock = clock

    def hit(self, limit: str, detail: str) -> None:
        self.hits[limit] += 1
        now = self._clock()
        last = self._logged_at.get(limit)
        if last is not None and now - last < self._interval:
            self._since_logged[limit] += 1
            return
        more = self._since_logged.pop(limit, 0)
        self._logged_at[limit] = now
        log.warning(
            "limit %s: %s%s",
            limit,
            detail,
            f" ({more} more hits since the last line)" if more else "",
            extra={"err_code": errcode.ADS_LIMIT},
        )


_UPDATE = object()
REQUEST_LOG = 10  # request timestamps kept per proxy and type
SEEN_PROXIES = 100_000  # proxies remembered as connected before (osm_proxy_reconnect_count)
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
    evicted: int = 0  # streams ended because their pod went away or their certificate expired
    failed: int = 0  # config computations that failed (the stream is retried on the next snapshot)


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
    failed: str = ""  # why its config could not be computed, until it can
    slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(DEFAULT_LIMITS.max_queued_requests)
    )
    logged: set[tuple[str, str]] = field(default_factory=set)  # NACKs and unknown types logged once
    expiry: asyncio.TimerHandle | None = None
    # its latest xDS requests, by type (the debug server's /debug/xds): a few timestamps each
    requested: dict[str, deque[float]] = field(default_factory=dict)
    # its metrics' per-proxy labels (proxy_uuid, identity), made once
    labels: tuple[str, str] = ("", "")

    @property
    def identity(self) -> ServiceIdentity:
        return self.proxy.cn.identity

    @property
    def pod(self) -> NsName:
        return (self.proxy.pod_namespace, self.proxy.pod_name)

    @property
    def key(self) -> str:
        """The proxy's certificate CN: the streams of one proxy (see max_streams_per_proxy)."""
        return str(self.proxy.cn)


def _peer_cn(context: grpc.aio.ServicerContext) -> str:
    auth = context.auth_context() or {}
    values = auth.get("x509_common_name") or []
    return values[0].decode() if values else ""


def _peer_not_after(context: grpc.aio.ServicerContext) -> datetime | None:
    auth = context.auth_context() or {}
    pems = auth.get("x509_pem_cert") or []
    if not pems:
        return None
    try:
        return x509.load_pem_x509_certificate(pems[0]).not_valid_after_utc
    except ValueError:
        return None


class AdsServer:
    def __init__(
        self,
        cache: XdsCache,
        *,
        address: str,
        credentials: grpc.ServerCredentials | None,
        limits: AdsLimits = DEFAULT_LIMITS,
        metrics: ControlPlaneMetrics | None = None,
    ) -> None:
        self.cache = cache
        self.metrics = metrics if metrics is not None else ControlPlaneMetrics()
        self._seen: OrderedDict[str, None] = OrderedDict()  # proxies connected before (bounded)
        self.address = address
        self.credentials = credentials
        self.limits = limits
        self.max_streams = limits.max_streams
        self.stats = AdsStats()
        self.limit_log = LimitLog()
        self.streams: dict[int, ProxyStream] = {}
        self._by_cn: dict[str, list[ProxyStream]] = {}
        self._ids = itertools.count(1)
        self._server: grpc.aio.Server | None = None
        self.port = 0
        self.on_nack: Callable[[ProxyStream, str, str], None] | None = None

    # ---- lifecycle

    async def start(self) -> int:
        server = grpc.aio.server(options=server_options(self.limits))
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

    def _end(self, s: ProxyStream, code: grpc.StatusCode, reason: str) -> None:
        s.queue.put_nowait(_Abort(reason, code))

    # ---- config changes

    def update(self, state: MeshState, changed: Collection[ObjectKey] | None = None) -> int:
        """Adopt a new snapshot and wake the proxies it may affect. Returns how many.

        With `changed` (the keys that changed since the last snapshot), only the proxies the change can
        affect are recomputed (see osm.envoy.scope); the others keep their resources. Streams whose
        config could not be computed are always retried. Streams whose pod is gone (or no longer
        matches their certificate) are ended with PERMISSION_DENIED.
        """
        self.cache.update(state, changed)
        self.metrics.proxy_broadcast_event_count.inc()
        self.max_streams = state.mesh_config.sidecar.max_data_plane_connections or self.limits.max_streams
        self._evict(changed)
        scope = None if changed is None else self.cache.scope(changed)
        if scope is None:
            return self._refresh(lambda s: True)
        return self._refresh(
            lambda s: bool(s.failed) or scope.touches(s.deps, s.pod, s.identity), keep_others=True
        )

    def _evict(self, changed: Collection[ObjectKey] | None) -> None:
        """End the streams of proxies the snapshot no longer admits (their pod was deleted, its service
        account changed, or its namespace left the mesh)."""
        if changed is None:
            suspects = list(self.streams.values())
        else:
            pods = {(k.namespace, k.name) for k in changed if k.kind == "Pod"}
            namespaces = {k.name for k in changed if k.kind == "Namespace"}
            if not pods and not namespaces:
                return
            suspects = [s for s in self.streams.values() if s.pod in pods or s.pod[0] in namespaces]
        for s in suspects:
            try:
                self.cache.pod_for(s.proxy.cn)
            except ProxyRejected as e:
                self.stats.evicted += 1
                log.warning(
                    "proxy %s: ending its stream: %s", s.proxy.cn, e, extra={"err_code": errcode.ADS_EVICTED}
                )
                self._end(s, grpc.StatusCode.PERMISSION_DENIED, str(e))

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
        """The stream's resources in the current snapshot; None (and `s.failed` says why) when they
        cannot be computed: the stream keeps what it had and is retried on the next snapshot."""
        try:
            pod = self.cache.pod_for(s.proxy.cn)
        except ProxyRejected as e:
            self._end(s, grpc.StatusCode.PERMISSION_DENIED, str(e))  # its pod is gone: see _evict
            return None
        started = time.perf_counter()
        try:
            group = self.cache.group_for(pod)
            res = self.cache.resources(group, s.resources if s.group == group else None)
        except Exception as e:
            self.metrics.proxy_config_update_time.observe(time.perf_counter() - started, "all", "false")
            self.stats.failed += 1
            first = not s.failed
            s.failed = str(e) or type(e).__name__
            if first:
                log.exception(
                    "proxy %s: cannot build its config (%s); it keeps its last config and is retried on "
                    "every change",
                    s.proxy.cn,
                    s.failed,
                    extra={"err_code": errcode.ADS_GENERATION_FAILED},
                )
            return None
        self.metrics.proxy_config_update_time.observe(time.perf_counter() - started, "all", "true")
        if s.failed:
            log.info("proxy %s: its config builds again", s.proxy.cn)
            s.failed = ""
        s.group, s.deps = group, self.cache.deps(group)
        return res

    # ---- streams

    async def _admit(self, context: grpc.aio.ServicerContext, protocol: str) -> ProxyStream:
        cn = _peer_cn(context)
        not_after = _peer_not_after(context)
        try:
            if not cn:
                raise ProxyRejected("no client certificate CN")
            if not_after is not None and not_after <= datetime.now(UTC):
                raise ProxyRejected(
                    f"its certificate expired at {not_after.isoformat()} (a resumed TLS session?)"
                )
            proxy, _ = self.cache.authenticate(cn)
        except ProxyRejected as e:
            self.stats.rejected += 1
            log.warning(
                "refused xDS stream from %s (CN %r): %s",
                context.peer(),
                bounded(cn, 256),
                e,
                extra={"err_code": errcode.ADS_UNKNOWN_PROXY},
            )
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
            raise  # not reached: abort raises
        if self.max_streams and len(self.streams) >= self.max_streams:
            self.stats.rejected += 1
            self.metrics.proxy_max_connections_rejected.inc()
            self.limit_log.hit("max-streams", f"refused a stream from {cn}: {len(self.streams)} streams open")
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the control plane serves at most {self.max_streams} proxies",
            )
        limits = self.limits
        machine = (
            SotwStream(max_names=limits.max_names)
            if protocol == "sotw"
            else DeltaStream(max_names=limits.max_names)
        )
        s = ProxyStream(
            next(self._ids), proxy, protocol, machine, slots=asyncio.Semaphore(limits.max_queued_requests)
        )
        s.labels = (proxy.cn.uuid, str(proxy.cn.identity))
        same = self._by_cn.setdefault(s.key, [])
        while len(same) >= limits.max_streams_per_proxy:
            oldest = same.pop(0)
            self.limit_log.hit("streams-per-proxy", f"{cn}: a new stream replaces its oldest")
            self._end(oldest, grpc.StatusCode.RESOURCE_EXHAUSTED, "replaced by a newer stream of this proxy")
        same.append(s)
        if not_after is not None:
            left = (not_after - datetime.now(UTC)).total_seconds()
            s.expiry = asyncio.get_running_loop().call_later(
                max(0.0, left),
                self._end,
                s,
                grpc.StatusCode.UNAUTHENTICATED,
                "the proxy's certificate expired",
            )
        s.resources = self._compute(s)
        self.streams[s.id] = s
        self.stats.connects += 1
        self.stats.connected = len(self.streams)
        self.metrics.proxy_connect_count.set(len(self.streams))
        if s.key in self._seen:
            self.metrics.proxy_reconnect_count.inc()
            self._seen.move_to_end(s.key)
        else:
            self._seen[s.key] = None
            if len(self._seen) > SEEN_PROXIES:
                self._seen.popitem(last=False)
        log.info("proxy connected: %s pod %s/%s (%s)", cn, proxy.pod_namespace, proxy.pod_name, protocol)
        return s

    def _close(self, s: ProxyStream) -> None:
        self.streams.pop(s.id, None)
        same = self._by_cn.get(s.key)
        if same is not None and s in same:
            same.remove(s)
            if not same:
                del self._by_cn[s.key]
        if s.expiry is not None:
            s.expiry.cancel()
        self.stats.connected = len(self.streams)
        self.metrics.proxy_connect_count.set(len(self.streams))
        if s.key not in self._by_cn:  # its last stream: its per-proxy series go with it
            self.metrics.registry.forget("proxy_uuid", s.proxy.cn.uuid)
        log.info("proxy disconnected: %s", s.proxy.cn)

    async def _read(
        self, requests: AsyncIterator[bytes], s: ProxyStream, parse: Callable[[bytes], Any]
    ) -> None:
        """Take the stream's requests, at most `max_queued_requests` ahead of its task: beyond that,
        reading pauses (and the client's sends wait on HTTP/2 flow control)."""
        try:
            while True:
                if s.slots.locked():
                    self.limit_log.hit(
                        "queued-requests",
                        f"{s.proxy.cn}: {self.limits.max_queued_requests} requests wait; reading paused",
                    )
                await s.slots.acquire()
                raw = await anext(requests, None)
                if raw is None:
                    return
                accepted = self._accept(s, raw, parse)
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

    def _accept(self, s: ProxyStream, raw: bytes, parse: Callable[[bytes], Any]) -> bool:
        """Queue a request for the stream's task, or record it here if it is a plain ACK with nothing
        before it still to process (an item stays in the queue until the task takes it): waking the
        task for it would cost a task switch per ACK (two per proxy in a full push). False when the
        request is malformed and the stream ends. Envoy's ACK of a wildcard type is recognised by its
        bytes, before any parsing. A request queued holds one of the stream's slots until processed."""
        machine = (
            s.machine if isinstance(s.machine, SotwStream) and s.queue.empty() and not s.backlog else None
        )
        if machine is not None and (acked := machine.try_ack_raw(raw)):
            self._count_request(s, acked)
            s.slots.release()
            return True
        try:
            req = parse(raw)
        except DecodeError as e:
            log.warning(
                "proxy %s: malformed request: %s", s.proxy.cn, e, extra={"err_code": errcode.ADS_BAD_REQUEST}
            )
            s.queue.put_nowait(_Abort(f"malformed request: {e}"))
            return False
        self._count_request(s, req.type_url)
        if machine is not None and machine.try_ack(req):
            s.slots.release()
            return True
        s.queue.put_nowait(req)
        return True

    def _count_request(self, s: ProxyStream, type_url: str) -> None:
        kind = SHORT.get(type_url, "unknown")
        self.metrics.proxy_xds_request_count.inc(*s.labels, kind)
        s.requested.setdefault(kind, deque(maxlen=REQUEST_LOG)).append(time.time())

    def _log_nack(self, s: ProxyStream, type_url: str, version: str, message: str) -> None:
        """Every NACK is counted; each (type, version) is logged once per stream, its text bounded."""
        self.stats.nacks += 1
        if self.on_nack is not None:
            self.on_nack(s, type_url, message)
        if not self._first(s, ("nack", f"{type_url} {version}")):
            return
        log.warning(
            "NACK from %s for %s version %s: %s",
            s.proxy.cn,
            SHORT.get(type_url, type_url),
            version,
            bounded(message, self.limits.max_logged_text),
            extra={"err_code": errcode.ADS_NACK},
        )

    def _log_unknown(self, s: ProxyStream, type_url: str) -> None:
        if self._first(s, ("unknown", type_url)):
            log.warning(
                "proxy %s asked for type %s, which this server does not serve; ignored",
                s.proxy.cn,
                bounded(type_url, 200),
                extra={"err_code": errcode.ADS_UNKNOWN_TYPE},
            )

    @staticmethod
    def _first(s: ProxyStream, what: tuple[str, str]) -> bool:
        """Whether `what` is logged for the first time on this stream (at most 32 remembered)."""
        if what in s.logged or len(s.logged) >= 32:
            return False
        s.logged.add(what)
        return True

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
                    log.info("proxy %s: ending its stream (%s): %s", s.proxy.cn, item.code.name, item.reason)
                    await context.abort(item.code, item.reason)
                res = self._next_items(s, item)
                pushed = item is _UPDATE
                del item  # not kept while the stream waits (see _read); the backlog holds it if needed
                try:
                    out = self._drain(s, res, pushed) if res is not None else []
                except LimitExceeded as e:
                    self.limit_log.hit("names", f"{s.proxy.cn}: {e}")
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
                out.reverse()
                while out:  # nothing sent stays referenced while the stream waits
                    response = out.pop()
                    labels = (*s.labels, SHORT.get(response.type_url, "unknown"))
                    try:
                        await context.write(response.encode())
                    except Exception:
                        self.metrics.proxy_response_send_error_count.inc(*labels)
                        raise
                    self.metrics.proxy_response_send_success_count.inc(*labels)
        finally:
            reader.cancel()
            self._close(s)

    def _drain(self, s: ProxyStream, res: ProxyResources, pushed: bool) -> list[Response | DeltaResponse]:
        """Process the stream's backlog in order; the responses to send."""
        machine = s.machine
        out: list[Response | DeltaResponse] = []
        debug = log.isEnabledFor(logging.DEBUG)
        while s.backlog:
            it = s.backlog.pop(0)  # left in the backlog until processed (see _read)
            if it is _UPDATE:
                out += machine.on_update(res)
                continue
            s.slots.release()
            counters = machine.counters
            nacks, unknown = counters.nacks, counters.unknown
            sent = len(out)
            out += machine.on_request(it, res)
            if debug:
                log.debug(
                    "proxy %s: %s request: %s; %d responses",
                    s.proxy.cn,
                    SHORT.get(it.type_url, "unknown type"),
                    machine.decision,
                    len(out) - sent,
                )
            if counters.nacks != nacks and machine.last_nack is not None:
                self._log_nack(s, *machine.last_nack)
            if counters.unknown != unknown:
                self._log_unknown(s, machine.last_unknown)
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
