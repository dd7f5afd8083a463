"""MeshCatalog: the policy brain. Pure: a function of one MeshState.

Permissive mode: every meshed identity reaches every mesh service (still over mTLS).
SMI mode: default deny; TrafficTargets grant sources access to a destination identity, HTTPRouteGroups
and TCPRoutes narrow what they may do. TrafficSplits weight an apex service over its backends.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from functools import cached_property

from osm.apis.policy import Egress, IngressBackend, UpstreamTrafficSetting
from osm.catalog.index import MeshIndex
from osm.models.identity import ServiceIdentity
from osm.models.k8s import PROTOCOL_GRPC, PROTOCOL_HTTP, Pod
from osm.models.service import MeshService
from osm.models.trafficpolicy import (
    ANY_PRINCIPAL,
    EgressHost,
    EgressPort,
    HashedTuple,
    HTTPRouteRule,
    InboundPolicy,
    InboundService,
    InboundVirtualHost,
    IngressRoute,
    NetworkRBACPolicy,
    OutboundPolicy,
    ProxyPolicy,
    RetryPolicy,
    TLSSettings,
    Upstream,
    UpstreamCluster,
    UpstreamSettings,
    WeightedCluster,
)
from osm.smi.models import WILDCARD_METHOD, WILDCARD_PATH, TrafficTarget
from osm.state.decode import ObjectKey
from osm.state.snapshot import MeshState, NsName

HTTP_PROTOCOLS = (PROTOCOL_HTTP, PROTOCOL_GRPC)
NO_SOURCE = "0.0.0.0/32"  # a source range no connection comes from
_WILDCARD_ROUTE = (WILDCARD_PATH, WILDCARD_METHOD, ())


@dataclass(frozen=True, slots=True, order=True)
class ProxyGroup:
    """Proxies whose config is identical: same identity, same services backed by their pods."""

    identity: ServiceIdentity
    services: tuple[MeshService, ...]
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.identity, self.services)))  # groups key every cache

    def __hash__(self) -> int:
        return self._hash


class MeshCatalog:
    index: MeshIndex

    def __init__(
        self,
        state: MeshState,
        previous: MeshCatalog | None = None,
        changed: Collection[ObjectKey] | None = None,
    ) -> None:
        """`previous` and `changed` (the keys changed since it) let the index carry over what a change
        cannot touch."""
        self.state = state
        self.index = MeshIndex.build(state, previous.index if previous is not None else None, changed)
        self.trust_domain = "cluster.local"
        self._outbound: dict[ServiceIdentity, OutboundPolicy] = {}
        # Permissive mode: every identity of a namespace has the same upstreams (only `same_namespace`
        # depends on the client), so they share one computation and the same tuples. The upstream
        # clusters do not depend on the client at all: every namespace shares one tuple of them, so the
        # generator's memo keys made of it compare by identity, not element by element.
        self._permissive: dict[str, OutboundPolicy] = {}
        self._permissive_clusters: tuple[UpstreamCluster, ...] | None = None
        self._inbound: dict[ProxyGroup, InboundPolicy] = {}
        # A MeshConfig change that keeps the traffic mode leaves every policy as it was but for the
        # egress flag: the previous catalog's policies are carried over (computed with `_carried_td`).
        self._carried_outbound: dict[ServiceIdentity, OutboundPolicy] = {}
        self._carried_inbound: dict[ProxyGroup, InboundPolicy] = {}
        self._carried_td = ""
        if (
            previous is not None
            and changed
            and all(k.kind == "MeshConfig" for k in changed)
            and previous.state.permissive == state.permissive
            and previous.state.mesh_config.feature_flags.enable_retry_policy
            == state.mesh_config.feature_flags.enable_retry_policy
            and previous.state.mesh_config.feature_flags.enable_egress_policy
            == state.mesh_config.feature_flags.enable_egress_policy
        ):
            self._carried_outbound = {**previous._carried_outbound, **previous._outbound}
            self._carried_inbound = {**previous._carried_inbound, **previous._inbound}
            self._carried_td = previous.trust_domain

    @property
    def warnings(self) -> list[str]:
        return (
            self.index.warnings
            + self._target_warnings
            + self._traffic_settings[1]
            + self._ingress[1]
            + self._egresses[1]
        )

    # ---- proxies

    def group_for_pod(self, pod: Pod) -> ProxyGroup:
        return ProxyGroup(
            ServiceIdentity(pod.meta.namespace, pod.service_account), self.index.services_for_pod(pod)
        )

    def proxy_policy(self, group: ProxyGroup) -> ProxyPolicy:
        side = self.state.mesh_config.sidecar
        return ProxyPolicy(
            identity=group.identity,
            trust_domain=self.trust_domain,
            tls=TLSSettings(side.tls_min_protocol_version, side.tls_max_protocol_version),
            inbound=self.inbound_policy(group),
            outbound=self.outbound_policy(group.identity),
            tracing=self.state.mesh_config.observability.tracing,
        )

    # ---- SMI indexes

    @cached_property
    def _targets(
        self,
    ) -> tuple[dict[ServiceIdentity, list[TrafficTarget]], dict[ServiceIdentity, set[ServiceIdentity]]]:
        by_dest: dict[ServiceIdentity, list[TrafficTarget]] = defaultdict(list)
        allowed: dict[ServiceIdentity, set[ServiceIdentity]] = defaultdict(set)
        for (ns, _), tt in sorted(self.state.traffic_targets.items()):
            if not self.state.is_monitored(ns):
                continue
            dest = ServiceIdentity(tt.destination.namespace, tt.destination.name)
            by_dest[dest].append(tt)
            for s in tt.sources:
                allowed[ServiceIdentity(s.namespace, s.name)].add(dest)
        return by_dest, allowed

    @cached_property
    def _target_warnings(self) -> list[str]:
        out = []
        for (ns, name), tt in sorted(self.state.traffic_targets.items()):
            for r in tt.rules:
                table = self.state.http_route_groups if r.kind == "HTTPRouteGroup" else self.state.tcp_routes
                if (ns, r.name) not in table:
                    out.append(
                        f"TrafficTarget {ns}/{name}: {r.kind} {ns}/{r.name} does not exist; "
                        "the rule grants nothing"
                    )
        return out

    def allowed_destinations(self, source: ServiceIdentity) -> frozenset[ServiceIdentity]:
        return frozenset(self._targets[1].get(source, ()))

    # ---- outbound

    def outbound_services(self, identity: ServiceIdentity) -> list[NsName]:
        ix = self.index
        if self.state.permissive:
            return sorted(ix.services)
        keys = {k for dest in self.allowed_destinations(identity) for k in ix.identity_services.get(dest, ())}
        # An apex is reachable when any of its backends is.
        keys.update(apex for k in list(keys) for apex in ix.backend_apexes.get(k, ()))
        return sorted(keys)

    def outbound_policy(self, identity: ServiceIdentity) -> OutboundPolicy:
        cached = self._outbound.get(identity)
        if cached is not None:
            return cached
        carried = self._carried_outbound.get(identity) if self._carried_td == self.trust_domain else None
        if carried is not None:
            egress = self.state.mesh_config.traffic.enable_egress
            policy = carried if carried.egress == egress else replace(carried, egress=egress)
        elif self.state.permissive and identity not in self._retries and identity not in self._egresses[0]:
            shared = self._permissive.get(identity.namespace)
            if shared is None:
                shared = self._compute_outbound(identity)
                if shared.clusters == self._permissive_clusters:
                    shared = replace(shared, clusters=self._permissive_clusters)
                else:
                    self._permissive_clusters = shared.clusters
                self._permissive[identity.namespace] = shared
            policy = replace(shared, identity=identity)
        else:
            policy = self._compute_outbound(identity)
        self._outbound[identity] = policy
        return policy

    @cached_property
    def _retries(self) -> dict[ServiceIdentity, dict[NsName, RetryPolicy]]:
        """Source identity -> destination service -> its retry policy: the first Retry (by namespace
        and name) naming the pair; none while the feature flag is off."""
        out: dict[ServiceIdentity, dict[NsName, RetryPolicy]] = {}
        if not self.state.mesh_config.feature_flags.enable_retry_policy:
            return out
        for (ns, _), retry in sorted(self.state.retries.items()):
            if not self.state.is_monitored(ns):
                continue
            by_service = out.setdefault(ServiceIdentity(retry.source.namespace, retry.source.name), {})
            for dest in retry.destinations:
                by_service.setdefault((dest.namespace, dest.name), retry.policy)
        return out

    @cached_property
    def _traffic_settings(self) -> tuple[dict[NsName, UpstreamTrafficSetting], list[str]]:
        """(namespace, service) -> its UpstreamTrafficSetting (the first by name when several name one
        host), and what is ignored, said."""
        out: dict[NsName, UpstreamTrafficSetting] = {}
        warnings = []
        for (ns, name), uts in sorted(self.state.upstream_traffic_settings.items()):
            svc = uts.service()
            if not self.state.is_monitored(ns) or svc is None:
                continue
            first = out.setdefault((ns, svc), uts)
            if first is not uts:
                warnings.append(
                    f"UpstreamTrafficSetting {ns}/{name}: host {uts.host} already has "
                    f"UpstreamTrafficSetting {ns}/{first.meta.name}; ignored"
                )
            elif (ns, svc) not in self.index.services:
                warnings.append(
                    f"UpstreamTrafficSetting {ns}/{name}: no Service {ns}/{svc} (host {uts.host})"
                )
        return out, warnings

    def _upstream_settings(self, key: NsName) -> UpstreamSettings | None:
        uts = self._traffic_settings[0].get(key)
        if uts is None or (uts.upstream.connection is None and uts.upstream.outlier is None):
            return None
        return uts.upstream

    @cached_property
    def _egresses(self) -> tuple[dict[ServiceIdentity, tuple[EgressPort, ...]], list[str]]:
        """Source identity -> what its Egress policies allow, port by port (none while the feature flag
        is off), and what conflicts, said."""
        if not self.state.mesh_config.feature_flags.enable_egress_policy:
            return {}, []
        by_source: dict[ServiceIdentity, list[Egress]] = defaultdict(list)
        for (ns, _), eg in sorted(self.state.egresses.items()):
            if self.state.is_monitored(ns):
                for src in eg.sources:
                    by_source[ServiceIdentity(src.namespace, src.name)].append(eg)
        warnings: list[str] = []
        out = {identity: self._egress_ports(policies, warnings) for identity, policies in by_source.items()}
        return out, sorted(set(warnings))

    def _egress_routes(self, eg: Egress) -> tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] | None:
        """The HTTP routes an Egress narrows its hosts to (None: any request)."""
        if not eg.route_groups:
            return None
        routes: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
        for name in eg.route_groups:
            group = self.state.http_route_groups.get((eg.meta.namespace, name))
            for m in group.matches if group is not None else ():
                routes.update((m.path_regex, method, m.headers) for method in m.methods)
        return tuple(sorted(routes))

    def _egress_ports(self, policies: list[Egress], warnings: list[str]) -> tuple[EgressPort, ...]:
        protocol: dict[int, str] = {}
        hosts: dict[int, dict[str, set[tuple[str, str, tuple[tuple[str, str], ...]]] | None]] = {}
        ranges: dict[int, set[str] | None] = {}
        for eg in policies:
            routes = self._egress_routes(eg)
            for port, proto in eg.ports:
                if protocol.setdefault(port, proto) != proto:
                    warnings.append(
                        f"Egress {eg.meta.namespace}/{eg.meta.name}: port {port} is {protocol[port]} by "
                        f"another Egress of the same source; its {proto} rule is ignored"
                    )
                    continue
                if proto == "http" or proto == "https":
                    by_host = hosts.setdefault(port, {})
                    for h in eg.hosts:
                        known = by_host.get(h, set())
                        by_host[h] = None if routes is None or known is None else known | set(routes)
                elif not eg.ip_ranges:
                    ranges[port] = None  # any address
                elif ranges.get(port, set()) is not None:
                    ranges[port] = (ranges.get(port) or set()) | set(eg.ip_ranges)
        out = []
        for port, proto in sorted(protocol.items()):
            host_list = tuple(
                EgressHost(name, tuple(sorted(r)) if r is not None else ())
                for name, r in sorted(hosts.get(port, {}).items())
                if r is None or r  # a host whose route groups match nothing grants nothing
            )
            if proto in ("http", "https") and not host_list:
                continue
            cidrs = ranges.get(port)
            out.append(EgressPort(port, proto, host_list, tuple(sorted(cidrs)) if cidrs else ()))
        return tuple(out)

    def _compute_outbound(self, identity: ServiceIdentity) -> OutboundPolicy:
        # Of the MeshConfig this reads only the traffic mode, the egress flag and the retry flag, and
        # inbound_policy only the mode: a MeshConfig change carries policies over on that basis (see
        # __init__). Reading any other MeshConfig field here needs the carry-over condition to include it.
        ix = self.index
        retries = self._retries.get(identity, {})
        permissive = self.state.permissive
        allowed = self.allowed_destinations(identity)
        upstreams: list[Upstream] = []
        clusters: dict[MeshService, UpstreamCluster] = {}

        def cluster_for(ms: MeshService) -> None:
            if ms in clusters:
                return
            key = (ms.namespace, ms.name)
            peers = ix.service_identities.get(key, ())
            eps = ix.endpoints.get(ms, ())
            if not permissive:
                peers = tuple(p for p in peers if p in allowed)
                eps = tuple(e for e in eps if e.identity is not None and e.identity in allowed)
            clusters[ms] = UpstreamCluster(
                ms,
                tuple(sorted(peers)),
                tuple(e.endpoint for e in eps),
                self._upstream_settings(key),
                per_pod=ix.addressed_by_pod(key),
            )

        for key in self.outbound_services(identity):
            split = ix.splits.get(key)
            for ms in ix.mesh_services.get(key, ()):
                if split is not None:
                    weighted = []
                    for b in split.backends:
                        backend = self._backend_port((key[0], b.service), ms.port)
                        if backend is None:
                            continue
                        cluster_for(backend)
                        weighted.append(WeightedCluster(backend, b.weight))
                    if not weighted:
                        continue
                else:
                    cluster_for(ms)
                    weighted = [WeightedCluster(ms, 100)]
                upstreams.append(
                    Upstream(
                        service=ms,
                        addresses=ix.addresses(key),
                        clusters=tuple(weighted),
                        same_namespace=key[0] == identity.namespace,
                        retry=retries.get(key),
                    )
                )
        return OutboundPolicy(
            identity=identity,
            upstreams=HashedTuple(sorted(upstreams)),
            clusters=HashedTuple(sorted(clusters.values())),
            egress=self.state.mesh_config.traffic.enable_egress,
            egress_ports=self._egresses[0].get(identity, ()),
        )

    def _backend_port(self, key: NsName, port: int) -> MeshService | None:
        ports = self.index.mesh_services.get(key, ())
        for ms in ports:
            if ms.port == port:
                return ms
        return ports[0] if len(ports) == 1 else None

    # ---- inbound

    def inbound_policy(self, group: ProxyGroup) -> InboundPolicy:
        cached = self._inbound.get(group)
        if cached is None and self._carried_td == self.trust_domain:
            cached = self._carried_inbound.get(group)
        if cached is not None:
            self._inbound[group] = cached
            return cached
        permissive = self.state.permissive
        targets = self._targets[0].get(group.identity, [])
        routes = self._http_rules(targets)
        services = []
        settings = self._traffic_settings[0]

        def vhost(svc: MeshService) -> InboundVirtualHost:
            uts = settings.get((svc.namespace, svc.name))
            if uts is None:
                return InboundVirtualHost(svc, routes)
            return InboundVirtualHost(svc, routes, uts.http_rate_limit, uts.route_limits)

        for ms in group.services:
            vhosts: list[InboundVirtualHost] = []
            if ms.protocol in HTTP_PROTOCOLS:
                vhosts.append(vhost(ms))
                # Backends of a split also answer the apex's hostnames: the Host header is not rewritten.
                for apex_key in self.index.backend_apexes.get((ms.namespace, ms.name), ()):
                    for apex in self.index.mesh_services.get(apex_key, ()):
                        if apex.port == ms.port or len(self.index.mesh_services[apex_key]) == 1:
                            vhosts.append(vhost(apex))
            own = settings.get((ms.namespace, ms.name))
            services.append(
                InboundService(ms, tuple(vhosts), own.tcp_rate_limit if own is not None else None)
            )
        network = None if permissive else self._network_rbac(targets)
        ingress, sources = self._ingress_routes(group)
        policy = InboundPolicy(
            identity=group.identity,
            services=tuple(services),
            network_rbac=network,
            ingress=ingress,
            ingress_sources=sources,
        )
        self._inbound[group] = policy
        return policy

    @cached_property
    def _ingress(self) -> tuple[dict[tuple[str, str, int], IngressBackend], list[str]]:
        """(namespace, service, targetPort) -> the IngressBackend for it (the first by name when several
        claim one backend), and the conflicts, said."""
        out: dict[tuple[str, str, int], IngressBackend] = {}
        warnings = []
        for (ns, name), ib in sorted(self.state.ingress_backends.items()):
            if not self.state.is_monitored(ns):
                continue
            for b in ib.backends:
                first = out.setdefault((ns, b.name, b.port), ib)
                if first is not ib:
                    warnings.append(
                        f"IngressBackend {ns}/{name}: backend {b.name} port {b.port} conflicts with "
                        f"IngressBackend {ns}/{first.meta.name}; ignored"
                    )
        return out, warnings

    def ingress_conflicts(self, namespace: str) -> list[str]:
        """IngressBackends of `namespace` that claim a backend port another one already claims."""
        return [w for w in self._ingress[1] if w.startswith(f"IngressBackend {namespace}/")]

    def _ingress_routes(self, group: ProxyGroup) -> tuple[tuple[IngressRoute, ...], frozenset[NsName]]:
        routes: list[IngressRoute] = []
        sources: set[NsName] = set()
        by_backend = self._ingress[0]
        for ms in group.services:
            ib = by_backend.get((ms.namespace, ms.name, ms.target_port))
            if ib is None:
                continue
            backend = next(b for b in ib.backends if (b.name, b.port) == (ms.name, ms.target_port))
            ranges = set(ib.ip_ranges)
            for key in ib.source_services:
                sources.add(key)
                for src in self.index.mesh_services.get(key, ()):
                    ranges.update(f"{e.endpoint.ip}/32" for e in self.index.endpoints.get(src, ()))
            if ib.source_services and not ranges:
                ranges.add(NO_SOURCE)  # the source Services have no endpoints: nobody may connect yet
            skip = backend.skip_client_cert_validation
            routes.append(
                IngressRoute(
                    service=ms,
                    protocol=backend.protocol,
                    source_ranges=tuple(sorted(ranges)),
                    principals=(ANY_PRINCIPAL,) if skip else ib.principals,
                    sni_hosts=backend.sni_hosts,
                    require_client_cert=not skip,
                )
            )
        return tuple(routes), frozenset(sources)

    def _principals(self, tt: TrafficTarget) -> tuple[str, ...]:
        return tuple(
            sorted({ServiceIdentity(s.namespace, s.name).principal(self.trust_domain) for s in tt.sources})
        )

    def _http_rules(self, targets: list[TrafficTarget]) -> tuple[HTTPRouteRule, ...]:
        if self.state.permissive:
            return (HTTPRouteRule(WILDCARD_PATH, WILDCARD_METHOD, (), (ANY_PRINCIPAL,)),)
        merged: dict[tuple[str, str, tuple[tuple[str, str], ...]], set[str]] = defaultdict(set)
        for tt in targets:
            principals = self._principals(tt)
            for rule in tt.rules:
                if rule.kind != "HTTPRouteGroup":
                    continue
                group = self.state.http_route_groups.get((tt.meta.namespace, rule.name))
                if group is None:
                    continue
                # An empty match list means every match of the group (SMI semantics).
                matches = (
                    group.matches
                    if not rule.matches
                    else tuple(m for m in (group.match(n) for n in rule.matches) if m is not None)
                )
                for m in matches:
                    for method in m.methods:
                        merged[(m.path_regex, method, m.headers)].update(principals)
        return tuple(
            sorted(HTTPRouteRule(p, meth, h, tuple(sorted(pr))) for (p, meth, h), pr in merged.items())
        )

    def _network_rbac(self, targets: list[TrafficTarget]) -> tuple[NetworkRBACPolicy, ...]:
        out = []
        for tt in targets:
            ports: set[int] = set()
            tcp_rules = [r for r in tt.rules if r.kind == "TCPRoute"]
            for rule in tcp_rules:
                route = self.state.tcp_routes.get((tt.meta.namespace, rule.name))
                if route is not None:
                    ports.update(route.ports)
            if tcp_rules and not ports and len(tcp_rules) == len(tt.rules):
                continue  # only TCPRoutes that do not exist (or match no port): the target grants nothing
            out.append(
                NetworkRBACPolicy(
                    name=f"{tt.meta.namespace}/{tt.meta.name}",
                    principals=self._principals(tt),
                    ports=tuple(sorted(ports)),
                )
            )
        return tuple(out)
