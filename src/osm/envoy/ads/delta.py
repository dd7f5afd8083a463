"""Incremental (delta) ADS, sans I/O.

Each resource carries its own version (a content hash). The server tracks, per type, what the client
subscribed to (explicit names, or wildcard) and which version of each resource it has been sent; it
sends only resources whose version differs and names resources that went away in removed_resources.
Subscription changes are honoured even on a stale nonce; a NACK is logged and counted and the same
versions are not sent again (the fix goes out when the config changes).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from osm.envoy import wire
from osm.envoy.ads.sotw import Counters
from osm.envoy.types import (
    ORDER,
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    WILDCARD_TYPES,
    ProxyResources,
    Resource,
    delta_parts,
)

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class DeltaRequest:
    type_url: str
    subscribe: tuple[str, ...] = ()
    unsubscribe: tuple[str, ...] = ()
    initial_versions: Mapping[str, str] = field(default_factory=dict)
    nonce: str = ""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeltaResponse:
    type_url: str
    nonce: str
    names: tuple[str, ...]  # the resources sent, from `source`
    removed: tuple[str, ...]
    system_version: str
    source: Mapping[str, Resource] = field(default_factory=dict, repr=False, compare=False)

    @property
    def resources(self) -> tuple[Resource, ...]:
        """The resources sent (made if pieced: for inspection, not for serving)."""
        return tuple(self.source[n] for n in self.names)

    def encode(self) -> bytes:
        return wire.delta_discovery_response(
            self.system_version,
            self.type_url,
            self.nonce,
            delta_parts(self.source, self.names),
            self.removed,
        )


@dataclass
class DeltaTypeState:
    """What the client subscribed to and was sent. `names` and `known` may be a group's shared views
    (read-only): a proxy subscribed to, and sent, all of a type (most are) keeps references, not copies
    of a thousand names. They are replaced, never changed in place."""

    wildcard: bool = False
    names: AbstractSet[str] = frozenset()
    known: Mapping[str, str] = field(default_factory=dict)  # name -> version the client was sent
    force: set[str] = field(default_factory=set)  # names to (re)send even at an unchanged version
    nonce: str = ""
    last_error: str = ""


class DeltaStream:
    def __init__(self, nonces: Iterator[int] | None = None) -> None:
        self.types: dict[str, DeltaTypeState] = {}
        self.counters = Counters()
        self._nonces = nonces if nonces is not None else itertools.count(1)
        self.last_nack: tuple[str, str, str] | None = None  # (type_url, version (none in delta), message)
        self._system_version = 0
        self.hold: frozenset[str] = frozenset()  # new EDS clusters whose endpoints must go out before routes

    def on_request(self, req: DeltaRequest, resources: ProxyResources) -> list[DeltaResponse]:
        if req.type_url not in ORDER:
            return []
        self.counters.requests += 1
        st = self.types.get(req.type_url)
        first = st is None
        if st is None:
            st = self.types[req.type_url] = DeltaTypeState(known=dict(req.initial_versions))
            if not req.subscribe and req.type_url in WILDCARD_TYPES:
                st.wildcard = True  # legacy wildcard: the first request names nothing
        elif req.nonce and req.nonce != st.nonce:
            self.counters.stale += 1  # subscription changes below are still honoured
        if req.error is not None:
            self.counters.nacks += 1
            st.last_error = req.error
            self.last_nack = (req.type_url, "", req.error)
        elif req.nonce:
            self.counters.acks += 1
        if req.subscribe or req.unsubscribe:
            names = set(st.names)
            for n in req.subscribe:
                if n == WILDCARD:
                    st.wildcard = True
                else:
                    names.add(n)
                    st.force.add(n)
            dropped = {n for n in req.unsubscribe if n != WILDCARD}
            if WILDCARD in req.unsubscribe:
                st.wildcard = False
            if dropped:
                names -= dropped
                st.force -= dropped
                st.known = {n: v for n, v in st.known.items() if n not in dropped}
            every = resources.names(req.type_url)
            st.names = every if names == every else names
        if not first and not req.subscribe and not req.unsubscribe:
            return []  # an ACK or NACK: nothing new was asked for
        resp = self._diff(req.type_url, st, resources, answer_missing=set(req.subscribe))
        if resp is None and first:
            resp = self._empty(req.type_url, st)  # the client waits for a first answer to finish warming
        out = [] if resp is None else [resp]
        if self.hold and req.type_url in (TYPE_ENDPOINT, TYPE_CLUSTER):
            eds = self.types.get(TYPE_ENDPOINT)
            covered = eds is not None and all(n in eds.known for n in self.hold)
            gone = not (self.hold & resources.names(TYPE_ENDPOINT))
            if covered or gone:
                self.hold = frozenset()
                out += self._push(resources, (TYPE_LISTENER, TYPE_ROUTE))
        return out

    def _empty(self, type_url: str, st: DeltaTypeState) -> DeltaResponse:
        st.nonce = str(next(self._nonces))
        self.counters.responses += 1
        return DeltaResponse(type_url, st.nonce, (), (), str(self._system_version))

    def _diff(
        self,
        type_url: str,
        st: DeltaTypeState,
        resources: ProxyResources,
        answer_missing: set[str] | None = None,
    ) -> DeltaResponse | None:
        available = resources.get(type_url)
        versions = resources.version_map(type_url)  # read without making composed resources
        every = resources.names(type_url)
        wanted = every if st.wildcard or st.names is every else st.names & every
        known = st.known
        if known is versions:  # the client holds exactly these resources, as sent
            changed, removed = sorted(st.force & wanted), []
        else:
            get = known.get
            changed = sorted(n for n in wanted if get(n) != versions[n] or n in st.force)
            removed = sorted(n for n in known if n not in wanted)
        if answer_missing:
            removed = sorted(
                set(removed) | {n for n in answer_missing if n != WILDCARD and n not in available}
            )
        st.force.clear()
        if not changed and not removed:
            return None
        # The client now holds exactly the wanted resources at these versions: when it wants them all,
        # that is the group's version map itself.
        st.known = versions if len(wanted) == len(versions) else {n: versions[n] for n in wanted}
        st.nonce = str(next(self._nonces))
        self._system_version += 1
        self.counters.responses += 1
        return DeltaResponse(
            type_url, st.nonce, tuple(changed), tuple(removed), str(self._system_version), available
        )

    def on_update(self, resources: ProxyResources) -> list[DeltaResponse]:
        return self._push(resources, ORDER)

    def _push(self, resources: ProxyResources, types: tuple[str, ...]) -> list[DeltaResponse]:
        out: list[DeltaResponse] = []
        changed_clusters: set[str] = set()
        for type_url in types:
            st = self.types.get(type_url)
            if st is None:
                continue
            if self.hold and type_url in (TYPE_LISTENER, TYPE_ROUTE):
                continue  # held until the new clusters' endpoints went out
            if type_url == TYPE_ENDPOINT and changed_clusters:
                st.force |= changed_clusters & st.names  # an updated cluster warms until it gets its CLA
            resp = self._diff(type_url, st, resources)
            if resp is not None:
                out.append(resp)
                if type_url == TYPE_CLUSTER:
                    changed_clusters = set(resp.names)
                    eds = self.types.get(TYPE_ENDPOINT)
                    new_eds = changed_clusters & resources.names(TYPE_ENDPOINT)
                    unasked = new_eds - eds.names if eds is not None and not eds.wildcard else frozenset()
                    if unasked:
                        self.hold = frozenset(unasked)
        return out
