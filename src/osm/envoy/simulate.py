"""A request sent through generated config, as the client's and the server's sidecars would handle it.

Pure: it reads the proxies' resources (the very bytes they are served) and follows one request from
the client's outbound listener (filter chain, route, cluster, endpoint) to the server's inbound
listener (filter chain, network RBAC, route, per-route RBAC) and its app. The outcome says what the
client sees (a status, a closed connection) and every hop on the way, so "bookthief is denied GET
/books-bought" is provable in milliseconds, and explainable: which listener, chain, route, cluster or
policy decided.

It covers the configuration the generators produce (filter chain matchers on destination port and
IP, server-name matches, RE2 route and header matches, weighted clusters, ALLOW RBAC by principal and
port); anything else raises SimulationError rather than guessing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import any_pb2, wrappers_pb2
from xds.type.matcher.v3 import ip_pb2

from osm.catalog import MeshCatalog
from osm.envoy.common import PASSTHROUGH_CLUSTER
from osm.envoy.generator import ConfigGenerator
from osm.envoy.lds.inbound import INBOUND_LISTENER
from osm.envoy.lds.outbound import OUTBOUND_LISTENER
from osm.envoy.rbac.policies import HTTP_RBAC_FILTER
from osm.envoy.sds.secrets import CertMaterial
from osm.envoy.types import TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER, TYPE_ROUTE, ProxyResources
from osm.state.snapshot import MeshState

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


class SimulationError(Exception):
    """Configuration the simulation does not model."""


@dataclass(frozen=True)
class Proxy:
    """A sidecar: its pod's address, the principal its certificate names, and what it is served."""

    name: str  # e.g. "bookstore/bookstore-v1-0" (for the trace)
    ip: str
    principal: str
    resources: ProxyResources


@dataclass(frozen=True)
class Request:
    """A connection (and, with a host, an HTTP request) the client's app makes to ip:port."""

    ip: str
    port: int
    host: str = ""  # the Host header; "" for a TCP connection
    path: str = "/"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Hop:
    what: str  # listener, filter chain, route configuration, virtual host, route, cluster, endpoint, ...
    name: str

    def __str__(self) -> str:
        return f"{self.what} {self.name}"


@dataclass
class Outcome:
    """What the client sees on one path through the config (a split has one path per backend)."""

    result: str  # "served" (the server's app answers), "egress", "refused", "closed", "http-error"
    status: int | None  # the HTTP status the client gets; None for TCP or a connection without one
    reason: str
    hops: list[Hop] = field(default_factory=list)
    weight: int = 1  # the path's share of the route's weight

    @property
    def allowed(self) -> bool:
        return self.result in ("served", "egress")


# ---- reading resources


def _unpack(any_msg: Any, cls: Any) -> Any:
    msg = cls()
    if not any_msg.Unpack(msg):
        raise SimulationError(f"expected {cls.DESCRIPTOR.full_name}, got {any_msg.type_url}")
    return msg


def _resource(res: ProxyResources, type_url: str, name: str, cls: Any) -> Any | None:
    r = res.get(type_url).get(name)
    return None if r is None else _unpack(any_pb2.Any.FromString(r.any_bytes), cls)


def _full_match(pattern: str, value: str) -> bool:
    return re2.fullmatch(pattern, value, options=_OPTIONS) is not None


def _string_match(m: Any, value: str | None) -> bool:
    if value is None:
        return False
    kind = m.WhichOneof("match_pattern")
    if kind == "safe_regex":
        return _full_match(m.safe_regex.regex, value)
    if kind == "exact":
        return bool(value == m.exact) if not m.ignore_case else value.lower() == m.exact.lower()
    if kind == "prefix":
        return bool(value.startswith(m.prefix))
    if kind == "suffix":
        return bool(value.endswith(m.suffix))
    if kind == "contains":
        return m.contains in value
    raise SimulationError(f"string match {kind!r}")


# ---- listeners and filter chains


def _in_cidr(ip: str, address_prefix: str, prefix_len: int) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(
            f"{address_prefix}/{prefix_len}", strict=False
        )
    except ValueError:
        return False


def _matcher_chain(m: Any, ip: str, port: int) -> str | None:
    """The chain name a Listener.filter_chain_matcher picks for a destination, or None."""
    tree = m.matcher_tree
    input_type = tree.input.typed_config.type_url.rsplit(".", 1)[-1]
    value = str(port) if input_type == "DestinationPortInput" else ip
    on_match: Any = None
    kind = tree.WhichOneof("tree_type")
    if kind == "exact_match_map":
        if value in tree.exact_match_map.map:
            on_match = tree.exact_match_map.map[value]
    elif kind == "custom_match":
        ip_matcher = _unpack(tree.custom_match.typed_config, ip_pb2.IPMatcher)
        best = -1
        for rm in ip_matcher.range_matchers:
            for r in rm.ranges:
                plen = r.prefix_len.value
                if plen > best and _in_cidr(value, r.address_prefix, plen):
                    best, on_match = plen, rm.on_match
    else:
        raise SimulationError(f"matcher tree {kind!r}")
    if on_match is None:
        on_match = m.on_no_match if m.HasField("on_no_match") else None
    if on_match is None:
        return None
    if on_match.HasField("matcher"):
        return _matcher_chain(on_match.matcher, ip, port)
    return str(_unpack(on_match.action.typed_config, wrappers_pb2.StringValue).value)


def _chain_match(m: Any, ip: str, port: int, sni: str, transport: str, alpn: Iterable[str]) -> bool:
    if m.HasField("destination_port") and m.destination_port.value != port:
        return False
    if m.prefix_ranges and not any(
        _in_cidr(ip, r.address_prefix, r.prefix_len.value) for r in m.prefix_ranges
    ):
        return False
    if m.server_names and sni not in m.server_names:
        return False
    if m.transport_protocol and m.transport_protocol != transport:
        return False
    return not (m.application_protocols and not set(m.application_protocols) & set(alpn))


def select_chain(
    listener: Any,
    ip: str,
    port: int,
    *,
    sni: str = "",
    transport: str = "raw_buffer",
    alpn: Iterable[str] = (),
) -> Any | None:
    """The filter chain Envoy picks for a connection, or None when none matches (and no default)."""
    chains = {c.name: c for c in listener.filter_chains}
    if listener.HasField("filter_chain_matcher"):
        name = _matcher_chain(listener.filter_chain_matcher, ip, port)
        chain = chains.get(name) if name is not None else None
    else:
        chain = next(
            (
                c
                for c in listener.filter_chains
                if _chain_match(c.filter_chain_match, ip, port, sni, transport, alpn)
            ),
            None,
        )
    if chain is None and listener.HasField("default_filter_chain"):
        return listener.default_filter_chain
    return chain


# ---- routes


def _host_matches(domain: str, host: str) -> bool:
    if domain == "*" or domain == host:
        return True
    if domain.startswith("*"):
        return host.endswith(domain[1:]) and len(host) > len(domain) - 1
    if domain.endswith("*"):
        return host.startswith(domain[:-1]) and len(host) > len(domain) - 1
    return False


def select_virtual_host(rc: Any, host: str) -> Any | None:
    """Envoy's order: an exact domain, then the longest suffix and prefix wildcards, then `*`."""
    if rc.ignore_port_in_host_matching and ":" in host and not host.startswith("["):
        host = host.rsplit(":", 1)[0]
    host = host.lower()
    ranked = []
    for vh in rc.virtual_hosts:
        for d in vh.domains:
            d = d.lower()
            if not _host_matches(d, host):
                continue
            rank = 0 if d == host else 3 if d == "*" else 1 if d.startswith("*") else 2
            ranked.append((rank, -len(d), vh.name, vh))
    return min(ranked, key=lambda t: t[:3])[3] if ranked else None


def _header(req: Request, name: str) -> str | None:
    if name == ":method":
        return req.method
    if name == ":authority" or name == "host":
        return req.host
    if name == ":path":
        return req.path
    for k, v in req.headers:
        if k.lower() == name.lower():
            return v
    return None


def _route_matches(route: Any, req: Request) -> bool:
    m = route.match
    path = req.path.split("?", 1)[0]
    kind = m.WhichOneof("path_specifier")
    if kind == "safe_regex":
        ok = _full_match(m.safe_regex.regex, path)
    elif kind == "prefix":
        ok = path.startswith(m.prefix)
    elif kind == "path":
        ok = path == m.path
    else:
        raise SimulationError(f"route match {kind!r}")
    if not ok:
        return False
    for h in m.headers:
        value = _header(req, h.name)
        spec = h.WhichOneof("header_match_specifier")
        if spec == "string_match":
            hit = _string_match(h.string_match, value)
        elif spec == "present_match":
            hit = (value is not None) == h.present_match
        else:
            raise SimulationError(f"header match {spec!r}")
        if hit == h.invert_match:
            return False
    return True


def select_route(vh: Any, req: Request) -> Any | None:
    return next((r for r in vh.routes if _route_matches(r, req)), None)


def _route_clusters(route: Any) -> list[tuple[str, int]]:
    action = route.route
    if action.WhichOneof("cluster_specifier") == "cluster":
        return [(action.cluster, 1)]
    if action.WhichOneof("cluster_specifier") == "weighted_clusters":
        return [(c.name, c.weight.value) for c in action.weighted_clusters.clusters if c.weight.value > 0]
    raise SimulationError(f"route action {action.WhichOneof('cluster_specifier')!r}")


# ---- RBAC


def _principal_matches(p: Any, principal: str) -> bool:
    kind = p.WhichOneof("identifier")
    if kind == "any":
        return bool(p.any)
    if kind == "authenticated":
        return _string_match(p.authenticated.principal_name, principal)
    if kind == "or_ids":
        return any(_principal_matches(x, principal) for x in p.or_ids.ids)
    raise SimulationError(f"RBAC principal {kind!r}")


def _permission_matches(p: Any, port: int) -> bool:
    kind = p.WhichOneof("rule")
    if kind == "any":
        return bool(p.any)
    if kind == "destination_port":
        return bool(p.destination_port == port)
    if kind == "or_rules":
        return any(_permission_matches(x, port) for x in p.or_rules.rules)
    raise SimulationError(f"RBAC permission {kind!r}")


def rbac_policy(rules: Any, principal: str, port: int) -> str | None:
    """The ALLOW policy that admits the peer, or None (denied)."""
    if rules.action != rbac_pb2.RBAC.ALLOW:
        raise SimulationError("only ALLOW RBAC is modelled")
    for name in sorted(rules.policies):
        pol = rules.policies[name]
        if any(_principal_matches(p, principal) for p in pol.principals) and any(
            _permission_matches(p, port) for p in pol.permissions
        ):
            return str(name)
    return None


# ---- the walk


def _failed(http: bool, reason: str, hops: list[Hop]) -> Outcome:
    """The connection to the upstream failed: an HTTP client gets 503 from its sidecar, a TCP client a
    closed connection."""
    return Outcome("http-error", 503, reason, hops) if http else Outcome("closed", None, reason, hops)


Nat = Callable[[str, int], list[tuple[str, int]]]


def simulate(
    client: Proxy, req: Request, servers: Mapping[str, Proxy], nat: Nat | None = None
) -> list[Outcome]:
    """Every path the request can take from `client` (one per weighted backend), each to its end.

    `servers` maps pod IPs to their sidecars; `nat` resolves an original destination (a ClusterIP) to
    pod addresses as kube-proxy would, for traffic the client's sidecar passes through unencrypted."""
    hops = [Hop("listener", OUTBOUND_LISTENER)]
    listener = _resource(client.resources, TYPE_LISTENER, OUTBOUND_LISTENER, listener_pb2.Listener)
    if listener is None:
        return [Outcome("refused", None, f"{client.name}'s sidecar has no outbound listener", hops)]
    chain = select_chain(listener, req.ip, req.port)
    if chain is None:
        reason = f"no filter chain of {OUTBOUND_LISTENER} matches {req.ip}:{req.port}, and egress is off"
        return [Outcome("closed", None, reason, hops)]
    hops.append(Hop("filter chain", chain.name))
    f = chain.filters[-1]
    if f.typed_config.type_url.endswith("HttpConnectionManager"):
        hcm = _unpack(f.typed_config, hcm_pb2.HttpConnectionManager)
        rc_name = hcm.rds.route_config_name
        hops.append(Hop("route configuration", rc_name))
        rc = _resource(client.resources, TYPE_ROUTE, rc_name, route_pb2.RouteConfiguration)
        if rc is None:
            return [Outcome("http-error", 404, f"route configuration {rc_name} was not sent", hops)]
        vh = select_virtual_host(rc, req.host)
        if vh is None:
            return [
                Outcome("http-error", 404, f"no virtual host of {rc_name} serves host {req.host!r}", hops)
            ]
        hops.append(Hop("virtual host", vh.name))
        route = select_route(vh, req)
        if route is None:
            return [
                Outcome("http-error", 404, f"no route of {vh.name} matches {req.method} {req.path}", hops)
            ]
        hops.append(Hop("route", route.name or route.match.safe_regex.regex))
        targets = _route_clusters(route)
    else:
        proxy = _unpack(f.typed_config, tcp_proxy_pb2.TcpProxy)
        if proxy.WhichOneof("cluster_specifier") == "cluster":
            targets = [(proxy.cluster, 1)]
        else:
            targets = [(c.name, c.weight) for c in proxy.weighted_clusters.clusters if c.weight > 0]
    out = []
    for cluster_name, weight in targets:
        o = _to_cluster(client, req, cluster_name, servers, nat, list(hops))
        o.weight = weight
        out.append(o)
    return out


def _to_cluster(
    client: Proxy, req: Request, name: str, servers: Mapping[str, Proxy], nat: Nat | None, hops: list[Hop]
) -> Outcome:
    hops.append(Hop("cluster", name))
    http = bool(req.host)
    if name == PASSTHROUGH_CLUSTER:
        dests = nat(req.ip, req.port) if nat is not None else []
        meshed = [servers[ip] for ip, _ in dests if ip in servers]
        if meshed:
            reason = (
                f"sent unencrypted to the original destination {req.ip}:{req.port}; the sidecar of "
                f"{meshed[0].name} accepts only mTLS from the mesh and closes the connection"
            )
            return Outcome("closed", None, reason, hops)
        return Outcome(
            "egress", None, f"passed through to the original destination {req.ip}:{req.port}", hops
        )
    cluster = _resource(client.resources, TYPE_CLUSTER, name, cluster_pb2.Cluster)
    if cluster is None:
        return Outcome(
            "http-error" if http else "closed", 503 if http else None, f"cluster {name} was not sent", hops
        )
    cla = _resource(client.resources, TYPE_ENDPOINT, name, endpoint_pb2.ClusterLoadAssignment)
    endpoints = [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for group in (cla.endpoints if cla is not None else [])
        for e in group.lb_endpoints
    ]
    if not endpoints:
        return Outcome(
            "http-error" if http else "closed",
            503 if http else None,
            f"cluster {name} has no endpoints",
            hops,
        )
    ip, port = endpoints[0]
    hops.append(Hop("endpoint", f"{ip}:{port}"))
    server = servers.get(ip)
    if server is None:
        return _failed(http, f"endpoint {ip}:{port} has no sidecar to complete mTLS with", hops)
    tls = _unpack(cluster.transport_socket.typed_config, tls_pb2.UpstreamTlsContext)
    peers = tls.common_tls_context.combined_validation_context.default_validation_context
    allowed_sans = [m.matcher for m in peers.match_typed_subject_alt_names]
    if allowed_sans and not any(_string_match(m, server.principal) for m in allowed_sans):
        reason = f"the certificate of {server.name} ({server.principal}) is not one cluster {name} trusts"
        return _failed(http, reason, hops)
    return _inbound(client, req, server, port, tls.sni, list(tls.common_tls_context.alpn_protocols), hops)


def _inbound(
    client: Proxy, req: Request, server: Proxy, port: int, sni: str, alpn: list[str], hops: list[Hop]
) -> Outcome:
    http = bool(req.host)
    hops.append(Hop("server listener", f"{server.name} {INBOUND_LISTENER}"))
    listener = _resource(server.resources, TYPE_LISTENER, INBOUND_LISTENER, listener_pb2.Listener)
    if listener is None:
        return _failed(http, f"{server.name}'s sidecar has no inbound listener", hops)
    chain = select_chain(listener, server.ip, port, sni=sni, transport="tls", alpn=alpn)
    if chain is None:
        reason = f"no filter chain of {server.name}'s inbound listener matches port {port}, server name {sni}"
        return _failed(http, reason, hops)
    hops.append(Hop("server filter chain", chain.name))
    for f in chain.filters:
        kind = f.typed_config.type_url
        if kind.endswith("network.rbac.v3.RBAC"):
            rbac = _unpack(f.typed_config, network_rbac_pb2.RBAC)
            policy = rbac_policy(rbac.rules, client.principal, port)
            if policy is None:
                reason = (
                    f"no TrafficTarget lets {client.principal} connect to {server.name} on port {port} "
                    "(network RBAC)"
                )
                return _failed(http, reason, hops)
            hops.append(Hop("network RBAC policy", policy))
        elif kind.endswith("HttpConnectionManager"):
            return _inbound_http(
                client, req, server, _unpack(f.typed_config, hcm_pb2.HttpConnectionManager), hops
            )
        elif kind.endswith("TcpProxy"):
            proxy = _unpack(f.typed_config, tcp_proxy_pb2.TcpProxy)
            hops.append(Hop("local cluster", proxy.cluster))
            return Outcome("served", None, f"connected to the app of {server.name}", hops)
    raise SimulationError(f"filter chain {chain.name} ends in no connection manager or TCP proxy")


def _inbound_http(client: Proxy, req: Request, server: Proxy, hcm: Any, hops: list[Hop]) -> Outcome:
    rc_name = hcm.rds.route_config_name
    hops.append(Hop("server route configuration", rc_name))
    rc = _resource(server.resources, TYPE_ROUTE, rc_name, route_pb2.RouteConfiguration)
    if rc is None:
        return Outcome(
            "http-error", 404, f"route configuration {rc_name} was not sent to {server.name}", hops
        )
    vh = select_virtual_host(rc, req.host)
    if vh is None:
        return Outcome("http-error", 404, f"no virtual host of {server.name} serves host {req.host!r}", hops)
    hops.append(Hop("server virtual host", vh.name))
    route = select_route(vh, req)
    if route is None:
        reason = (
            f"no route of {server.name} matches {req.method} {req.path} (no HTTPRouteGroup match allows it)"
        )
        return Outcome("http-error", 404, reason, hops)
    hops.append(Hop("server route", route.match.safe_regex.regex or route.name))
    per_route = route.typed_per_filter_config.get(HTTP_RBAC_FILTER)
    if per_route is not None:
        rbac = _unpack(per_route, http_rbac_pb2.RBACPerRoute)
        if rbac.HasField("rbac") and rbac_policy(rbac.rbac.rules, client.principal, 0) is None:
            reason = f"the route does not allow {client.principal} (RBAC: no TrafficTarget grants it)"
            return Outcome("http-error", 403, reason, hops)
    cluster = route.route.cluster
    hops.append(Hop("local cluster", cluster))
    return Outcome("served", 200, f"the app of {server.name} answers", hops)


# ---- a whole mesh's sidecars


@dataclass(frozen=True)
class MeshProxies:
    """Every meshed pod's sidecar in one snapshot, by pod and by IP, and the kube-proxy view of it."""

    by_pod: Mapping[tuple[str, str], Proxy]
    by_ip: Mapping[str, Proxy]
    nat: Nat

    def send(self, namespace: str, pod: str, req: Request) -> list[Outcome]:
        return simulate(self.by_pod[(namespace, pod)], req, self.by_ip, self.nat)


def mesh_proxies(
    state: MeshState, cert: CertMaterial, nat: Nat | None = None, trust_domain: str = "cluster.local"
) -> MeshProxies:
    """Generate every meshed pod's resources (as the control plane serves them) for simulation. `nat`
    is the cluster's service NAT (e.g. osm.local.workloads.nat_of); without it an original destination
    is taken as it is."""
    catalog = MeshCatalog(state)
    catalog.trust_domain = trust_domain
    gen = ConfigGenerator()
    by_pod: dict[tuple[str, str], Proxy] = {}
    for key, pod in sorted(state.pods.items()):
        if not state.is_monitored(pod.meta.namespace) or not pod.pod_ip:
            continue
        group = catalog.group_for_pod(pod)
        res = gen.resources(catalog.proxy_policy(group), cert)
        by_pod[key] = Proxy(f"{key[0]}/{key[1]}", pod.pod_ip, group.identity.principal(trust_domain), res)
    return MeshProxies(by_pod, {p.ip: p for p in by_pod.values()}, nat or (lambda ip, port: [(ip, port)]))
