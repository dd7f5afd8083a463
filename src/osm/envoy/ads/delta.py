"""Incremental (delta) ADS, sans I/O.

Each resource carries its own version (a content hash). The server tracks, per type, what the client
subscribed to (explicit names, or wildcard) and which version of each resource it has been sent; it
sends only resources whose version differs and names resources that went away in removed_resources.
Subscription changes are honoured even on a stale nonce. A NACK follows the rule in order.py: the
resources of the rejected response count as not held, and each is sent again once its version
changes. On a reconnect, `initial_resource_versions` tell what the client holds, for every type.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from osm.envoy import wire
from osm.envoy.ads.order import HELD_TYPES, MakeBeforeBreak
from osm.envoy.ads.sotw import Counters, LimitExceeded
from osm.envoy.types import (
    ORDER,
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
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
    sent: Mapping[str, str] = field(default_factory=dict)  # what the response of `nonce` carried
    rejected: dict[str, str] = field(default_factory=dict)  # name -> version the client NACKed
    last_error: str = ""


class DeltaStream:
    def __init__(self, nonces: Iterator[int] | None = None, *, max_names: int = 0) -> None:
        self.types: dict[str, DeltaTypeState] = {}
        self.counters = Counters()
        self._nonces = nonces if nonces is not None else itertools.count(1)
        self.last_nack: tuple[str, str, str] | None = None  # (type_url, version (none in delta), message)
        self.last_unknown = ""
        self.max_names = max_names  # names a type's subscription may hold (0: no limit)
        self._system_version = 0
        self.order = MakeBeforeBreak()
        self.decision = ""  # the branch the last request took: ack, nack, stale-nonce, ...

    def on_request(self, req: DeltaRequest, resources: ProxyResources) -> list[DeltaResponse]:
        if req.type_url not in ORDER:
            self.counters.unknown += 1
            self.last_unknown = req.type_url
            self.decision = "unknown-type"
            return []
        if self.max_names and len(req.subscribe) + len(req.initial_versions) > self.max_names:
            raise LimitExceeded(
                f"a {req.type_url} request names {len(req.subscribe) + len(req.initial_versions)} "
                f"resources; the limit is {self.max_names}"
            )
        self.counters.requests += 1
        st = self.types.get(req.type_url)
        first = st is None
        stale = False
        if st is None:
            st = self.types[req.type_url] = DeltaTypeState(known=dict(req.initial_versions))
            if not req.subscribe and req.type_url in WILDCARD_TYPES:
                st.wildcard = True  # legacy wildcard: the first request names nothing
        elif req.nonce and req.nonce != st.nonce:
            self.counters.stale += 1  # subscription changes below are still honoured
            stale = True
        out: list[DeltaResponse] = []
        error = req.error
        self.decision = (
            "first-request" if first else "stale-nonce" if stale else "ack" if error is None else "nack"
        )
        if error is not None:
            self.counters.nacks += 1
            st.last_error = error
            self.last_nack = (req.type_url, "", error)
            if not stale and not first:
                # What the rejected response carried is not held: each is resent once it changes.
                st.rejected.update(st.sent)
                st.known = {n: v for n, v in st.known.items() if n not in st.sent}
                st.sent = {}
            if self.order.nacked(req.type_url):
                out += self._push(resources, HELD_TYPES)
        elif req.nonce:
            self.counters.acks += 1
        if req.subscribe or req.unsubscribe:
            if not first:
                self.decision += "+subscription-change"
            names = set(st.names)
            for n in req.subscribe:
                if n == WILDCARD:
                    st.wildcard = True
                else:
                    names.add(n)
                    # A resubscription asks for the resource again, whatever version the client was sent;
                    # on a reconnect the initial versions tell what it holds.
                    if not (first and n in req.initial_versions):
                        st.force.add(n)
            if self.max_names and len(names) > self.max_names:
                raise LimitExceeded(
                    f"the {req.type_url} subscription would hold {len(names)} names; "
                    f"the limit is {self.max_names}"
                )
            dropped = {n for n in req.unsubscribe if n != WILDCARD}
            if WILDCARD in req.unsubscribe:
                st.wildcard = False
            if dropped:
                names -= dropped
                st.force -= dropped
                st.known = {n: v for n, v in st.known.items() if n not in dropped}
                for n in dropped:
                    st.rejected.pop(n, None)
            every = resources.names(req.type_url)
            st.names = every if names == every else names
        if not first and not req.subscribe and not req.unsubscribe:
            return out  # an ACK or NACK: nothing new was asked for
        resp = self._diff(req.type_url, st, resources, answer_missing=set(req.subscribe))
        if resp is None and first:
            resp = self._empty(req.type_url, st)  # the client waits for a first answer to finish warming
        if resp is not None:
            out.append(resp)
        if self.order.hold and req.type_url in (TYPE_ENDPOINT, TYPE_CLUSTER):
            eds = self.types.get(TYPE_ENDPOINT)
            if self.order.release(
                sent=eds.known.keys() if eds is not None else None, available=resources.names(TYPE_ENDPOINT)
            ):
                out += self._push(resources, HELD_TYPES)
        return out

    def _empty(self, type_url: str, st: DeltaTypeState) -> DeltaResponse:
        st.sent = {}
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
            get, rejected = known.get, st.rejected.get
            changed = sorted(
                n for n in wanted if (get(n) != versions[n] and rejected(n) != versions[n]) or n in st.force
            )
            removed = sorted(n for n in known if n not in wanted)
        if answer_missing:
            removed = sorted(
                set(removed) | {n for n in answer_missing if n != WILDCARD and n not in available}
            )
        st.force.clear()
        if not changed and not removed:
            return None
        # The client now holds exactly the wanted resources at these versions (but for those it
        # rejected): when it wants them all, that is the group's version map itself.
        if st.rejected:
            for n in changed:
                st.rejected.pop(n, None)
            held = {n: versions[n] for n in wanted if n not in st.rejected}
            st.known = versions if len(held) == len(versions) else held
        else:
            st.known = versions if len(wanted) == len(versions) else {n: versions[n] for n in wanted}
        st.sent = {n: versions[n] for n in changed}
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
            if self.order.blocks(type_url):
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
                    watched = eds.names if eds is not None and not eds.wildcard else None
                    self.order.clusters_pushed(new_eds, watched)
        return out
