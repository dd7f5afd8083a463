"""Simulated sidecars: gRPC ADS clients that subscribe as Envoy does and ACK everything.

Each proxy has its own mTLS connection and certificate (CN = its pod's proxy identity). It subscribes to
CDS and LDS (wildcard), then EDS/RDS/SDS by the names the clusters and listeners reference, and ACKs
every response at once. Only the envelope is parsed into a message; the names the resources carry and
refer to are read from their bytes (see fast_refs), which keeps a permissive-mode fleet's load side from
parsing millions of clusters. The stream runs on bench/h2client.py's lean client (each response handled
and its requests written in the connection's callback), or on grpc's aio client with client="grpc".
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.json_format import MessageToDict

import osm.envoy.generator  # noqa: F401  (registers the message types packed in the resources)
from bench import h2client
from osm.envoy import wire
from osm.envoy.types import TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE, TYPE_SECRET

SOTW = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
BY_NAME = (TYPE_ENDPOINT, TYPE_ROUTE, TYPE_SECRET)
RECONNECT_BASE_S, RECONNECT_MAX_S = 0.25, 4.0  # Envoy backs off from 0.5 s, jittered


def _varint(buf: bytes | memoryview, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a serialized message; length-delimited values as memoryviews."""
    view = memoryview(buf)
    i, n = 0, len(view)
    while i < n:
        key, i = _varint(view, i)
        number, wt = key >> 3, key & 7
        if wt == 0:
            value, i = _varint(view, i)
        elif wt == 2:
            length, i = _varint(view, i)
            value, i = view[i : i + length], i + length
        elif wt == 1:
            value, i = view[i : i + 8], i + 8
        elif wt == 5:
            value, i = view[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield number, wt, value


@dataclass
class Envelope:
    type_url: str = ""
    version: str = ""
    nonce: str = ""
    bodies: list[bytes] = field(default_factory=list)  # each resource's serialized message
    names: list[str] = field(default_factory=list)  # delta: each resource's name
    removed: list[str] = field(default_factory=list)
    raw: bytes = b""  # the whole response


def parse_envelope(raw: bytes, delta: bool) -> Envelope:
    """The response's envelope, parsed by protobuf (C); the resource bodies are only copied."""
    if delta:
        d = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)
        return Envelope(
            d.type_url,
            d.system_version_info,
            d.nonce,
            [r.resource.value for r in d.resources],
            [r.name for r in d.resources],
            list(d.removed_resources),
            raw,
        )
    r = discovery_pb2.DiscoveryResponse.FromString(raw)
    return Envelope(r.type_url, r.version_info, r.nonce, [a.value for a in r.resources], raw=raw)


@dataclass(frozen=True)
class Refs:
    names: tuple[str, ...]  # resource names in this response
    eds: frozenset[str] = frozenset()
    rds: frozenset[str] = frozenset()
    sds: frozenset[str] = frozenset()


# The SDS secret and RDS route configuration names a cluster or listener refers to, found in the
# response's bytes: an SdsSecretConfig's name (OSM's secret name prefixes, mostly then `<ns>/<name>`) and
# an Rds message's route_config_name (field 2, length-prefixed). Each pattern starts with a literal, which the
# regex engine finds fast (a response may hold megabytes). `fast_refs` must agree with `parsed_refs` (a
# full protobuf walk) on every generated configuration; a unit test checks it.
SDS_REFS = (
    re.compile(rb"service-cert:[a-z0-9.\-]+/[a-z0-9.\-]+"),
    # `<prefix>:<ns>/<name>`, or the mesh-wide outbound root's bare name
    re.compile(
        rb"root-cert-(?:(?:for-mtls-outbound|for-mtls-inbound|https):[a-z0-9.\-]+/[a-z0-9.\-]+"
        rb"|for-mtls-outbound(?![:a-z0-9.\-/]))"
    ),
)
RDS_NAME = re.compile(rb"rds-[a-z]+\.[0-9]+")
EDS_TYPE = b"\x10\x03"  # Cluster.type (field 2) = EDS, serialized right after the name (field 1)


SDS_PREFIXES = (b"service-cert:", b"root-cert-")


def _sds_refs(raw: bytes) -> frozenset[str]:
    """The fast path: every cluster of a proxy names the same few secrets, thousands of times over. Each
    prefix's first occurrence is read as the protobuf string around it (tag of field 1, length); when that
    exact framed string accounts for every occurrence of the prefix, it is the only name. Otherwise (or
    when the framing is not there) the regexes read every occurrence."""
    out = set()
    for prefix in SDS_PREFIXES:
        i = raw.find(prefix)
        if i < 0:
            continue
        size = raw[i - 1] if i >= 2 else 0x80
        if size >= 0x80 or raw[i - 2] != 0x0A:
            return _sds_scan(raw)
        framed = raw[i - 2 : i + size]
        if raw.count(framed) != raw.count(prefix):
            return _sds_scan(raw)
        out.add(framed[2:].decode())
    return frozenset(out)


def _sds_scan(raw: bytes) -> frozenset[str]:
    return frozenset(m.decode() for pattern in SDS_REFS for m in set(pattern.findall(raw)))


def _rds_refs(raw: bytes) -> frozenset[str]:
    """Strings starting `rds-` that fill a length-delimited field 2 (the stat prefix, which embeds the
    route name, does not). Each distinct candidate is checked with its framing; a candidate that ran on
    into the next field's tag (a digit) is tried shorter."""
    out = set()
    for candidate in set(RDS_NAME.findall(raw)):
        while candidate[-1:].isdigit():
            if b"\x12" + wire.varint(len(candidate)) + candidate in raw:
                out.add(candidate.decode())
                break
            candidate = candidate[:-1]
    return frozenset(out)


def _name(body: bytes) -> tuple[str, int]:
    """Field 1 (the name of every xDS resource type here) when serialized first, and where it ends."""
    if body[:1] == b"\x0a" and body[1] < 0x80:
        end = 2 + body[1]
        return body[2:end].decode(), end
    for number, _, value in fields(body):  # not first, or a long name: walk the fields
        if number == 1:
            return bytes(value).decode(), -1
    return "", -1


def fast_refs(e: Envelope) -> Refs:
    """What a response's resources are called and refer to, without parsing them."""
    if e.type_url == TYPE_CLUSTER:
        names, eds = [], set()
        for body in e.bodies:
            name, end = _name(body)
            names.append(name)
            if end < 0:
                if cluster_pb2.Cluster.FromString(body).type == cluster_pb2.Cluster.EDS:
                    eds.add(name)
            elif body[end : end + 2] == EDS_TYPE:
                eds.add(name)
        return Refs(tuple(e.names or names), frozenset(eds), sds=_sds_refs(e.raw))
    names = e.names or [_name(body)[0] for body in e.bodies]
    if e.type_url == TYPE_LISTENER:
        return Refs(tuple(names), rds=_rds_refs(e.raw), sds=_sds_refs(e.raw))
    return Refs(tuple(names))


def _walk_sds(d: Any, out: set[str]) -> None:
    if isinstance(d, dict):
        for k, v in d.items():
            if k == "tls_certificate_sds_secret_configs":
                out.update(s["name"] for s in v)
            elif k == "validation_context_sds_secret_config":
                out.add(v["name"])
            else:
                _walk_sds(v, out)
    elif isinstance(d, list):
        for x in d:
            _walk_sds(x, out)


def _walk_rds(d: Any, out: set[str]) -> None:
    if isinstance(d, dict):
        for k, v in d.items():
            if k == "route_config_name":
                out.add(v)
            else:
                _walk_rds(v, out)
    elif isinstance(d, list):
        for x in d:
            _walk_rds(x, out)


def parsed_refs(e: Envelope) -> Refs:
    """The same as fast_refs, by parsing every resource into protobuf messages (slow; the reference)."""
    names: list[str] = []
    eds: set[str] = set()
    rds: set[str] = set()
    sds: set[str] = set()
    for body in e.bodies:
        if e.type_url == TYPE_CLUSTER:
            c = cluster_pb2.Cluster.FromString(body)
            names.append(c.name)
            if c.type == cluster_pb2.Cluster.EDS:
                eds.add(c.name)
            _walk_sds(MessageToDict(c, preserving_proto_field_name=True), sds)
        elif e.type_url == TYPE_LISTENER:
            lst = listener_pb2.Listener.FromString(body)
            names.append(lst.name)
            d = MessageToDict(lst, preserving_proto_field_name=True)
            _walk_rds(d, rds)
            _walk_sds(d, sds)
        else:
            names.append(_name(body)[0])
    return Refs(tuple(e.names or names), frozenset(eds), frozenset(rds), frozenset(sds))


class Markers:
    """Byte strings the harness waits for, and when each proxy first saw each one."""

    def __init__(self) -> None:
        self.active: dict[str, dict[bytes, int]] = {}  # type_url -> marker -> id
        self.seen: dict[int, dict[int, float]] = {}  # marker id -> proxy index -> time
        self.absent: dict[str, dict[bytes, int]] = {}  # type_url -> marker that must disappear -> id

    def expect(self, type_url: str, marker: bytes, mid: int, *, absent: bool = False) -> None:
        (self.absent if absent else self.active).setdefault(type_url, {})[marker] = mid
        self.seen.setdefault(mid, {})

    def check(self, proxy: int, type_url: str, raw: bytes, now: float) -> None:
        for marker, mid in self.active.get(type_url, {}).items():
            seen = self.seen[mid]
            if proxy not in seen and marker in raw:
                seen[proxy] = now
        for marker, mid in self.absent.get(type_url, {}).items():
            seen = self.seen[mid]
            if proxy not in seen and marker not in raw:
                seen[proxy] = now


@dataclass
class TypeSub:
    names: frozenset[str] = frozenset()
    got: set[str] = field(default_factory=set)  # names the proxy holds
    nonce: str = ""
    version: str = ""
    received: bool = False
    requested: bool = False
    responses: int = 0
    bytes: int = 0
    names_wire: tuple[frozenset[str] | None, bytes] = (None, b"")  # `names` and their request encoding


@dataclass
class ClientCreds:
    """A simulated proxy's mTLS material, made into grpc or ssl credentials as its client needs."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)

    def grpc_creds(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=self.key_pem, certificate_chain=self.cert_pem
        )

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = h2client.client_context(self.ca_pem, self.cert_pem, self.key_pem)
        return self._ssl


CLIENTS = ("h2", "grpc")  # bench/h2client.py (the default: cheap per message), or grpc's aio client


class SimProxy:
    def __init__(
        self,
        index: int,
        cn: str,
        creds: ClientCreds,
        target: str,
        *,
        delta: bool,
        markers: Markers,
        server_name: str = "ads.cluster.local",
        client: str = "h2",
    ) -> None:
        if client not in CLIENTS:
            raise ValueError(f"client must be one of {CLIENTS}, not {client!r}")
        self.index, self.cn, self.creds, self.target = index, cn, creds, target
        self.delta, self.markers, self.server_name, self.client = delta, markers, server_name, client
        self.subs: dict[str, TypeSub] = {
            t: TypeSub() for t in (TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE, TYPE_SECRET)
        }
        for t in (TYPE_CLUSTER, TYPE_LISTENER):  # wildcard, asked for on every stream from the start
            self.subs[t].requested = True
        self.complete_at: float | None = None
        self.responses = 0
        self.bytes = 0
        self.log: list[tuple[float, str, bytes]] = []  # kept only when record=True
        self.record = False
        self.error: str | None = None
        self.reconnects = 0
        self._stopped = False
        self.lost: list[str] = []  # why each stream that was opened again had failed
        self._out: list[bytes] = []  # requests to write once the current response is handled
        self._call: Any = None
        self._conn: h2client.GrpcStream | None = None
        self.closed = asyncio.Event()

    # ---- requests

    def _sotw(self, type_url: str, first: bool = False) -> bytes:
        """DiscoveryRequest{version_info=1, node=2 (first only), resource_names=3, type_url=4,
        response_nonce=5}, written field by field; the names' encoding is kept while they stay the same."""
        st = self.subs[type_url]
        if st.names_wire[0] is not st.names:
            names = discovery_pb2.DiscoveryRequest(resource_names=sorted(st.names)).SerializeToString()
            st.names_wire = (st.names, names)
        node = wire.field_bytes(2, wire.field_str(1, self.cn)) if first else b""
        return b"".join(
            (
                wire.field_str(1, st.version),
                node,
                st.names_wire[1],
                wire.field_str(4, type_url),
                wire.field_str(5, st.nonce),
            )
        )

    def _delta_req(
        self,
        type_url: str,
        subscribe: frozenset[str] = frozenset(),
        unsubscribe: frozenset[str] = frozenset(),
        first: bool = False,
    ) -> bytes:
        st = self.subs[type_url]
        req = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            response_nonce=st.nonce if not first else "",
            resource_names_subscribe=sorted(subscribe),
            resource_names_unsubscribe=sorted(unsubscribe),
        )
        if first:
            req.node.id = self.cn
        return req.SerializeToString()

    def _want(self, type_url: str, names: frozenset[str]) -> None:
        st = self.subs[type_url]
        if names == st.names and st.requested:
            return
        if self.delta:
            self._out.append(
                self._delta_req(
                    type_url, names - st.names, st.names - names, first=not st.requested and not names
                )
            )
        else:
            st.names = names
            st.got &= names  # Envoy forgets a resource with its last watch
            self._out.append(self._sotw(type_url))
        st.names, st.requested = names, True

    # ---- the stream

    async def run(self) -> None:
        """Stream until stopped. A stream that fails is opened again after a jittered backoff, as Envoy
        does, and every subscription is asked for anew on it (`reconnects`, `lost` record why)."""
        backoff = RECONNECT_BASE_S
        try:
            while True:
                try:
                    await self._stream()
                    return  # the server ended the stream cleanly
                except grpc.aio.AioRpcError as e:
                    if e.code() == grpc.StatusCode.CANCELLED or self._stopped:
                        return  # stop()
                    self.lost.append(f"{e.code().name}: {e.details()}")
                except (h2client.StreamEnded, OSError) as e:  # h2: a stream that ended, or a failed connect
                    if self._stopped:
                        return
                    self.lost.append(str(e) or type(e).__name__)
                self.reconnects += 1
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, RECONNECT_MAX_S)
        except asyncio.CancelledError:
            pass
        except Exception as e:  # recorded: a broken simulated proxy must show in the results
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.closed.set()

    async def _stream(self) -> None:
        if self.client == "h2":
            await self._stream_h2()
            return
        options = [
            ("grpc.ssl_target_name_override", self.server_name),
            ("grpc.use_local_subchannel_pool", 1),
            ("osm.bench.proxy", self.index),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ]
        async with grpc.aio.secure_channel(self.target, self.creds.grpc_creds(), options=options) as channel:
            # Requests are written by the reading task itself, after each response is handled (as
            # Envoy's main thread does, and as bench/ceiling.py's load does: the two load sides cost the
            # same per response).
            call = self._call = channel.stream_stream(
                DELTA if self.delta else SOTW, request_serializer=None, response_deserializer=None
            )()
            self._out = self._subscriptions()
            await self._flush(call)
            while (raw := await call.read()) is not grpc.aio.EOF:
                self._on_response(raw)
                await self._flush(call)

    async def _stream_h2(self) -> None:
        """The same stream on bench/h2client.py: each response is handled, and the requests it queued are
        written, in the connection's own callback."""
        host, _, port = self.target.rpartition(":")
        conn = self._conn = await h2client.open_stream(
            host,
            int(port),
            self.creds.ssl_context(),
            DELTA if self.delta else SOTW,
            self._h2_response,
            server_name=self.server_name,
        )
        if self._stopped:
            conn.close()
        self._out = self._subscriptions()
        self._h2_flush(conn)
        reason = await conn.ended
        if not self._stopped and conn.status != 0:  # a stream that ended OK is over, as with grpc's client
            raise h2client.StreamEnded(reason)

    def _h2_response(self, raw: bytes) -> None:
        self._on_response(raw)
        if self._conn is not None:
            self._h2_flush(self._conn)

    def _h2_flush(self, conn: h2client.GrpcStream) -> None:
        out, self._out = self._out, []
        for req in out:
            conn.send(req)

    def _subscriptions(self) -> list[bytes]:
        """Every subscription, on a new stream: CDS and LDS first; after a reconnect also the by-name
        types asked for before. Nonces do not survive a stream; SotW requests carry the versions held,
        delta ones subscribe to every name again."""
        out: list[bytes] = []
        for t in (TYPE_CLUSTER, TYPE_LISTENER, *BY_NAME):
            st = self.subs[t]
            if not st.requested:
                continue
            st.nonce = ""
            if self.delta:
                out.append(self._delta_req(t, subscribe=st.names, first=not out))
            else:
                out.append(self._sotw(t, first=not out))
        return out

    async def _flush(self, call: Any) -> None:
        out, self._out = self._out, []
        for req in out:
            await call.write(req)

    def stop(self) -> None:
        self._stopped = True
        if self._call is not None:
            self._call.cancel()
        if self._conn is not None:
            self._conn.close()

    def _on_response(self, raw: bytes) -> None:
        now = time.monotonic()
        self.responses += 1
        self.bytes += len(raw)
        e = parse_envelope(raw, self.delta)
        if self.record:
            self.log.append((now, e.type_url, raw))
        self.markers.check(self.index, e.type_url, raw, now)
        st = self.subs[e.type_url]
        st.nonce, st.version, st.received = e.nonce, e.version, True
        st.responses += 1
        st.bytes += len(raw)
        refs = fast_refs(e)
        if self.delta:
            st.got = (st.got | set(refs.names)) - set(e.removed)
        elif e.type_url in BY_NAME:
            st.got |= set(refs.names)  # SotW by-name types: what a response leaves out is kept (as Envoy)
        else:
            st.got = set(refs.names)
        # ACK first, then ask for what the new resources reference (as Envoy does).
        self._out.append(self._delta_req(e.type_url) if self.delta else self._sotw(e.type_url))
        if e.type_url == TYPE_CLUSTER:
            self._want(TYPE_ENDPOINT, refs.eds if not self.delta else self._eds_delta(refs, e.removed))
            self._sds_from(TYPE_CLUSTER, refs.sds)
        elif e.type_url == TYPE_LISTENER:
            self._want(TYPE_ROUTE, refs.rds if not self.delta else (self.subs[TYPE_ROUTE].names | refs.rds))
            self._sds_from(TYPE_LISTENER, refs.sds)
        if self.complete_at is None and self._complete():
            self.complete_at = now

    def _eds_delta(self, refs: Refs, removed: list[str]) -> frozenset[str]:
        return frozenset((self.subs[TYPE_ENDPOINT].names | refs.eds) - set(removed))

    def _sds_from(self, source: str, names: frozenset[str]) -> None:
        setattr(self, f"_sds_{source}", names)
        cds = getattr(self, f"_sds_{TYPE_CLUSTER}", frozenset())
        lds = getattr(self, f"_sds_{TYPE_LISTENER}", frozenset())
        want = cds | lds
        if self.delta:
            want = self.subs[TYPE_SECRET].names | want
        self._want(TYPE_SECRET, frozenset(want))

    def _complete(self) -> bool:
        if not (self.subs[TYPE_CLUSTER].received and self.subs[TYPE_LISTENER].received):
            return False
        return all(self.subs[t].names <= self.subs[t].got for t in BY_NAME)


def channel_credentials(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> ClientCreds:
    return ClientCreds(ca_pem, cert_pem, key_pem)
