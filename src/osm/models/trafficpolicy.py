"""The catalog's output: per-identity inbound and outbound traffic policies (plain frozen data)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from osm.models.identity import ServiceIdentity
from osm.models.service import Endpoint, MeshService

ANY_PRINCIPAL = "*"

_T = TypeVar("_T")


class HashedTuple(tuple[_T, ...]):
    """A tuple that computes its hash once. A permissive proxy's upstreams (a thousand of them) key
    several memo lookups per proxy; a plain tuple would rehash every element each time."""

    _hash: int

    def __new__(cls, items: Iterable[_T] = ()) -> HashedTuple[_T]:
        out = super().__new__(cls, items)
        out._hash = tuple.__hash__(out)
        return out

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True, order=True)
class RetryPolicy:
    """A route's retry policy as Envoy carries it (durations in milliseconds)."""

    retry_on: str  # Envoy's comma-separated retry conditions
    per_try_timeout_ms: int
    num_retries: int
    backoff_base_ms: int


MAX_U32 = 2**32 - 1


@dataclass(frozen=True, slots=True, order=True)
class ConnectionSettings:
    """An UpstreamTrafficSetting's connection limits, on every client's cluster for its service (Envoy's
    circuit-breaker thresholds; 0 requests per connection: no limit)."""

    max_connections: int = MAX_U32
    connect_timeout_ms: int = 5000
    max_requests: int = MAX_U32
    max_requests_per_connection: int = 0
    max_pending_requests: int = MAX_U32
    max_retries: int = MAX_U32


@dataclass(frozen=True, slots=True, order=True)
class OutlierDetection:
    """Ejection of an endpoint after consecutive 5xx answers (Envoy's outlier detection)."""

    consecutive_errors: int
    interval_ms: int
    base_ejection_ms: int
    max_ejection_percent: int


@dataclass(frozen=True, slots=True, order=True)
class UpstreamSettings:
    """What an UpstreamTrafficSetting puts on the clients' clusters of its service."""

    connection: ConnectionSettings | None = None
    outlier: OutlierDetection | None = None


@dataclass(frozen=True, slots=True, order=True)
class TCPRateLimit:
    """A token bucket of connections on the server's inbound filter chain."""

    connections: int
    fill_interval_ms: int
    burst: int = 0


@dataclass(frozen=True, slots=True, order=True)
class HTTPRateLimit:
    """A token bucket of requests, on the server's virtual host or one route; answered `status`."""

    requests: int
    fill_interval_ms: int
    burst: int = 0
    status: int = 429
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class WeightedCluster:
    service: MeshService  # the backend whose cluster receives this share
    weight: int


@dataclass(frozen=True, slots=True, order=True)
class Upstream:
    """One outbound service port: how the outbound listener matches it and where it goes."""

    service: MeshService  # as the client addresses it (the apex of a split)
    addresses: tuple[str, ...]  # resolvable IPs: the ClusterIP, or pod IPs for a headless service
    clusters: tuple[WeightedCluster, ...]
    same_namespace: bool
    retry: RetryPolicy | None = None  # the client's Retry policy for this service (enableRetryPolicy)
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # Tuples of upstreams key the generator's listener and route memo: hash each once.
        object.__setattr__(
            self,
            "_hash",
            hash((self.service, self.addresses, self.clusters, self.same_namespace, self.retry)),
        )

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True, order=True)
class UpstreamCluster:
    """An EDS cluster for a backend service port, with the peer identities its certificate must carry."""

    service: MeshService
    peer_identities: tuple[ServiceIdentity, ...]
    endpoints: tuple[Endpoint, ...]
    settings: UpstreamSettings | None = None  # from the service's UpstreamTrafficSetting
    # A headless Service whose pods each have their own name (a StatefulSet's): a connection goes to the
    # pod the client dialed (as Kubernetes does for headless Services), not to any of the service's pods.
    per_pod: bool = False
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # A proxy's tuple of upstream clusters keys the generator's shared parts: hash each once.
        object.__setattr__(
            self,
            "_hash",
            hash((self.service, self.peer_identities, self.endpoints, self.settings, self.per_pod)),
        )

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True, order=True)
class EgressHost:
    """An HTTP egress host (its virtual host) with the routes allowed to it; no routes: any request."""

    name: str
    routes: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = ()  # (path regex, method, headers)


@dataclass(frozen=True, slots=True, order=True)
class EgressPort:
    """What an identity's Egress policies allow on one destination port outside the mesh."""

    port: int
    protocol: str  # http | https | tcp | tcp-server-first
    hosts: tuple[EgressHost, ...] = ()  # http: by Host header; https: by SNI (names only)
    ip_ranges: tuple[str, ...] = ()  # tcp: destination ranges; empty: any address on the port

    @property
    def chain_name(self) -> str:
        return f"outbound-egress-{self.protocol}.{self.port}"


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    identity: ServiceIdentity
    upstreams: tuple[Upstream, ...]
    clusters: tuple[UpstreamCluster, ...]
    egress: bool
    egress_ports: tuple[EgressPort, ...] = ()  # from the identity's Egress policies


@dataclass(frozen=True, slots=True, order=True)
class HTTPRouteRule:
    """One inbound route: an RE2 path regex, one method ("*" for any), header regexes, allowed principals."""

    path_regex: str
    method: str
    headers: tuple[tuple[str, str], ...]
    principals: tuple[str, ...]  # sorted; ("*",) allows any authenticated peer


@dataclass(frozen=True, slots=True, order=True)
class InboundVirtualHost:
    service: MeshService  # whose hostnames the virtual host answers (a backend, or the apex of its split)
    routes: tuple[HTTPRouteRule, ...]
    rate_limit: HTTPRateLimit | None = None  # the service's UpstreamTrafficSetting, per virtual host
    route_limits: tuple[tuple[str, HTTPRateLimit], ...] = ()  # per route: its path regex, its limit


@dataclass(frozen=True, slots=True, order=True)
class NetworkRBACPolicy:
    """One TrafficTarget's grant on the inbound filter chains: sources, and ports (empty = any)."""

    name: str
    principals: tuple[str, ...]
    ports: tuple[int, ...]


@dataclass(frozen=True, slots=True, order=True)
class InboundService:
    service: MeshService  # a service port backed by this proxy's pod
    virtual_hosts: tuple[InboundVirtualHost, ...]  # HTTP/gRPC only
    tcp_rate_limit: TCPRateLimit | None = None  # connections, on the service's inbound filter chain

    @property
    def http_rate_limited(self) -> bool:
        return any(vh.rate_limit is not None or vh.route_limits for vh in self.virtual_hosts)


@dataclass(frozen=True, slots=True, order=True)
class IngressRoute:
    """Traffic from outside the mesh to a service port this proxy's pod backs (an IngressBackend):
    plaintext HTTP from the source ranges, or HTTPS (the service's certificate) from the principals."""

    service: MeshService
    protocol: str  # http | https
    source_ranges: tuple[str, ...]  # CIDRs allowed to connect; empty: any source
    principals: tuple[str, ...] = ()  # https: the client certificates' principals allowed ("*": any)
    sni_hosts: tuple[str, ...] = ()
    require_client_cert: bool = True


@dataclass(frozen=True, slots=True)
class InboundPolicy:
    identity: ServiceIdentity
    services: tuple[InboundService, ...]
    network_rbac: tuple[NetworkRBACPolicy, ...] | None  # None in permissive mode (no network RBAC filter)
    ingress: tuple[IngressRoute, ...] = ()
    # The Services whose endpoints are ingress sources: a change of their endpoints changes this policy
    ingress_sources: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class TLSSettings:
    min_version: str
    max_version: str


@dataclass(frozen=True, slots=True)
class Tracing:
    """Where the sidecars send Zipkin spans (MeshConfig observability.tracing, when enabled)."""

    address: str  # a DNS name or an IP
    port: int
    endpoint: str  # the collector's path, e.g. /api/v2/spans
    sampling: float = 100.0  # percent of requests traced


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """Everything the generators need for one proxy group (identity + the services its pod backs)."""

    identity: ServiceIdentity
    trust_domain: str
    tls: TLSSettings
    inbound: InboundPolicy
    outbound: OutboundPolicy
    tracing: Tracing | None = None
