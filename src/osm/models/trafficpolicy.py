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
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # A proxy's tuple of upstream clusters keys the generator's shared parts: hash each once.
        object.__setattr__(self, "_hash", hash((self.service, self.peer_identities, self.endpoints)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    identity: ServiceIdentity
    upstreams: tuple[Upstream, ...]
    clusters: tuple[UpstreamCluster, ...]
    egress: bool


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


@dataclass(frozen=True, slots=True)
class InboundPolicy:
    identity: ServiceIdentity
    services: tuple[InboundService, ...]
    network_rbac: tuple[NetworkRBACPolicy, ...] | None  # None in permissive mode (no network RBAC filter)


@dataclass(frozen=True, slots=True)
class TLSSettings:
    min_version: str
    max_version: str


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """Everything the generators need for one proxy group (identity + the services its pod backs)."""

    identity: ServiceIdentity
    trust_domain: str
    tls: TLSSettings
    inbound: InboundPolicy
    outbound: OutboundPolicy
