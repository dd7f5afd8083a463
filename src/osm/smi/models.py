"""SMI objects as OSM serves them: access v1alpha3, specs v1alpha4, split v1alpha2."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from osm.models.fields import Doc
from osm.models.k8s import ObjectMeta
from osm.models.regex import regex_problem

ACCESS_API = "access.smi-spec.io/v1alpha3"
SPECS_API = "specs.smi-spec.io/v1alpha4"
SPLIT_API = "split.smi-spec.io/v1alpha2"

HTTP_METHODS = frozenset(
    {"GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"}
)
WILDCARD_PATH = ".*"
WILDCARD_METHOD = "*"
# Envoy's weighted clusters carry each weight, and their sum, as a uint32.
MAX_TOTAL_WEIGHT = 2**32 - 1


def _regex(d: Doc, key: str, value: str) -> str:
    problem = regex_problem(value)
    if problem is not None:
        raise d.error(key, f"{value[:200]!r} {problem}")
    return value


@dataclass(frozen=True, slots=True)
class IdentityRef:
    """A TrafficTarget source or destination (kind ServiceAccount)."""

    name: str
    namespace: str

    @staticmethod
    def parse(d: Doc) -> IdentityRef:
        kind = d.str("kind", required=True)
        if kind != "ServiceAccount":
            raise d.error("kind", f"must be ServiceAccount, got {kind!r}")
        return IdentityRef(name=d.str("name", required=True), namespace=d.str("namespace") or d.namespace)


@dataclass(frozen=True, slots=True)
class TrafficTargetRule:
    kind: str  # HTTPRouteGroup | TCPRoute
    name: str
    matches: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TrafficTarget:
    KIND: ClassVar[str] = "TrafficTarget"
    meta: ObjectMeta
    destination: IdentityRef
    sources: tuple[IdentityRef, ...]
    rules: tuple[TrafficTargetRule, ...]

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> TrafficTarget:
        meta = ObjectMeta.parse("TrafficTarget", data)
        spec = Doc(data, "TrafficTarget", meta.namespace, meta.name).obj("spec", required=True)
        dest = IdentityRef.parse(spec.obj("destination", required=True))
        if dest.namespace != meta.namespace:
            raise spec.error(
                "destination.namespace",
                f"must equal the TrafficTarget's namespace {meta.namespace!r}, got {dest.namespace!r}",
            )
        sources = tuple(IdentityRef.parse(s) for s in spec.objs("sources", required=True))
        if not sources:
            raise spec.error("sources", "needs at least one source")
        rules = []
        for r in spec.objs("rules", required=True):
            kind = r.str("kind", required=True)
            if kind not in ("HTTPRouteGroup", "TCPRoute"):
                raise r.error("kind", f"must be HTTPRouteGroup or TCPRoute, got {kind!r}")
            rules.append(
                TrafficTargetRule(kind=kind, name=r.str("name", required=True), matches=r.strs("matches"))
            )
        if not rules:
            raise spec.error("rules", "needs at least one rule")
        return TrafficTarget(meta=meta, destination=dest, sources=sources, rules=tuple(rules))


@dataclass(frozen=True, slots=True)
class HTTPMatch:
    name: str
    path_regex: str = WILDCARD_PATH
    methods: tuple[str, ...] = (WILDCARD_METHOD,)
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class HTTPRouteGroup:
    KIND: ClassVar[str] = "HTTPRouteGroup"
    meta: ObjectMeta
    matches: tuple[HTTPMatch, ...]

    def match(self, name: str) -> HTTPMatch | None:
        for m in self.matches:
            if m.name == name:
                return m
        return None

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> HTTPRouteGroup:
        meta = ObjectMeta.parse("HTTPRouteGroup", data)
        spec = Doc(data, "HTTPRouteGroup", meta.namespace, meta.name).obj("spec", required=True)
        matches = []
        names: set[str] = set()
        for m in spec.objs("matches"):
            name = m.str("name", required=True)
            if name in names:
                raise m.error("name", f"duplicate match name {name!r}")
            names.add(name)
            path = _regex(m, "pathRegex", m.str("pathRegex") or WILDCARD_PATH)
            methods = tuple(x.upper() for x in m.strs("methods")) or (WILDCARD_METHOD,)
            for i, meth in enumerate(methods):
                if meth not in HTTP_METHODS:
                    raise m.error(f"methods[{i}]", f"unknown HTTP method {meth!r}")
            headers_raw = m.raw("headers")
            headers: dict[str, str] = {}
            if isinstance(headers_raw, list):  # v1alpha3 style: a list of single-key maps
                for i, h in enumerate(headers_raw):
                    if not isinstance(h, Mapping):
                        raise m.error(f"headers[{i}]", "must be a map of header name to regex")
                    headers.update({str(k): str(v) for k, v in h.items()})
            else:
                headers = m.str_map("headers")
            for k, v in headers.items():
                _regex(m, f"headers.{k}", v)
            matches.append(
                HTTPMatch(
                    name=name,
                    path_regex=path,
                    methods=methods,
                    headers=tuple(sorted((k.lower(), v) for k, v in headers.items())),
                )
            )
        return HTTPRouteGroup(meta=meta, matches=tuple(matches))


@dataclass(frozen=True, slots=True)
class TCPRoute:
    KIND: ClassVar[str] = "TCPRoute"
    meta: ObjectMeta
    ports: tuple[int, ...] = field(default=())

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> TCPRoute:
        meta = ObjectMeta.parse("TCPRoute", data)
        spec = Doc(data, "TCPRoute", meta.namespace, meta.name).obj("spec", required=True)
        ports = []
        matches = spec.obj("matches")
        for i, p in enumerate(matches.seq("ports")):
            if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
                raise matches.error(f"ports[{i}]", f"must be a port number between 1 and 65535, got {p!r}")
            ports.append(p)
        return TCPRoute(meta=meta, ports=tuple(sorted(set(ports))))


@dataclass(frozen=True, slots=True)
class TrafficSplitBackend:
    service: str
    weight: int


@dataclass(frozen=True, slots=True)
class TrafficSplit:
    KIND: ClassVar[str] = "TrafficSplit"
    meta: ObjectMeta
    service: str  # the apex, as a short name
    backends: tuple[TrafficSplitBackend, ...]

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> TrafficSplit:
        meta = ObjectMeta.parse("TrafficSplit", data)
        spec = Doc(data, "TrafficSplit", meta.namespace, meta.name).obj("spec", required=True)
        apex = spec.str("service", required=True)
        # The apex may be given as an FQDN: <svc>.<ns>.svc.cluster.local
        parts = apex.split(".")
        if len(parts) > 1:
            if parts[1] != meta.namespace:
                raise spec.error(
                    "service", f"apex {apex!r} must be in the TrafficSplit's namespace {meta.namespace!r}"
                )
            apex = parts[0]
        backends = []
        seen: set[str] = set()
        for b in spec.objs("backends", required=True):
            svc = b.str("service", required=True)
            if svc in seen:
                raise b.error("service", f"duplicate backend {svc!r}")
            seen.add(svc)
            weight = b.int("weight", required=True, lo=0, hi=MAX_TOTAL_WEIGHT)
            backends.append(TrafficSplitBackend(service=svc, weight=weight))
        if not backends:
            raise spec.error("backends", "needs at least one backend")
        total = sum(b.weight for b in backends)
        if total > MAX_TOTAL_WEIGHT:
            raise spec.error(
                "backends", f"the weights add up to {total}; their sum must not exceed {MAX_TOTAL_WEIGHT}"
            )
        return TrafficSplit(meta=meta, service=apex, backends=tuple(backends))
