"""A proxy group's xDS resources from its ProxyPolicy, memoized by input so proxies share serialized bytes.

The builders in cds/eds/lds/rds/sds are pure; this module only decides what to build and caches the
serialized result under a key made of exactly the inputs each builder reads. The owner sweeps the memo
now and then down to the parts its served groups use, which bounds memory to what the mesh needs.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from osm.envoy import wire
from osm.envoy.cds import clusters
from osm.envoy.common import PASSTHROUGH_CLUSTER, TRACING_CLUSTER
from osm.envoy.eds import cla
from osm.envoy.lds import inbound, outbound
from osm.envoy.rds import routes
from osm.envoy.sds import names, secrets
from osm.envoy.sds.secrets import CertMaterial
from osm.envoy.types import (
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    TYPE_SECRET,
    ProxyResources,
    Resource,
    SharedSet,
)
from osm.models.identity import ServiceIdentity
from osm.models.service import MeshService
from osm.models.trafficpolicy import (
    EgressPort,
    HashedTuple,
    InboundService,
    IngressRoute,
    OutboundPolicy,
    ProxyPolicy,
    TLSSettings,
    Tracing,
    Upstream,
    UpstreamCluster,
    UpstreamSettings,
)

HTTP_PROTOCOLS = ("http", "grpc")


class ConfigGenerator:
    def __init__(self) -> None:
        self._memo: dict[Hashable, Any] = {}
        # The parts each part was made from, so a sweep keeps what a live part needs.
        self._inner: dict[Hashable, tuple[Hashable, ...]] = {}
        self._building: list[list[Hashable]] = []
        self.last_parts: tuple[Hashable, ...] = ()  # the parts the last resources() call used
        self.builds = 0  # resources built (not served from the memo), for metrics and tests

    def sweep(self, live: Iterable[Hashable]) -> None:
        """Keep only the `live` parts (those some served group uses) and the parts they are made of.

        Parts are keyed by every input their builder reads, so a stale one is never wrong, only unused;
        sweeping now and then bounds the memo to what the mesh currently needs."""
        memo, inner = self._memo, self._inner
        self._memo, self._inner = {}, {}
        todo = list(live)
        while todo:
            k = todo.pop()
            if k in self._memo or k not in memo:
                continue
            self._memo[k] = memo[k]
            made_of = inner.get(k)
            if made_of:
                self._inner[k] = made_of
                todo.extend(made_of)

    def _get(self, key: Hashable, type_url: str, name: str, build: Callable[[], Any]) -> Resource | None:
        def make() -> Resource | None:
            msg = build()
            return None if msg is None else Resource.from_message(type_url, name, msg)

        res: Resource | None = self._part(key, make)
        return res

    def _part(self, key: Hashable, build: Callable[[], Any], *, serialized: bool = True) -> Any:
        """A memoized serialized part (not a resource): shared by every resource composed from it.

        With serialized=False, a lookup structure derived from the policy: memoized and swept the same
        way, not counted in `builds`."""
        if self._building:
            self._building[-1].append(key)  # the part being built is made from this one
        found = self._memo.get(key, _MISSING)  # one lookup: keys may hold long tuples compared by value
        if found is not _MISSING:
            return found
        self._building.append([])
        try:
            value = build()
        except GenerationError:
            raise
        except Exception as e:
            raise GenerationError(key, e) from e
        finally:
            inner = self._building.pop()
        self.builds += serialized
        self._memo[key] = value
        if inner:
            self._inner[key] = tuple(inner)
        return value

    def resources(
        self, policy: ProxyPolicy, cert: CertMaterial, previous: ProxyResources | None = None
    ) -> ProxyResources:
        """The proxies' resources; `previous` (theirs before a change) shares what did not change."""
        self._building.append([])
        try:
            own, shared = self._resources(policy, cert)
            return ProxyResources.of(own, previous, shared)
        finally:
            self.last_parts = tuple(self._building.pop())

    def _resources(
        self, policy: ProxyPolicy, cert: CertMaterial
    ) -> tuple[list[Resource], dict[str, tuple[SharedSet, bytes]]]:
        """The group's own resources, and per type the shared set it also gets (with its insert)."""
        ident, td, tls = policy.identity, policy.trust_domain, policy.tls
        out: list[Resource | None] = []
        ob, ib = policy.outbound, policy.inbound
        get = self._get
        # CDS + EDS: shared sets of every identity with the same upstream clusters (in permissive mode,
        # every identity). A cluster differs between identities only in the name of the client
        # certificate, which each group inserts (see types.Composed).
        own_cert = self._part(("own-cert", ident), partial(clusters.own_certificate_field, ident))
        upstream = self._part(
            ("upstream", ob.clusters, tls, td), partial(self._upstream_parts, ob.clusters, tls, td)
        )
        # A cluster's framing depends only on the cluster parts (per service and its peers, not on
        # endpoints) and the length of own_cert.
        peers = self._part(("peers-of", ob.clusters), partial(_peers_of, ob.clusters), serialized=False)
        family = self._part(
            ("cds-family", peers, tls, td, len(own_cert)),
            partial(_cluster_family, upstream.clusters, len(own_cert)),
        )
        shared = {TYPE_CLUSTER: (family, own_cert), TYPE_ENDPOINT: (upstream.endpoints, b"")}
        for s in ib.services:
            out.append(
                get(
                    ("cds-local", s.service),
                    TYPE_CLUSTER,
                    s.service.local_cluster_name,
                    partial(clusters.local_cluster, s.service),
                )
            )
        for eg in ob.egress_ports:
            for host in eg.hosts if eg.protocol == "http" else ():
                if routes.egress_cluster_name(host.name, eg.port) != PASSTHROUGH_CLUSTER:
                    out.append(
                        get(
                            ("cds-egress", host.name, eg.port),
                            TYPE_CLUSTER,
                            routes.egress_cluster_name(host.name, eg.port),
                            partial(clusters.egress_cluster, host.name, eg.port),
                        )
                    )
        if ob.egress or any(_original_destination(eg) for eg in ob.egress_ports):
            out.append(
                get(
                    ("cds-passthrough",),
                    TYPE_CLUSTER,
                    PASSTHROUGH_CLUSTER,
                    clusters.passthrough_cluster,
                )
            )
        tracing = policy.tracing
        if tracing is not None:
            out.append(
                get(
                    ("cds-tracing", tracing),
                    TYPE_CLUSTER,
                    TRACING_CLUSTER,
                    partial(clusters.tracing_cluster, tracing),
                )
            )
        # LDS
        out.append(
            self._part(
                ("lds-out", ob.upstreams, ob.egress, ob.egress_ports, tracing),
                partial(self._outbound_listener, ob, tracing),
            )
        )
        out.append(
            get(
                ("lds-in", ib, tls, td, tracing),
                TYPE_LISTENER,
                inbound.INBOUND_LISTENER,
                partial(inbound.inbound_listener, ib, tls, td, tracing),
            )
        )
        # RDS
        by_port = self._part(
            ("rds-ports", ob.upstreams), partial(_http_by_port, ob.upstreams), serialized=False
        )
        for port, t in by_port:
            out.append(
                get(
                    ("rds-out", port, t, td),
                    TYPE_ROUTE,
                    routes.outbound_name(port),
                    partial(routes.outbound_route_config, port, t, td),
                )
            )
        for eg in ob.egress_ports:
            if eg.protocol == "http":
                out.append(
                    get(
                        ("rds-egress", eg),
                        TYPE_ROUTE,
                        routes.egress_name(eg.port),
                        partial(routes.egress_route_config, eg),
                    )
                )
        in_port: dict[int, list[InboundService]] = defaultdict(list)
        for s in ib.services:
            if s.service.protocol in HTTP_PROTOCOLS:
                in_port[s.service.target_port].append(s)
        for port, svcs in sorted(in_port.items()):
            ts = tuple(svcs)
            out.append(
                get(
                    ("rds-in", port, ts, td),
                    TYPE_ROUTE,
                    routes.inbound_name(port),
                    partial(routes.inbound_route_config, port, ts, td),
                )
            )
        ingress_port: dict[int, list[IngressRoute]] = defaultdict(list)
        for r in ib.ingress:
            ingress_port[r.service.target_port].append(r)
        for port, rs in sorted(ingress_port.items()):
            tr = tuple(rs)
            out.append(
                get(
                    ("rds-ingress", port, tr),
                    TYPE_ROUTE,
                    routes.ingress_name(port),
                    partial(routes.ingress_route_config, port, tr),
                )
            )
        # SDS
        out.append(
            get(
                ("sds-cert", ident, cert.cert_chain_pem, cert.key_pem),
                TYPE_SECRET,
                names.service_cert(ident),
                partial(secrets.service_cert_secret, ident, cert),
            )
        )
        if ob.clusters:
            out.append(
                get(
                    ("sds-out", cert.trust_bundle_pem),
                    TYPE_SECRET,
                    names.OUTBOUND_ROOT,
                    partial(secrets.outbound_root_secret, cert.trust_bundle_pem),
                )
            )
        out.append(
            get(
                ("sds-in", ident, cert.trust_bundle_pem),
                TYPE_SECRET,
                names.inbound_root(ident),
                partial(secrets.inbound_root_secret, ident, cert.trust_bundle_pem),
            )
        )
        return [r for r in out if r is not None], shared

    def _outbound_listener(self, ob: OutboundPolicy, tracing: Tracing | None) -> Resource | None:
        """outbound_listener's bytes, composed from a shared shell, the filter chains and the matcher's
        per-address entries.

        A change to one upstream (or to egress) rebuilds its own parts, not every chain of every
        proxy's listener. Repeated fields may be concatenated in any order relative to other fields.
        """
        if ob.egress_ports:  # an identity with Egress policies: built as a message
            built: Any = outbound.outbound_listener(ob, tracing)  # never None with egress ports
            body = built.SerializeToString(deterministic=True)
            return Resource.from_body(TYPE_LISTENER, outbound.OUTBOUND_LISTENER, body)
        chains = outbound.chain_addresses(ob.upstreams)
        if not chains and not ob.egress:
            return None
        shell = self._part(
            ("lds-out-shell", ob.egress),
            lambda: outbound.listener_shell(ob.egress).SerializeToString(deterministic=True),
        )
        body = [shell]
        for _, up in outbound.filter_chains(chains):
            key = ("lds-out-http", up.service.port, tracing) if outbound.is_http(up) else None
            body.append(
                self._part(
                    key or ("lds-out-tcp", up.service, up.clusters),
                    partial(_field, outbound.FILTER_CHAINS_FIELD, outbound.build_filter_chain, up, tracing),
                )
            )
        if chains:
            # per port, per chain: its on_match and its addresses' ranges, each a cached part
            ip_range, on_match = outbound.ip_range, outbound.chain_on_match
            by_port = outbound.addresses_by_port_and_chain(chains)
            body.append(
                outbound.compose_chain_matcher(
                    (
                        port,
                        [
                            (
                                self._part(("lds-out-chain", name), partial(on_match, name)),
                                [self._part(("lds-out-ip", ip), partial(ip_range, ip)) for ip in ips],
                            )
                            for name, ips in by_chain.items()
                        ],
                    )
                    for port, by_chain in by_port.items()
                )
            )
        return Resource.from_body(TYPE_LISTENER, outbound.OUTBOUND_LISTENER, b"".join(body))

    def _upstream_parts(
        self, upstream: tuple[UpstreamCluster, ...], tls: TLSSettings, td: str
    ) -> UpstreamParts:
        """Per upstream cluster its name and cluster parts, and their endpoints."""
        parts, eds = [], []
        for c in upstream:
            name = c.service.cluster_name
            parts.append(
                (
                    name,
                    self._part(
                        ("cds-parts", c.service, c.peer_identities, c.settings, tls, td),
                        partial(clusters.upstream_cluster_parts, c, tls, td),
                    ),
                )
            )
            eds.append(
                self._get(
                    ("eds", c.service, c.endpoints),
                    TYPE_ENDPOINT,
                    name,
                    partial(cla.cluster_load_assignment, c),
                )
            )
        return UpstreamParts(
            tuple(parts), SharedSet.of_resources(TYPE_ENDPOINT, (r for r in eds if r is not None))
        )


@dataclass(frozen=True, eq=False)
class UpstreamParts:
    clusters: tuple[tuple[str, tuple[bytes, bytes, bytes]], ...]  # name, clusters.upstream_cluster_parts
    endpoints: SharedSet


_MISSING = object()


class GenerationError(Exception):
    """A part of a proxy's config could not be built; the message names the objects it was built from."""

    def __init__(self, key: Hashable, cause: Exception) -> None:
        self.key = key
        self.cause = cause
        objects = objects_named(key)
        what = key[0] if isinstance(key, tuple) and key and isinstance(key[0], str) else "a part"
        super().__init__(
            f"building {what} from {', '.join(objects) or 'the mesh state'}: {type(cause).__name__}: {cause}"
        )


def objects_named(value: object, limit: int = 6) -> list[str]:
    """The Kubernetes objects a generator input refers to (services, service accounts), at most `limit`."""
    out: list[str] = []

    def walk(v: object, depth: int) -> None:
        if depth > 4 or len(out) >= limit:
            return
        name = None
        if isinstance(v, MeshService):
            name = f"Service {v.k8s} port {v.port}"
        elif isinstance(v, ServiceIdentity):
            name = f"ServiceAccount {v.k8s}"
        elif isinstance(v, Upstream):
            walk(v.service, depth + 1)
            if len(v.clusters) > 1 or (v.clusters and v.clusters[0].service != v.service):
                backends = ", ".join(w.service.name for w in v.clusters)
                name = f"the TrafficSplit of {v.service.k8s} (backends {backends})"
        elif isinstance(v, tuple | list):
            for item in v:
                walk(item, depth + 1)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            for f in dataclasses.fields(v):
                if not f.name.startswith("_"):
                    walk(getattr(v, f.name), depth + 1)
        if name is not None and name not in out:
            out.append(name)

    walk(value, 0)
    return out[:limit]


def _field(number: int, build: Callable[..., Any], *args: Any) -> bytes:
    """A repeated message field holding build(*args), serialized."""
    return wire.field_bytes(number, build(*args).SerializeToString(deterministic=True))


def _cluster_family(
    upstream: Iterable[tuple[str, tuple[bytes, bytes, bytes]]], own_certificate_len: int
) -> SharedSet:
    """The upstream clusters of every identity whose own-certificate field is this long: each framed
    as head + that field + tail (see clusters.compose_upstream_cluster)."""
    out = []
    for name, parts in upstream:
        base, common, sni = parts
        socket = clusters.socket_header(parts, own_certificate_len)
        body_len = len(base) + len(socket) + len(common) + own_certificate_len + len(sni)
        head = b"".join((wire.framed_any_head(TYPE_CLUSTER, body_len), base, socket, common))
        out.append((name, head, sni))
    return SharedSet.of_pieces(TYPE_CLUSTER, out)


def _peers_of(
    upstream: tuple[UpstreamCluster, ...],
) -> HashedTuple[tuple[MeshService, tuple[ServiceIdentity, ...], UpstreamSettings | None]]:
    """What the clusters' parts are built from (not their endpoints)."""
    return HashedTuple((c.service, c.peer_identities, c.settings) for c in upstream)


def _http_by_port(upstreams: tuple[Upstream, ...]) -> tuple[tuple[int, HashedTuple[Upstream]], ...]:
    """The HTTP upstreams with somewhere to go, by port (one outbound route configuration each)."""
    by_port: dict[int, list[Upstream]] = defaultdict(list)
    for up in upstreams:
        if up.service.protocol in HTTP_PROTOCOLS and up.addresses and sum(w.weight for w in up.clusters):
            by_port[up.service.port].append(up)
    return tuple((port, HashedTuple(ups)) for port, ups in sorted(by_port.items()))


def _original_destination(eg: EgressPort) -> bool:
    """Whether an egress port sends anything to the original-destination cluster."""
    return eg.protocol != "http" or any(
        routes.egress_cluster_name(h.name, eg.port) == PASSTHROUGH_CLUSTER for h in eg.hosts
    )
