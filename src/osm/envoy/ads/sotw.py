"""State-of-the-world ADS, sans I/O: what to send for each request and each config change.

Rules (xDS protocol): a request whose nonce is not the last one sent is stale and not answered (but
the by-name resources it leaves out stop counting as held, see _forget_dropped); a request
with error_detail is a NACK, handled by the rule in order.py; an ACK is answered only when the
requested names changed. Push order and make before break are order.py's.

Listeners and clusters are sent whole (a SotW response is their complete state). Endpoints, routes
and secrets are requested by name, and a SotW response of those types need not repeat what the proxy
already holds: a resource left out of such a response is kept, not removed. So those responses carry
only the requested resources the proxy does not hold at their current version (what a NACKed response
carried counts as not held). A proxy that asks for its clusters' secrets and then for those and its
listeners' gets the listeners' secrets alone the second time, and an endpoint change sends the one
ClusterLoadAssignment that changed, not every one the proxy watches.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from osm.envoy import wire
from osm.envoy.ads.order import HELD_TYPES, MakeBeforeBreak
from osm.envoy.types import (
    ORDER,
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    WILDCARD_TYPES,
    ProxyResources,
    Resource,
    WholeType,
    changed_names,
    content_version,
)


class LimitExceeded(Exception):
    """A request that would make the stream hold more than its limits allow; the stream ends."""


@dataclass(frozen=True, slots=True)
class Request:
    type_url: str
    version_info: str = ""
    nonce: str = ""
    names: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    type_url: str
    version: str
    nonce: str
    resources: Sequence[Resource]  # a WholeType when the proxy is sent every resource of the type

    def encode(self) -> bytes:
        rs = self.resources
        framed = rs.framed() if isinstance(rs, WholeType) else [r.framed for r in rs]
        return wire.discovery_response_framed(self.version, self.type_url, self.nonce, framed)


@dataclass
class TypeState:
    names: frozenset[str] = frozenset()
    seen_type_version: str = ""  # the full type version when this stream last looked (a fast no-change test)
    nonce: str = ""
    sent_version: str = ""
    sent_names: frozenset[str] = frozenset()
    sent_versions: Mapping[str, str] = field(default_factory=dict)  # resource name -> version last sent
    # Names a stale request left out: the proxy may have dropped their watches (and the resources with
    # them) and asked for them again since; its next ACK is answered with whichever of them it lacks.
    forgotten: frozenset[str] = frozenset()
    acked_version: str = ""
    nacked_version: str = ""
    last_error: str = ""


@dataclass
class Counters:
    requests: int = 0
    acks: int = 0
    nacks: int = 0
    stale: int = 0
    unknown: int = 0  # requests of a type URL the server does not serve
    responses: int = 0
    resources: int = 0  # resources sent, over all responses


class SotwStream:
    def __init__(self, nonces: Iterator[int] | None = None, *, max_names: int = 0) -> None:
        self.types: dict[str, TypeState] = {}
        self.counters = Counters()
        self._nonces = nonces if nonces is not None else itertools.count(1)
        self.last_nack: tuple[str, str, str] | None = None  # (type_url, version, message)
        self.last_unknown = ""  # the type URL of the last request of a type the server does not serve
        self.max_names = max_names  # resource names a request may name (0: no limit)
        self.order = MakeBeforeBreak()
        self.decision = ""  # the branch the last request took: ack, nack, stale-nonce, ...
        # Per wildcard type, the exact bytes of a plain ACK of its latest response, as Envoy sends it
        # after its first request (version_info, type_url, response_nonce; no node, no names): such a
        # request is recognised without parsing it (`try_ack_raw`).
        self.acks: dict[str, bytes] = {}

    @staticmethod
    def _wants_all(type_url: str, st: TypeState, resources: ProxyResources) -> bool:
        return type_url in WILDCARD_TYPES or st.names >= resources.names(type_url)

    def _select(
        self, type_url: str, st: TypeState, resources: ProxyResources
    ) -> tuple[Sequence[Resource] | None, str]:
        """What this stream would be sent now: None for the whole type (its shared views serve it) or
        the requested resources by name, and the content version of that."""
        if self._wants_all(type_url, st, resources):
            return None, resources.versions.get(type_url, "")
        available = resources.get(type_url)
        chosen = tuple(available[n] for n in sorted(st.names) if n in available)
        return chosen, content_version(chosen)

    def _respond(
        self,
        type_url: str,
        st: TypeState,
        resources: ProxyResources,
        selected: tuple[Sequence[Resource] | None, str] | None = None,
        *,
        force: frozenset[str] = frozenset(),
    ) -> Response | None:
        """The response that brings the stream to the selected resources, or None when the proxy holds
        them all already (a by-name type with nothing new; `force`d names are always sent, and so is
        everything when the stream knows of nothing held: a first request, or after a NACK). Either way
        the stream then counts the whole selection as held."""
        chosen, version = selected or self._select(type_url, st, resources)
        held = st.sent_versions
        st.forgotten = frozenset()
        if chosen is None:
            # The whole type: the shared views of `resources`, nothing copied per stream.
            chosen = resources.whole(type_url)
            st.sent_names = resources.names(type_url)
            st.sent_versions = resources.version_map(type_url)
            if st.names == st.sent_names:
                st.names = st.sent_names  # one shared set instead of this stream's copy of the request
        else:
            st.sent_names = frozenset(r.name for r in chosen)
            st.sent_versions = {r.name: r.version for r in chosen}
        st.seen_type_version = resources.versions.get(type_url, "")
        st.sent_version = version
        if type_url not in WILDCARD_TYPES and held:
            if held is st.sent_versions:  # the very map last sent: nothing changed
                chosen = tuple(r for r in chosen if r.name in force) if force else ()
            else:
                chosen = tuple(r for r in chosen if held.get(r.name) != r.version or r.name in force)
            if not chosen:
                return None
        st.nonce = str(next(self._nonces))
        if type_url in WILDCARD_TYPES:
            self.acks[type_url] = (
                wire.field_str(1, version) + wire.field_str(4, type_url) + wire.field_str(5, st.nonce)
            )
        self.counters.responses += 1
        self.counters.resources += len(chosen)
        return Response(type_url, version, st.nonce, chosen)

    def try_ack_raw(self, raw: bytes) -> str:
        """`try_ack` for a serialized request that is byte for byte the plain ACK of a wildcard type's
        latest response (no error, no names, the current nonce): recorded without parsing it. The type
        acknowledged ("" when `raw` must be parsed)."""
        type_url = next((t for t, ack in self.acks.items() if ack == raw), None)  # at most two
        if type_url is None or self.order.hold:
            return ""
        st = self.types[type_url]
        if st.forgotten:
            return ""
        self.counters.requests += 1
        self.counters.acks += 1
        st.acked_version = st.sent_version
        return type_url

    def try_ack(self, req: Request) -> bool:
        """Record `req` if it is a plain ACK of the latest response of its type that releases nothing;
        False (and nothing recorded) if it needs on_request. Lets the ADS server take the commonest
        request without waking the stream's task."""
        st = self.types.get(req.type_url)
        if (
            st is None
            or self.order.hold
            or not req.nonce
            or req.nonce != st.nonce
            or req.error is not None
            or st.forgotten
            or (req.type_url not in WILDCARD_TYPES and frozenset(req.names) != st.names)
        ):
            return False
        self.counters.requests += 1
        self.counters.acks += 1
        st.acked_version = req.version_info
        return True

    def on_request(self, req: Request, resources: ProxyResources) -> list[Response]:
        """Answer one request; `decision` then names the branch taken (for the server's log)."""
        if req.type_url not in ORDER:
            self.counters.unknown += 1
            self.last_unknown = req.type_url
            self.decision = "unknown-type"
            return []
        if self.max_names and len(req.names) > self.max_names:
            raise LimitExceeded(
                f"a {req.type_url} request names {len(req.names)} resources; the limit is {self.max_names}"
            )
        self.counters.requests += 1
        st = self.types.get(req.type_url)
        if st is None:
            # The first request of a type on this stream is always answered, even when it carries a nonce
            # or an error from a previous stream: nonces do not survive a reconnect.
            self.decision = "first-request"
            st = self.types[req.type_url] = TypeState(names=frozenset(req.names))
            return _some(self._respond(req.type_url, st, resources))
        if req.nonce and req.nonce != st.nonce:
            self.decision = "stale-nonce"
            self.counters.stale += 1
            self._forget_dropped(req, st)
            return []
        if req.error is not None:
            self.decision = "nack"
            return self._nack(req, st, resources)
        names = frozenset(req.names)
        if names == st.names:
            names = st.names  # keep the shared set (see _respond)
        if req.nonce:
            st.acked_version = req.version_info
            self.counters.acks += 1
            if req.type_url in WILDCARD_TYPES or (names == st.names and not st.forgotten):
                self.decision = "ack"
                return self._release(resources, ack_of=req.type_url)
        self.decision = "subscription-change"
        st.names = names
        out = _some(self._respond(req.type_url, st, resources))
        if req.type_url == TYPE_ENDPOINT:
            out += self._release(resources)
        return out

    def _nack(self, req: Request, st: TypeState, resources: ProxyResources) -> list[Response]:
        """The NACK rule of order.py: count it, answer nothing of what was rejected, count what the
        rejected response carried as not held, honour the request's subscription."""
        assert req.error is not None
        self.counters.nacks += 1
        st.nacked_version = st.sent_version
        st.last_error = req.error
        self.last_nack = (req.type_url, st.sent_version, req.error)
        out: list[Response] = []
        if req.type_url not in WILDCARD_TYPES:
            names = frozenset(req.names)
            added = names - st.names
            st.names = names
            st.sent_versions = {}  # what it holds is unknown now: the next response carries all of it
            available = resources.get(req.type_url)
            fresh = tuple(available[n] for n in sorted(added) if n in available)
            if fresh:  # a subscription to more names: those are answered (nothing rejected among them)
                out.append(self._send(req.type_url, st, fresh, resources))
        if self.order.nacked(req.type_url):
            out += self._push(resources, HELD_TYPES)
        return out

    def _send(
        self, type_url: str, st: TypeState, chosen: tuple[Resource, ...], resources: ProxyResources
    ) -> Response:
        """A response of some by-name resources, recorded as the only ones the proxy is known to hold."""
        version = content_version(chosen)
        st.sent_names = frozenset(r.name for r in chosen)
        st.sent_versions = {r.name: r.version for r in chosen}
        st.seen_type_version = resources.versions.get(type_url, "")
        st.sent_version = version
        st.forgotten = frozenset()
        st.nonce = str(next(self._nonces))
        self.counters.responses += 1
        self.counters.resources += len(chosen)
        return Response(type_url, version, st.nonce, chosen)

    @staticmethod
    def _forget_dropped(req: Request, st: TypeState) -> None:
        """A stale request is not answered, but a by-name resource it leaves out may be gone from the
        proxy: Envoy forgets a resource with its last watch, and may watch it again before it reads the
        response in flight. Such names stop counting as held, so asking for them again gets them."""
        if req.type_url in WILDCARD_TYPES or req.error is not None:
            return
        wanted = frozenset(req.names)
        dropped = st.sent_versions.keys() - wanted
        if dropped:
            st.sent_versions = {n: v for n, v in st.sent_versions.items() if n in wanted}
            st.forgotten |= dropped

    def _release(self, resources: ProxyResources, ack_of: str = "") -> list[Response]:
        """Send the held listeners and routes once the hold ends (order.MakeBeforeBreak)."""
        if not self.order.hold:
            return []
        eds = self.types.get(TYPE_ENDPOINT)
        released = self.order.release(
            sent=eds.sent_names if eds is not None else None,
            available=resources.names(TYPE_ENDPOINT),
            cds_acked_unwatched=ack_of == TYPE_CLUSTER and eds is None,
        )
        return self._push(resources, HELD_TYPES) if released else []

    def on_update(self, resources: ProxyResources) -> list[Response]:
        return self._push(resources, ORDER)

    def _push(self, resources: ProxyResources, types: tuple[str, ...]) -> list[Response]:
        out: list[Response] = []
        updated_clusters: set[str] = set()
        for type_url in types:
            st = self.types.get(type_url)
            if st is None:
                continue  # never requested: pushes wait for the proxy's first request of the type
            if self.order.blocks(type_url):
                continue  # held until the new clusters' endpoints went out
            # An updated cluster warms until it gets a ClusterLoadAssignment: resend its endpoints.
            forced_eds = frozenset(updated_clusters & st.names) if type_url == TYPE_ENDPOINT else frozenset()
            type_version = resources.versions.get(type_url, "")
            if type_version == st.seen_type_version and not forced_eds:
                continue
            st.seen_type_version = type_version
            selected = self._select(type_url, st, resources)
            if selected[1] != st.sent_version or forced_eds:
                previous, previous_versions = st.sent_names, st.sent_versions
                out += _some(self._respond(type_url, st, resources, selected, force=forced_eds))
                if type_url == TYPE_CLUSTER:
                    updated_clusters = changed_names(previous_versions, st.sent_versions)
                    eds = self.types.get(TYPE_ENDPOINT)
                    new_eds = (st.sent_names - previous) & resources.names(TYPE_ENDPOINT)
                    self.order.clusters_pushed(new_eds, eds.names if eds is not None else None)
        return out


def _some(r: Response | None) -> list[Response]:
    return [] if r is None else [r]
