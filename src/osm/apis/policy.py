"""OSM's policy API (`policy.openservicemesh.io/v1alpha1`): the kinds the mesh models.

Retry: for the clients running as one ServiceAccount, how their sidecars retry requests to the listed
Services (Envoy's route retry policy), honoured when MeshConfig `featureFlags.enableRetryPolicy` is on.

Egress: which destinations outside the mesh the sidecars of some ServiceAccounts may reach: HTTP by
host (optionally narrowed by HTTPRouteGroup matches), HTTPS by SNI, TCP by port and IP range; honoured
when MeshConfig `featureFlags.enableEgressPolicy` is on.

IngressBackend: which sources outside the mesh (an ingress controller's Service, IP ranges, or, over
mTLS, an authenticated principal) may reach a Service port of the mesh, over HTTP or HTTPS.

UpstreamTrafficSetting: for one Service (`spec.host`, its FQDN, in the policy's namespace), connection
limits and outlier detection on every client's cluster for it, and local rate limits (connections;
requests per virtual host and per route) on the sidecars of its pods.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from osm.models.fields import Doc, parse_duration
from osm.models.k8s import ObjectMeta
from osm.models.regex import regex_problem
from osm.models.trafficpolicy import (
    MAX_U32,
    ConnectionSettings,
    HTTPRateLimit,
    OutlierDetection,
    RetryPolicy,
    TCPRateLimit,
    UpstreamSettings,
)

POLICY_API = "policy.openservicemesh.io/v1alpha1"

# Envoy's retry_on conditions: HTTP (x-envoy-retry-on) and gRPC (x-envoy-retry-grpc-on)
HTTP_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
    }
)
GRPC_RETRY_ON = frozenset({"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"})
MAX_RETRIES = 100  # more than this is a retry storm, not a policy


def _duration_ms(d: Doc, key: str, *, lo_ms: int = 1, default: int | None = None) -> int:
    if default is not None and not d.has(key):
        return default
    text = d.str(key, required=True)
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise d.error(key, str(e)) from None
    ms = round(seconds * 1000)
    if ms < lo_ms:
        raise d.error(key, f"{text!r} is under {lo_ms}ms")
    if ms > 24 * 3600 * 1000:
        raise d.error(key, f"{text!r} is over 24h")
    return ms


@dataclass(frozen=True, slots=True, order=True)
class Ref:
    """A policy's source or destination: kind, name, namespace."""

    kind: str
    name: str
    namespace: str

    @staticmethod
    def parse(d: Doc, kind: str) -> Ref:
        got = d.str("kind", required=True)
        if got != kind:
            raise d.error("kind", f"must be {kind}, got {got!r}")
        return Ref(kind, d.str("name", required=True), d.str("namespace", required=True))


def parse_retry_policy(d: Doc) -> RetryPolicy:
    retry_on = d.str("retryOn", required=True)
    conditions = [c.strip() for c in retry_on.split(",")]
    for c in conditions:
        if c not in HTTP_RETRY_ON | GRPC_RETRY_ON:
            known = ", ".join(sorted(HTTP_RETRY_ON | GRPC_RETRY_ON))
            raise d.error("retryOn", f"{c[:64]!r} is not a retry condition (one of: {known})")
    return RetryPolicy(
        retry_on=",".join(conditions),
        per_try_timeout_ms=_duration_ms(d, "perTryTimeout"),
        num_retries=d.int("numRetries", required=True, lo=0, hi=MAX_RETRIES),
        backoff_base_ms=_duration_ms(d, "retryBackoffBaseInterval"),
    )


@dataclass(frozen=True, slots=True)
class Retry:
    KIND: ClassVar[str] = "Retry"
    meta: ObjectMeta
    source: Ref  # a ServiceAccount
    destinations: tuple[Ref, ...]  # Services
    policy: RetryPolicy

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> Retry:
        meta = ObjectMeta.parse("Retry", data)
        spec = Doc(data, "Retry", meta.namespace, meta.name).obj("spec", required=True)
        source = Ref.parse(spec.obj("source", required=True), "ServiceAccount")
        destinations = tuple(Ref.parse(d, "Service") for d in spec.objs("destinations", required=True))
        if not destinations:
            raise spec.error("destinations", "needs at least one Service")
        policy = parse_retry_policy(spec.obj("retryPolicy", required=True))
        return Retry(meta=meta, source=source, destinations=destinations, policy=policy)


UNITS_MS = {"second": 1000, "minute": 60_000, "hour": 3_600_000}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def _u32(d: Doc, key: str, default: int = 0, *, lo: int = 0, required: bool = False) -> int:
    return d.int(key, default, lo=lo, hi=MAX_U32, required=required)


def _unit(d: Doc) -> int:
    unit = d.str("unit", required=True)
    if unit not in UNITS_MS:
        raise d.error("unit", f"must be one of {', '.join(UNITS_MS)}, got {unit!r}")
    return UNITS_MS[unit]


def parse_http_rate_limit(d: Doc) -> HTTPRateLimit:
    status = d.int("responseStatusCode", 429)
    if not 400 <= status <= 599:
        raise d.error("responseStatusCode", f"must be an HTTP error status (400-599), got {status}")
    headers = []
    for h in d.objs("responseHeadersToAdd"):
        name = h.str("name", required=True)
        if not HEADER_NAME.fullmatch(name):
            raise h.error("name", f"{name[:64]!r} is not an HTTP header name")
        headers.append((name.lower(), h.str("value", required=True)))
    return HTTPRateLimit(
        requests=_u32(d, "requests", lo=1, required=True),
        fill_interval_ms=_unit(d),
        burst=_u32(d, "burst"),
        status=status,
        headers=tuple(headers),
    )


def parse_tcp_rate_limit(d: Doc) -> TCPRateLimit:
    return TCPRateLimit(
        connections=_u32(d, "connections", lo=1, required=True),
        fill_interval_ms=_unit(d),
        burst=_u32(d, "burst"),
    )


def parse_connection_settings(d: Doc) -> ConnectionSettings:
    tcp, http = d.obj("tcp"), d.obj("http")
    default = ConnectionSettings()
    return ConnectionSettings(
        max_connections=_u32(tcp, "maxConnections", default.max_connections),
        connect_timeout_ms=_duration_ms(tcp, "connectTimeout", default=default.connect_timeout_ms),
        max_requests=_u32(http, "maxRequests", default.max_requests),
        max_requests_per_connection=_u32(
            http, "maxRequestsPerConnection", default.max_requests_per_connection
        ),
        max_pending_requests=_u32(http, "maxPendingRequests", default.max_pending_requests),
        max_retries=_u32(http, "maxRetries", default.max_retries),
    )


def parse_outlier_detection(d: Doc) -> OutlierDetection:
    return OutlierDetection(
        consecutive_errors=_u32(d, "consecutiveErrors", lo=1, required=True),
        interval_ms=_duration_ms(d, "interval"),
        base_ejection_ms=_duration_ms(d, "baseEjectionTime"),
        max_ejection_percent=d.int("maxEjectionPercent", 10, lo=0, hi=100),
    )


@dataclass(frozen=True, slots=True)
class UpstreamTrafficSetting:
    KIND: ClassVar[str] = "UpstreamTrafficSetting"
    meta: ObjectMeta
    host: str  # a Service's FQDN (<service>.<namespace>.svc.<trust domain>), or an egress host
    upstream: UpstreamSettings  # for the clients' clusters
    tcp_rate_limit: TCPRateLimit | None  # for the service's pods' sidecars
    http_rate_limit: HTTPRateLimit | None
    route_limits: tuple[tuple[str, HTTPRateLimit], ...]  # (HTTPRouteGroup path regex, its limit)

    def service(self) -> str | None:
        """The Service `host` names (in the policy's namespace), when it names one."""
        parts = self.host.split(".")
        return parts[0] if len(parts) >= 4 and parts[2] == "svc" else None

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> UpstreamTrafficSetting:
        meta = ObjectMeta.parse("UpstreamTrafficSetting", data)
        spec = Doc(data, "UpstreamTrafficSetting", meta.namespace, meta.name).obj("spec", required=True)
        host = spec.str("host", required=True).strip().lower()
        parts = host.split(".")
        if len(host) > 253 or not all(DNS_LABEL.fullmatch(p) for p in parts):
            raise spec.error("host", f"{host[:128]!r} is not a DNS name")
        if len(parts) >= 4 and parts[2] == "svc" and parts[1] != meta.namespace:
            raise spec.error(
                "host",
                f"{host!r} is a Service of namespace {parts[1]!r}: an UpstreamTrafficSetting applies "
                f"to Services of its own namespace ({meta.namespace!r})",
            )
        connection = (
            parse_connection_settings(spec.obj("connectionSettings"))
            if spec.has("connectionSettings")
            else None
        )
        outlier = (
            parse_outlier_detection(spec.obj("outlierDetection")) if spec.has("outlierDetection") else None
        )
        local = spec.obj("rateLimit").obj("local")
        tcp = parse_tcp_rate_limit(local.obj("tcp")) if local.has("tcp") else None
        http = parse_http_rate_limit(local.obj("http")) if local.has("http") else None
        routes: dict[str, HTTPRateLimit] = {}
        for r in spec.objs("httpRoutes"):
            path = r.str("path", required=True)
            problem = regex_problem(path)
            if problem is not None:
                raise r.error("path", f"{path[:200]!r} {problem}")
            if path in routes:
                raise r.error("path", f"{path!r} is given twice")
            routes[path] = parse_http_rate_limit(r.obj("rateLimit").obj("local").obj("http", required=True))
        return UpstreamTrafficSetting(
            meta=meta,
            host=host,
            upstream=UpstreamSettings(connection, outlier),
            tcp_rate_limit=tcp,
            http_rate_limit=http,
            route_limits=tuple(sorted(routes.items())),
        )


INGRESS_PROTOCOLS = ("http", "https")
INGRESS_SOURCE_KINDS = ("Service", "AuthenticatedPrincipal", "IPRange")


@dataclass(frozen=True, slots=True, order=True)
class IngressBackendPort:
    name: str  # the Service
    port: int  # its targetPort
    protocol: str  # http | https
    sni_hosts: tuple[str, ...] = ()
    skip_client_cert_validation: bool = False


@dataclass(frozen=True, slots=True)
class IngressBackend:
    KIND: ClassVar[str] = "IngressBackend"
    meta: ObjectMeta
    backends: tuple[IngressBackendPort, ...]
    source_services: tuple[tuple[str, str], ...]  # (namespace, name): their endpoints' IPs may connect
    ip_ranges: tuple[str, ...]  # CIDRs
    principals: tuple[str, ...]  # authenticated principals (HTTPS with client certificates)

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> IngressBackend:
        meta = ObjectMeta.parse("IngressBackend", data)
        spec = Doc(data, "IngressBackend", meta.namespace, meta.name).obj("spec", required=True)
        sources: list[tuple[str, str]] = []
        ranges: list[str] = []
        principals: list[str] = []
        for src in spec.objs("sources", required=True):
            kind = src.str("kind", required=True)
            if kind not in INGRESS_SOURCE_KINDS:
                raise src.error("kind", f"must be one of {', '.join(INGRESS_SOURCE_KINDS)}, got {kind!r}")
            name = src.str("name", required=True)
            if kind == "Service":
                sources.append((src.str("namespace", required=True), name))
            elif kind == "IPRange":
                try:
                    ranges.append(str(ipaddress.ip_network(name, strict=False)))
                except ValueError:
                    raise src.error("name", f"{name[:64]!r} is not a CIDR") from None
            else:
                principals.append(name)
        if not (sources or ranges or principals):
            raise spec.error("sources", "needs at least one source")
        backends: dict[tuple[str, int], IngressBackendPort] = {}
        for b in spec.objs("backends", required=True):
            port = b.obj("port", required=True)
            protocol = port.str("protocol", required=True).lower()
            if protocol not in INGRESS_PROTOCOLS:
                raise port.error("protocol", f"must be http or https, got {protocol!r}")
            tls = b.obj("tls")
            backend = IngressBackendPort(
                name=b.str("name", required=True),
                port=port.int("number", required=True, lo=1, hi=65535),
                protocol=protocol,
                sni_hosts=tls.strs("sniHosts"),
                skip_client_cert_validation=tls.bool("skipClientCertValidation"),
            )
            if protocol == "https" and not backend.skip_client_cert_validation and not principals:
                raise b.error(
                    "tls",
                    "HTTPS with client certificate validation needs an AuthenticatedPrincipal source "
                    "(or tls.skipClientCertValidation: true)",
                )
            key = (backend.name, backend.port)
            if key in backends:
                raise b.error("", f"backend {backend.name} port {backend.port} is listed twice")
            backends[key] = backend
        if not backends:
            raise spec.error("backends", "needs at least one backend")
        return IngressBackend(
            meta=meta,
            backends=tuple(backends.values()),
            source_services=tuple(sources),
            ip_ranges=tuple(ranges),
            principals=tuple(sorted(set(principals))),
        )


EGRESS_PROTOCOLS = ("http", "https", "tcp", "tcp-server-first")
HOST_NAME = re.compile(r"(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")


@dataclass(frozen=True, slots=True)
class Egress:
    KIND: ClassVar[str] = "Egress"
    meta: ObjectMeta
    sources: tuple[Ref, ...]  # ServiceAccounts
    hosts: tuple[str, ...]  # http: Host; https: SNI
    ip_ranges: tuple[str, ...]  # CIDRs (tcp)
    ports: tuple[tuple[int, str], ...]  # (number, protocol)
    route_groups: tuple[str, ...]  # HTTPRouteGroups of the policy's namespace narrowing HTTP egress
    traffic_setting: str  # an UpstreamTrafficSetting of the policy's namespace ("" : none)

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> Egress:
        meta = ObjectMeta.parse("Egress", data)
        spec = Doc(data, "Egress", meta.namespace, meta.name).obj("spec", required=True)
        sources = tuple(Ref.parse(d, "ServiceAccount") for d in spec.objs("sources", required=True))
        if not sources:
            raise spec.error("sources", "needs at least one ServiceAccount")
        hosts = []
        for i, h in enumerate(spec.strs("hosts")):
            host = h.strip().lower()
            if len(host) > 253 or not HOST_NAME.fullmatch(host):
                raise spec.error(f"hosts[{i}]", f"{h[:128]!r} is not a host name")
            hosts.append(host)
        ranges = []
        for i, cidr in enumerate(spec.strs("ipAddresses")):
            try:
                ranges.append(str(ipaddress.ip_network(cidr, strict=False)))
            except ValueError:
                raise spec.error(f"ipAddresses[{i}]", f"{cidr[:64]!r} is not a CIDR") from None
        ports: dict[int, str] = {}
        for p in spec.objs("ports", required=True):
            number = p.int("number", required=True, lo=1, hi=65535)
            protocol = p.str("protocol", required=True).lower()
            if protocol not in EGRESS_PROTOCOLS:
                raise p.error("protocol", f"must be one of {', '.join(EGRESS_PROTOCOLS)}, got {protocol!r}")
            if protocol in ("http", "https") and not hosts:
                raise p.error("protocol", f"{protocol} egress needs spec.hosts (matched by Host or SNI)")
            if ports.setdefault(number, protocol) != protocol:
                raise p.error("number", f"port {number} is given twice with different protocols")
        if not ports:
            raise spec.error("ports", "needs at least one port")
        groups: list[str] = []
        setting = ""
        for m in spec.objs("matches"):
            kind, group = m.str("kind", required=True), m.str("apiGroup")
            name = m.str("name", required=True)
            if kind == "HTTPRouteGroup" and group.split("/")[0] in ("", "specs.smi-spec.io"):
                groups.append(name)
            elif kind == "UpstreamTrafficSetting" and group.split("/")[0] in (
                "",
                "policy.openservicemesh.io",
            ):
                if setting:
                    raise m.error("kind", "at most one UpstreamTrafficSetting may be matched")
                setting = name
            else:
                raise m.error(
                    "kind",
                    f"{group or '<no apiGroup>'} {kind}: must be specs.smi-spec.io HTTPRouteGroup or "
                    "policy.openservicemesh.io UpstreamTrafficSetting",
                )
        return Egress(
            meta=meta,
            sources=sources,
            hosts=tuple(dict.fromkeys(hosts)),
            ip_ranges=tuple(dict.fromkeys(ranges)),
            ports=tuple(sorted(ports.items())),
            route_groups=tuple(groups),
            traffic_setting=setting,
        )
