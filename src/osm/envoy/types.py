"""Type URLs, the serialized Resource shared between proxies, and a proxy's resource set.

A type's resources that many proxy groups share (a SharedSet) are held once; a group sees them through a
Composed map, which adds the group's own resources and, for clusters, its own certificate's name.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
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
    # wire.delta_envelope of this resource, made when a delta stream first sends it
    _delta: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)

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

    def delta_parts(self) -> tuple[bytes, bytes, bytes]:
        """This resource as a DeltaDiscoveryResponse.resources field, in pieces (see wire). The envelope
        is made once: a resource shared by many proxies is sent to each."""
        env = self._delta
        if env is None:
            env = wire.delta_envelope(self.name, self.version, len(self.framed))
            object.__setattr__(self, "_delta", env)
        return env[0], self.framed, env[1]


def content_version(resources: Iterable[Resource]) -> str:
    """SotW version of a set of resources: a hash of their names and versions (names are unique and
    NUL sorts first, so the sorted lines are in name order)."""
    return _hash_lines([r.name + "\0" + r.version for r in resources])


def _hash_lines(lines: list[str]) -> str:
    lines.sort()
    return hashlib.blake2b("\n".join(lines).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, eq=False)
class SharedSet:
    """Resources of one type that many proxy groups share, whole or but for one insert each.

    Either `resources` are the shared objects themselves, or `pieces` hold each resource's framed bytes
    around the place where a group inserts its own bytes (a cluster's own-certificate field): head +
    insert + tail. Versions ignore the insert. A group's insert is made from its identity, which never
    changes for a connected proxy, so for one proxy a resource's bytes change exactly when its pieces do.
    """

    type_url: str
    versions: Mapping[str, str]  # name -> version
    version: str  # content_version of every (name, version)
    order: tuple[str, ...]  # the names, sorted
    resources: Mapping[str, Resource] = field(default_factory=lambda: MappingProxyType({}))
    pieces: Mapping[str, tuple[bytes, bytes]] = field(default_factory=lambda: MappingProxyType({}))

    @staticmethod
    def of_resources(type_url: str, resources: Iterable[Resource]) -> SharedSet:
        """Shared resources (the first of a name wins)."""
        by_name: dict[str, Resource] = {}
        for r in resources:
            by_name.setdefault(r.name, r)
        versions = {n: r.version for n, r in by_name.items()}
        return SharedSet._of(type_url, versions, resources=MappingProxyType(by_name))

    @staticmethod
    def of_pieces(type_url: str, pieces: Iterable[tuple[str, bytes, bytes]]) -> SharedSet:
        """Resources framed as head + insert + tail, by name (the first of a name wins)."""
        by_name: dict[str, tuple[bytes, bytes]] = {}
        for name, head, tail in pieces:
            by_name.setdefault(name, (head, tail))
        versions = {
            n: hashlib.blake2b(head + b"\0" + tail, digest_size=8).hexdigest()
            for n, (head, tail) in by_name.items()
        }
        return SharedSet._of(type_url, versions, pieces=MappingProxyType(by_name))

    @staticmethod
    def _of(
        type_url: str,
        versions: dict[str, str],
        *,
        resources: Mapping[str, Resource] = MappingProxyType({}),
        pieces: Mapping[str, tuple[bytes, bytes]] = MappingProxyType({}),
    ) -> SharedSet:
        """The set of these names and versions, holding `resources` or `pieces`."""
        frozen = MappingProxyType(versions)
        return SharedSet(type_url, frozen, _version_of(versions), tuple(sorted(versions)), resources, pieces)

    @cached_property
    def segments(self) -> tuple[bytes, ...]:
        """The pieces between the inserts: every resource in `order` is insert.join(segments)."""
        if not self.order:
            return ()
        pieces = [self.pieces[n] for n in self.order]
        out = [pieces[0][0]]
        out += [tail + head for (_, tail), (head, _) in itertools.pairwise(pieces)]
        out.append(pieces[-1][1])
        return tuple(out)

    @cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self.order)

    def delta_pieces(self, insert_len: int) -> Mapping[str, tuple[bytes, bytes, bytes]]:
        """Per name, a pieced resource as a delta Resource field around an insert of this length:
        (envelope head, piece head) + insert + tail. Made once per length (the groups sharing a set of
        pieces have inserts of one length), so a delta stream makes no resource to send one."""
        made = self._delta_pieces.get(insert_len)
        if made is None:
            made = {}
            for n, (head, tail) in self.pieces.items():
                env_head, env_tail = wire.delta_envelope(
                    n, self.versions[n], len(head) + insert_len + len(tail)
                )
                made[n] = (env_head, head, tail + env_tail)
            self._delta_pieces[insert_len] = made
        return made

    @cached_property
    def _delta_pieces(self) -> dict[int, dict[str, tuple[bytes, bytes, bytes]]]:
        return {}

    @cached_property
    def joined(self) -> bytes:
        """Every shared resource's framed bytes, in `order` (a set without inserts)."""
        return b"".join(self.resources[n].framed for n in self.order)


def _version_of(versions: Mapping[str, str]) -> str:
    """content_version from names and versions."""
    return _hash_lines([n + "\0" + v for n, v in versions.items()])


class Composed(Mapping[str, Resource]):
    """One proxy group's resources of a type: a SharedSet (with the group's insert) and its own.

    A shared resource that needs the insert is made when first looked up, so serving the whole type
    (framed_whole) makes none of them: a permissive mesh's thousand clusters per identity live once."""

    __slots__ = ("_made", "insert", "own", "shared")

    def __init__(self, shared: SharedSet, insert: bytes, own: Mapping[str, Resource]) -> None:
        self.shared, self.insert = shared, insert
        # The group's own resources; a shared one of the same name wins (duplicates are dropped).
        self.own: Mapping[str, Resource] = MappingProxyType(
            {n: r for n, r in own.items() if n not in shared.versions}
        )
        self._made: dict[str, Resource] = {}

    def __getitem__(self, name: str) -> Resource:
        r = self.own.get(name)
        if r is not None:
            return r
        sh = self.shared
        if not sh.pieces:
            return sh.resources[name]
        made = self._made.get(name)
        if made is None:
            head, tail = sh.pieces[name]
            made = self._made[name] = Resource(
                name, sh.type_url, head + self.insert + tail, sh.versions[name]
            )
        return made

    def __contains__(self, name: object) -> bool:
        return name in self.own or name in self.shared.versions

    def __iter__(self) -> Iterator[str]:
        yield from self.shared.order
        yield from self.own

    def __len__(self) -> int:
        return len(self.shared.order) + len(self.own)

    def same_as(self, other: Mapping[str, Resource]) -> bool:
        return (
            isinstance(other, Composed)
            and other.shared is self.shared
            and other.insert == self.insert
            and _same(other.own, dict(self.own))
        )

    def content_version(self) -> str:
        if not self.own:
            return self.shared.version
        mine = content_version(self.own.values())
        return hashlib.blake2b(f"{self.shared.version}\n{mine}".encode(), digest_size=8).hexdigest()

    def version_map(self) -> Mapping[str, str]:
        if not self.own:
            return self.shared.versions
        return _Union({n: r.version for n, r in self.own.items()}, self.shared.versions)

    def framed_whole(self) -> list[bytes]:
        """Every resource's framed bytes, the shared ones first (in one piece), then the group's own by
        name. A response may list resources in any order."""
        sh, own = self.shared, self.own
        first = self.insert.join(sh.segments) if sh.pieces else sh.joined
        return [first, *(own[n].framed for n in sorted(own))]

    def ordered(self) -> list[Resource]:
        """The resources in framed_whole's order (made: for inspection, not for serving)."""
        return [self[n] for n in self.shared.order] + [self.own[n] for n in sorted(self.own)]

    def delta_parts(self, names: Iterable[str]) -> list[bytes]:
        """The named resources as delta Resource fields, in pieces, without making a pieced one."""
        own, sh = self.own, self.shared
        out: list[bytes] = []
        pieces = sh.delta_pieces(len(self.insert)) if sh.pieces else None
        for n in names:
            r = own.get(n)
            if r is not None:
                out += r.delta_parts()
            elif pieces is not None:
                env_head, head, tail = pieces[n]
                out += (env_head, head, self.insert, tail)
            else:
                out += sh.resources[n].delta_parts()
        return out


class _Union(Mapping[str, str]):
    """Two mappings with no common keys, read as one."""

    __slots__ = ("a", "b")

    def __init__(self, a: Mapping[str, str], b: Mapping[str, str]) -> None:
        self.a, self.b = a, b

    def __getitem__(self, key: str) -> str:
        v = self.a.get(key)
        return self.b[key] if v is None else v

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        v = self.a.get(key)
        return self.b.get(key, default) if v is None else v

    def __contains__(self, key: object) -> bool:
        return key in self.a or key in self.b

    def __iter__(self) -> Iterator[str]:
        yield from self.b
        yield from self.a

    def __len__(self) -> int:
        return len(self.a) + len(self.b)


def changed_names(old: Mapping[str, str], new: Mapping[str, str]) -> set[str]:
    """The names whose version in `new` is not their version in `old` (name -> version maps, as
    version_map gives them). A shared set's part that both maps hold is not compared name by name."""
    if new is old:
        return set()
    if isinstance(new, _Union):
        if isinstance(old, _Union) and old.b is new.b:
            return changed_names(old.a, new.a)  # a name of new.a is not in new.b, so not in old.b
        if new.b is old:
            return set(new.a)
        return changed_names(old, new.a) | changed_names(old, new.b)
    if isinstance(old, _Union) and old.b is new:
        return set()
    get = old.get
    return {n for n, v in new.items() if get(n) != v}


class WholeType(Sequence[Resource]):
    """Every resource of one type of a ProxyResources, for a response: its length and its framed bytes
    without making the resources a Composed type would have to make. By name, or for a Composed type in
    Composed.framed_whole's order."""

    __slots__ = ("res", "type_url")

    def __init__(self, res: ProxyResources, type_url: str) -> None:
        self.res, self.type_url = res, type_url

    def __len__(self) -> int:
        return len(self.res.get(self.type_url))

    def __getitem__(self, i: int) -> Resource:  # type: ignore[override]
        return self._listed()[i]

    def __iter__(self) -> Iterator[Resource]:
        return iter(self._listed())

    def _listed(self) -> Sequence[Resource]:
        m = self.res.get(self.type_url)
        return m.ordered() if isinstance(m, Composed) else self.res.sorted_all(self.type_url)

    def framed(self) -> list[bytes]:
        m = self.res.get(self.type_url)
        if isinstance(m, Composed):
            return m.framed_whole()
        return [r.framed for r in self.res.sorted_all(self.type_url)]


_T = TypeVar("_T")


def delta_parts(m: Mapping[str, Resource], names: Iterable[str]) -> list[bytes]:
    """The named resources of a type's map as delta Resource fields, in pieces (see wire)."""
    if isinstance(m, Composed):
        return m.delta_parts(names)
    out: list[bytes] = []
    for n in names:
        out += m[n].delta_parts()
    return out


def _names(m: Mapping[str, Resource]) -> frozenset[str]:
    if isinstance(m, Composed) and not m.own:
        return m.shared.names  # every group of the set shares it
    return frozenset(m)


def _version_map(m: Mapping[str, Resource]) -> Mapping[str, str]:
    if isinstance(m, Composed):
        return m.version_map()
    return MappingProxyType({n: r.version for n, r in m.items()})


def _same(old: Mapping[str, Resource], new: dict[str, Resource]) -> bool:
    """The same names mapped to the same Resource objects."""
    return len(old) == len(new) and all(old.get(n) is r for n, r in new.items())


@dataclass(frozen=True)
class ProxyResources:
    """Every resource one proxy may be served, by type URL and name, with a content version per type."""

    by_type: Mapping[str, Mapping[str, Resource]]
    versions: Mapping[str, str]

    @staticmethod
    def of(
        resources: Iterable[Resource],
        previous: ProxyResources | None = None,
        shared: Mapping[str, tuple[SharedSet, bytes]] | None = None,
    ) -> ProxyResources:
        """`previous` (the same proxies' resources before a change) lends its maps, versions and views
        to every type whose resources are the very same objects, so an unchanged type costs no rehash.
        `shared` gives a type's shared set and this group's insert (see Composed); `resources` of that
        type are the group's own, after the shared ones."""
        by_type: dict[str, dict[str, Resource]] = {t: {} for t in ORDER}
        for r in resources:
            if r.name in by_type[r.type_url]:
                continue  # duplicate names are dropped before sending (a client NACKs them)
            by_type[r.type_url][r.name] = r
        maps: dict[str, Mapping[str, Resource]] = {}
        versions: dict[str, str] = {}
        for t, v in by_type.items():
            old = previous.by_type.get(t) if previous is not None else None
            if shared is not None and t in shared:
                composed = Composed(*shared[t], v)
                if previous is not None and old is not None and composed.same_as(old):
                    maps[t], versions[t] = old, previous.versions[t]
                else:
                    maps[t], versions[t] = composed, composed.content_version()
            elif previous is not None and old is not None and _same(old, v):
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

    def whole(self, type_url: str) -> WholeType:
        """Every resource of the type for a response, made only if looked at (see WholeType)."""
        return WholeType(self, type_url)

    def names(self, type_url: str) -> frozenset[str]:
        return self._view("names", type_url, _names)

    def version_map(self, type_url: str) -> Mapping[str, str]:
        """Resource name -> content version, read-only."""
        return self._view("versions", type_url, _version_map)

    def _view(self, kind: str, type_url: str, make: Callable[[Mapping[str, Resource]], _T]) -> _T:
        cache: dict[tuple[str, str], Any] = self.__dict__.setdefault("_views", {})
        key = (kind, type_url)
        if key not in cache:
            cache[key] = make(self.get(type_url))
        got: _T = cache[key]
        return got
