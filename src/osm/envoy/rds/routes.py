"""RDS: `rds-outbound.<port>` (wildcard routes to weighted clusters) and `rds-inbound.<targetPort>`
(SMI routes with per-route RBAC to the local app)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from osm.envoy.common import PASSTHROUGH_CLUSTER
from osm.envoy.rbac.policies import HTTP_RBAC_FILTER, http_rbac_per_route
from osm.envoy.rds import ratelimit
from osm.models.service import MeshService
from osm.models.trafficpolicy import (
    EgressPort,
    HTTPRateLimit,
    HTTPRouteRule,
    InboundService,
    IngressRoute,
    RetryPolicy,
    Upstream,
)
from osm.smi.models import WILDCARD_METHOD, WILDCARD_PATH


def outbound_name(port: int) -> str:
    return f"rds-outbound.{port}"


def inbound_name(port: int) -> str:
    return f"rds-inbound.{port}"


def egress_name(port: int) -> str:
    return f"rds-egress.{port}"


def egress_cluster_name(host: str, port: int) -> str:
    """An HTTP egress host's cluster: DNS for a name, the original destination for a wildcard."""
    return PASSTHROUGH_CLUSTER if host.startswith("*.") else f"{host}:{port}"


def egress_route_config(egress: EgressPort) -> Any:
    """`rds-egress.<port>`: a virtual host per allowed host, with its allowed routes (any without route
    groups); a request for another host, or another route, gets 404."""
    config = route_pb2.RouteConfiguration(
        name=egress_name(egress.port), validate_clusters=wrappers_pb2.BoolValue(value=False)
    )
    for host in egress.hosts:
        action = rc.RouteAction(cluster=egress_cluster_name(host.name, egress.port), timeout=_no_timeout())
        rules = host.routes or ((WILDCARD_PATH, WILDCARD_METHOD, ()),)
        config.virtual_hosts.append(
            rc.VirtualHost(
                name=f"egress_virtual-host|{host.name}",
                domains=[host.name, f"{host.name}:{egress.port}"],
                routes=[rc.Route(match=_match(p, m, h), route=action) for p, m, h in rules],
            )
        )
    return config


def ingress_name(port: int) -> str:
    return f"rds-ingress.{port}"


def _regex(value: str) -> Any:
    return regex_pb2.RegexMatcher(regex=value)


def _match(path_regex: str, method: str, headers: Iterable[tuple[str, str]]) -> Any:
    m = rc.RouteMatch(safe_regex=_regex(path_regex))
    m.headers.append(
        rc.HeaderMatcher(
            name=":method",
            string_match=string_pb2.StringMatcher(
                safe_regex=_regex(".*" if method == WILDCARD_METHOD else method)
            ),
        )
    )
    for name, value in headers:
        m.headers.append(
            rc.HeaderMatcher(
                name=":authority" if name == "host" else name,
                string_match=string_pb2.StringMatcher(safe_regex=_regex(value)),
            )
        )
    return m


def _no_timeout() -> Any:
    return duration_pb2.Duration(seconds=0)


def _ms(ms: int) -> Any:
    return duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def retry_policy(p: RetryPolicy) -> Any:
    """A Retry's policy on the outbound route (its conditions as Envoy's `retry_on`, gRPC ones included)."""
    return rc.RetryPolicy(
        retry_on=p.retry_on,
        num_retries=wrappers_pb2.UInt32Value(value=p.num_retries),
        per_try_timeout=_ms(p.per_try_timeout_ms),
        retry_back_off=rc.RetryPolicy.RetryBackOff(base_interval=_ms(p.backoff_base_ms)),
    )


def outbound_route_config(port: int, upstreams: Iterable[Upstream], trust_domain: str) -> Any:
    config = route_pb2.RouteConfiguration(
        name=outbound_name(port),
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        ignore_port_in_host_matching=True,  # domains carry no port; the Host header is forwarded as sent
    )
    for up in upstreams:
        action = rc.RouteAction(
            timeout=_no_timeout(),
            weighted_clusters=rc.WeightedCluster(
                clusters=[
                    rc.WeightedCluster.ClusterWeight(
                        name=w.service.cluster_name, weight=wrappers_pb2.UInt32Value(value=w.weight)
                    )
                    for w in up.clusters
                ]
            ),
        )
        if up.retry is not None:
            action.retry_policy.CopyFrom(retry_policy(up.retry))
        config.virtual_hosts.append(
            rc.VirtualHost(
                name=f"outbound_virtual-host|{up.service.fqdn(trust_domain)}",
                domains=list(up.service.hostnames(up.same_namespace, trust_domain)),
                routes=[rc.Route(match=_match(WILDCARD_PATH, WILDCARD_METHOD, ()), route=action)],
            )
        )
    return config


def _inbound_route(rule: HTTPRouteRule, local: MeshService, limit: HTTPRateLimit | None, prefix: str) -> Any:
    route = rc.Route(
        match=_match(rule.path_regex, rule.method, rule.headers),
        route=rc.RouteAction(cluster=local.local_cluster_name, timeout=_no_timeout()),
    )
    route.typed_per_filter_config[HTTP_RBAC_FILTER].CopyFrom(http_rbac_per_route(rule.principals))
    if limit is not None:  # the UpstreamTrafficSetting's httpRoutes entry for this path
        route.typed_per_filter_config[ratelimit.HTTP_FILTER].CopyFrom(ratelimit.http_per_route(limit, prefix))
    return route


def inbound_route_config(port: int, services: Iterable[InboundService], trust_domain: str) -> Any:
    config = route_pb2.RouteConfiguration(
        name=inbound_name(port),
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        ignore_port_in_host_matching=True,
    )
    seen: set[str] = set()
    for svc in services:
        for vh in svc.virtual_hosts:
            name = f"inbound_virtual-host|{vh.service.fqdn(trust_domain)}"
            if name in seen:
                continue
            seen.add(name)
            prefix = f"inbound_{vh.service.namespace}/{vh.service.name}_{svc.service.target_port}"
            by_path = dict(vh.route_limits)
            host = rc.VirtualHost(
                name=name,
                domains=list(vh.service.hostnames(True, trust_domain)),
                routes=[_inbound_route(r, svc.service, by_path.get(r.path_regex), prefix) for r in vh.routes],
            )
            if vh.rate_limit is not None:
                host.typed_per_filter_config[ratelimit.HTTP_FILTER].CopyFrom(
                    ratelimit.http_per_route(vh.rate_limit, prefix)
                )
            config.virtual_hosts.append(host)
    return config


def ingress_route_config(port: int, routes: Iterable[IngressRoute]) -> Any:
    """`rds-ingress.<targetPort>`: whatever the ingress asks, to the app (the sources were checked by the
    filter chain)."""
    first = next(iter(routes))
    return route_pb2.RouteConfiguration(
        name=ingress_name(port),
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        virtual_hosts=[
            rc.VirtualHost(
                name=f"ingress_virtual-host|{port}",
                domains=["*"],
                routes=[
                    rc.Route(
                        match=rc.RouteMatch(prefix="/"),
                        route=rc.RouteAction(cluster=first.service.local_cluster_name, timeout=_no_timeout()),
                    )
                ],
            )
        ],
    )
