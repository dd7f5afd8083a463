"""Type URLs, the serialized Resource shared between proxies, and a proxy's resource set."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from osm.envoy import wire

TYPE_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
TYPE_ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
TYPE_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
TYPE_ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
TYPE_SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

# Push order: make before break (CDS -> EDS -> LDS -> RDS), secrets last as OSM does.
ORDER = (TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE, TYPE_SECRET)
WILDCARD_TYPES = frozenset({TYPE_CLUSTER, TYPE_LISTENER})
SHORT = {
    TYPE_CLUSTER: "CDS",
    TYPE_ENDPOINT: "EDS",
    TYPE_LISTENER: "LDS",
    TYPE_ROUTE: "RDS",
    TYPE_SECRET: "SDS",
}


@dataclass(frozen=True, slots=True)
class Resource:
    """One serialized xDS resource, versioned by its content. Shared by every proxy that needs it."""

    name: str
    type_url: str
    framed: bytes  # packed in google.protobuf.Any, framed as a response field (wire.framed_any)
    version: str  # content hash

    @staticmethod
    def from_message(type_url: str, name: str, msg: Any) -> Resource:
        return Resource.from_body(type_url, name, msg.SerializeToString(deterministic=True))

    @staticmethod
    def from_body(type_url: str, name: str, body: bytes) -> Resource:
        """From the serialized message (e.g. composed from shared serialized parts)."""
        return Resource.from_framed(type_url, name, wire.framed_any(type_url, body))

    @staticmethod
    def from_framed(type_url: str, name: str, framed: bytes) -> Resource:
        """From a wire.framed_any result."""
        return Resource(name, type_url, framed, hashlib.blake2b(framed, digest_size=8).hexdigest())

    @property
    def any_bytes(self) -> bytes:
        """The packed Any (a copy: for inspection, not for serving)."""
        return wire.unframe(self.framed)

    def delta_parts(self) -> list[bytes]:
        """This resource as a DeltaDiscoveryResponse.resources field, in pieces (see wire)."""
        return wire.delta_resource_parts(self.name, self.version, self.framed)


def content_version(resources: Iterable[Resource]) -> str:
    """SotW version of a set of resources: a hash of their names and versions (names are unique and
    NUL sorts first, so the sorted lines are in name order)."""
    lines = sorted([r.name + "\0" + r.version for r in resources])
    return hashlib.blake2b("\n".join(lines).encode(), digest_size=8).hexdigest()


_T = TypeVar("_T")


def _same(old: Mapping[str, Resource], new: dict[str, Resource]) -> bool:
    """The same names mapped to the same Resource objects."""
    return len(old) == len(new) and all(old.get(n) is r for n, r in new.items())


@dataclass(frozen=True)
class ProxyResources:
    """Every resource one proxy may be served, by type URL and name, with a content version per type."""

    by_type: Mapping[str, Mapping[str, Resource]]
    versions: Mapping[str, str]

    @staticmethod
    def of(resources: Iterable[Resource], previous: ProxyResources | None = None) -> ProxyResources:
        """`previous` (the same proxies' resources before a change) lends its maps, versions and views
        to every type whose resources are the very same objects, so an unchanged type costs no rehash."""
        by_type: dict[str, dict[str, Resource]] = {t: {} for t in ORDER}
        for r in resources:
            if r.name in by_type[r.type_url]:
                continue  # duplicate names are dropped before sending (a client NACKs them)
            by_type[r.type_url][r.name] = r
        maps: dict[str, Mapping[str, Resource]] = {}
        versions: dict[str, str] = {}
        for t, v in by_type.items():
            old = previous.by_type.get(t) if previous is not None else None
            if previous is not None and old is not None and _same(old, v):
                maps[t], versions[t] = old, previous.versions[t]
            else:
                maps[t], versions[t] = MappingProxyType(v), content_version(v.values())
        out = ProxyResources(MappingProxyType(maps), MappingProxyType(versions))
        if previous is not None:
            views = previous.__dict__.get("_views", {})
            out.__dict__["_views"] = {k: v for k, v in views.items() if maps[k[1]] is previous.by_type[k[1]]}
        return out

    def get(self, type_url: str) -> Mapping[str, Resource]:
        return self.by_type.get(type_url, MappingProxyType({}))

    # Views of a whole type, computed once and shared by every stream this object is served to (a
    # stream that is sent all of a type, as most are, keeps references to these instead of copies).

    def sorted_all(self, type_url: str) -> tuple[Resource, ...]:
        """Every resource of the type, by name (their content version is versions[type_url])."""
        return self._view("sorted", type_url, lambda m: tuple(m[n] for n in sorted(m)))

    def names(self, type_url: str) -> frozenset[str]:
        return self._view("names", type_url, frozenset)

    def version_map(self, type_url: str) -> Mapping[str, str]:
        """Resource name -> content version, read-only."""
        return self._view(
            "versions", type_url, lambda m: MappingProxyType({n: r.version for n, r in m.items()})
        )

    def _view(self, kind: str, type_url: str, make: Callable[[Mapping[str, Resource]], _T]) -> _T:
        cache: dict[tuple[str, str], Any] = self.__dict__.setdefault("_views", {})
        key = (kind, type_url)
        if key not in cache:
            cache[key] = make(self.get(type_url))
        got: _T = cache[key]
        return got
