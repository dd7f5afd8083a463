"""LDS: `outbound-listener` on 15001: filter chains to the upstream services, egress passthrough."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.matching.common_inputs.network.v3 import network_inputs_pb2
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import range_pb2 as int_range_pb2
from google.protobuf import wrappers_pb2
from xds.core.v3 import cidr_pb2 as range_pb2
from xds.core.v3.extension_pb2 import TypedExtensionConfig
from xds.type.matcher.v3 import ip_pb2, matcher_pb2

from osm.envoy import wire
from osm.envoy.common import PASSTHROUGH_CLUSTER, PORT_OUTBOUND, pack, socket_address, stdout_access_log
from osm.envoy.lds.hcm import hcm_filter
from osm.envoy.rds.routes import egress_name, outbound_name
from osm.models.trafficpolicy import EgressPort, OutboundPolicy, Tracing, Upstream, WeightedCluster

OUTBOUND_LISTENER = "outbound-listener"
EGRESS_CHAIN = "outbound-egress-filter-chain"
HTTP_PROTOCOLS = ("http", "grpc")


def original_dst_filter() -> Any:
    return lc.ListenerFilter(
        name="envoy.filters.listener.original_dst", typed_config=pack(original_dst_pb2.OriginalDst())
    )


def tcp_proxy_filter(stat_prefix: str, clusters: Iterable[WeightedCluster] | str) -> Any:
    if isinstance(clusters, str):
        proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=clusters)
    else:
        cl = list(clusters)
        if len(cl) == 1:
            proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cl[0].service.cluster_name)
        else:
            proxy = tcp_proxy_pb2.TcpProxy(
                stat_prefix=stat_prefix,
                weighted_clusters=tcp_proxy_pb2.TcpProxy.WeightedCluster(
                    clusters=[
                        tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(
                            name=w.service.cluster_name, weight=w.weight
                        )
                        for w in cl
                    ]
                ),
            )
    return lc.Filter(name="envoy.filters.network.tcp_proxy", typed_config=pack(proxy))


def chain_addresses(upstreams: Iterable[Upstream]) -> list[tuple[Upstream, tuple[str, ...]]]:
    """The upstreams that get a filter chain, each with the addresses it matches: those not matched by
    an earlier chain on the same port. Upstreams left with no address or no weight get no chain."""
    taken: set[tuple[int, str]] = set()
    out = []
    for up in upstreams:
        ips = tuple(ip for ip in up.addresses if (up.service.port, ip) not in taken)
        if not ips or sum(w.weight for w in up.clusters) == 0:
            continue
        taken.update((up.service.port, ip) for ip in ips)
        out.append((up, ips))
    return out


# ---- filter chains
#
# Upstream OSM gives every upstream service its own filter chain, matched on port and address. On the
# chain of an HTTP upstream there is nothing per service: the HTTP connection manager routes by host
# through `rds-outbound.<port>`, the same for every service on that port. So the HTTP upstreams of a
# port share one chain here, and the listener's filter chain matcher maps each destination (port, IP)
# to its chain by name: the port by an exact map, the address by an IP range matcher (one range
# matcher per chain, holding its addresses as /32 or /128 ranges). In permissive mode that makes the
# listener ~24 bytes per upstream address instead of ~1.3 KB (each chain repeated the connection manager
# and its access log; an exact map of addresses, ~110 bytes each, repeated the chain's name). Adding or
# removing an upstream changes only the matcher, which Envoy applies without draining connections.


def http_chain_name(port: int) -> str:
    return f"outbound-mesh-http.{port}"


def is_http(up: Upstream) -> bool:
    return up.service.protocol in HTTP_PROTOCOLS


def chain_name(up: Upstream) -> str:
    return http_chain_name(up.service.port) if is_http(up) else up.service.outbound_chain_name


def http_filter_chain(port: int, tracing: Tracing | None = None) -> Any:
    """The chain of every HTTP and gRPC upstream on `port`."""
    return lc.FilterChain(
        name=http_chain_name(port), filters=[hcm_filter(outbound_name(port), [], tracing=tracing)]
    )


def tcp_filter_chain(up: Upstream) -> Any:
    """A TCP upstream's own chain: a TCP proxy to its clusters."""
    svc = up.service
    stat_prefix = f"outbound-mesh-tcp-proxy.{svc.namespace}/{svc.name}_{svc.port}"
    return lc.FilterChain(name=svc.outbound_chain_name, filters=[tcp_proxy_filter(stat_prefix, up.clusters)])


def filter_chains(chains: Iterable[tuple[Upstream, tuple[str, ...]]]) -> list[tuple[str, Upstream]]:
    """Each chain once, by name, in the order of first use, with the first upstream that uses it."""
    out: dict[str, Upstream] = {}
    for up, _ in chains:
        out.setdefault(chain_name(up), up)
    return list(out.items())


def build_filter_chain(up: Upstream, tracing: Tracing | None = None) -> Any:
    return http_filter_chain(up.service.port, tracing) if is_http(up) else tcp_filter_chain(up)


# ---- the filter chain matcher: destination port (exact), then destination IP (an IP range matcher whose
# ranges are the upstreams' /32 or /128 addresses, one range matcher per chain), to a chain's name

_PORT_INPUT = TypedExtensionConfig(
    name="destination-port", typed_config=pack(network_inputs_pb2.DestinationPortInput())
)
_IP_INPUT = TypedExtensionConfig(
    name="destination-ip", typed_config=pack(network_inputs_pb2.DestinationIPInput())
)
_ACTION = "filter-chain"
IP_MATCHER = "envoy.matching.custom_matchers.trie_matcher"


def _on_match_chain(name: str) -> Any:
    return matcher_pb2.Matcher.OnMatch(
        action=TypedExtensionConfig(name=_ACTION, typed_config=pack(wrappers_pb2.StringValue(value=name)))
    )


def _cidr(ip: str) -> Any:
    addr = ipaddress.ip_address(ip)
    return range_pb2.CidrRange(
        address_prefix=addr.compressed, prefix_len=wrappers_pb2.UInt32Value(value=addr.max_prefixlen)
    )


def addresses_by_port_and_chain(
    chains: Iterable[tuple[Upstream, tuple[str, ...]]],
) -> dict[int, dict[str, list[str]]]:
    """Each port's addresses by chain name, in the order of `chains` (the matcher's layout)."""
    out: dict[int, dict[str, list[str]]] = {}
    for up, ips in chains:
        out.setdefault(up.service.port, {}).setdefault(chain_name(up), []).extend(ips)
    return out


def chain_matcher(
    chains: Iterable[tuple[Upstream, tuple[str, ...]]], egress: Iterable[EgressPort] = ()
) -> Any:
    """Listener.filter_chain_matcher for `chains` (see chain_addresses), built as a message. An egress
    port's chain takes its ranges (TCP with ipAddresses), else whatever no mesh address of the port
    matches."""
    m = matcher_pb2.Matcher()
    tree = m.matcher_tree
    tree.input.CopyFrom(_PORT_INPUT)
    mesh = addresses_by_port_and_chain(chains)
    by_port = {e.port: e for e in egress}
    for port in sorted(set(mesh) | set(by_port), key=lambda p: (p not in mesh, p)):
        by_chain = mesh.get(port, {})
        eg = by_port.get(port)
        range_matchers = [
            ip_pb2.IPMatcher.IPRangeMatcher(ranges=[_cidr(ip) for ip in ips], on_match=_on_match_chain(name))
            for name, ips in by_chain.items()
        ]
        if eg is not None and eg.ip_ranges:
            range_matchers.append(
                ip_pb2.IPMatcher.IPRangeMatcher(
                    ranges=[_network(c) for c in eg.ip_ranges], on_match=_on_match_chain(eg.chain_name)
                )
            )
        entry = tree.exact_match_map.map[str(port)]
        if not range_matchers:  # egress on a port without mesh addresses: any destination
            entry.CopyFrom(_on_match_chain(eg.chain_name if eg is not None else ""))
            continue
        inner = entry.matcher.matcher_tree
        inner.input.CopyFrom(_IP_INPUT)
        ip_matcher = ip_pb2.IPMatcher(range_matchers=range_matchers)
        inner.custom_match.CopyFrom(TypedExtensionConfig(name=IP_MATCHER, typed_config=pack(ip_matcher)))
        if eg is not None and not eg.ip_ranges:
            entry.matcher.on_no_match.CopyFrom(_on_match_chain(eg.chain_name))
    return m


def _network(cidr: str) -> Any:
    net = ipaddress.ip_network(cidr, strict=False)
    return range_pb2.CidrRange(
        address_prefix=str(net.network_address), prefix_len=wrappers_pb2.UInt32Value(value=net.prefixlen)
    )


def egress_filter_chain(eg: EgressPort, tracing: Tracing | None = None) -> Any:
    """An egress port's chain: HTTP routed by host (`rds-egress.<port>`); HTTPS to the original
    destination when the SNI is an allowed host; TCP to the original destination."""
    stat_prefix = f"outbound-egress-{eg.protocol}.{eg.port}"
    if eg.protocol == "http":
        filters = [hcm_filter(egress_name(eg.port), [], tracing=tracing)]
    elif eg.protocol == "https":
        filters = [sni_filter(eg, stat_prefix), tcp_proxy_filter(stat_prefix, PASSTHROUGH_CLUSTER)]
    else:
        filters = [tcp_proxy_filter(stat_prefix, PASSTHROUGH_CLUSTER)]
    return lc.FilterChain(name=eg.chain_name, filters=filters)


def sni_filter(eg: EgressPort, stat_prefix: str) -> Any:
    """Network RBAC: only TLS whose server name is an allowed host (a `*.` host: its subdomains)."""
    names = [
        string_pb2.StringMatcher(suffix=h.name[1:])
        if h.name.startswith("*.")
        else string_pb2.StringMatcher(exact=h.name)
        for h in eg.hosts
    ]
    allowed = rbac_pb2.Permission(
        or_rules=rbac_pb2.Permission.Set(rules=[rbac_pb2.Permission(requested_server_name=n) for n in names])
    )
    rules = rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW)
    rules.policies["egress-sni"].CopyFrom(
        rbac_pb2.Policy(permissions=[allowed], principals=[rbac_pb2.Principal(any=True)])
    )
    return lc.Filter(
        name="envoy.filters.network.rbac",
        typed_config=pack(network_rbac_pb2.RBAC(stat_prefix=f"{stat_prefix}.", rules=rules)),
    )


def ip_range(ip: str) -> bytes:
    """One address as a range of its chain's range matcher (IPRangeMatcher.ranges, field 1), serialized:
    composable by concatenation."""
    return wire.field_bytes(1, _cidr(ip).SerializeToString(deterministic=True))


def chain_on_match(name: str) -> bytes:
    """A range matcher's on_match (field 2) naming chain `name`, serialized."""
    return wire.field_bytes(2, _on_match_chain(name).SerializeToString(deterministic=True))


_FIELD_TREE = 2  # Matcher.matcher_tree
_FIELD_EXACT = 2  # MatcherTree.exact_match_map
_FIELD_CUSTOM = 4  # MatcherTree.custom_match
_FIELD_MAP = 1  # MatchMap.map (entries: key 1, value 2)
_FIELD_ON_MATCH_MATCHER = 1  # OnMatch.matcher
_IP_MATCHER_TYPE = "type.googleapis.com/" + ip_pb2.IPMatcher.DESCRIPTOR.full_name
# MatcherTree.input (field 1)
_PORT_INPUT_FIELD = wire.field_bytes(1, _PORT_INPUT.SerializeToString(deterministic=True))
_IP_INPUT_FIELD = wire.field_bytes(1, _IP_INPUT.SerializeToString(deterministic=True))
FILTER_CHAIN_MATCHER_FIELD = 32  # Listener.filter_chain_matcher


def _ip_tree(range_matchers: Iterable[bytes]) -> bytes:
    """A Matcher{matcher_tree{input: destination IP, custom_match: IP matcher{range_matchers}}}."""
    ip_matcher = b"".join(wire.field_bytes(1, rm) for rm in range_matchers)  # IPMatcher.range_matchers
    custom = wire.field_str(1, IP_MATCHER) + wire.field_bytes(2, wire.any_bytes(_IP_MATCHER_TYPE, ip_matcher))
    return wire.field_bytes(_FIELD_TREE, _IP_INPUT_FIELD + wire.field_bytes(_FIELD_CUSTOM, custom))


def compose_chain_matcher(ports: Iterable[tuple[int, Iterable[tuple[bytes, Iterable[bytes]]]]]) -> bytes:
    """The listener's filter_chain_matcher field from each port's chains: (chain_on_match, ip_range
    results) pairs."""
    port_entries = []
    for port, chains in ports:
        tree = _ip_tree(b"".join(ranges) + on_match for on_match, ranges in chains)
        on_match = wire.field_bytes(_FIELD_ON_MATCH_MATCHER, tree)
        entry = wire.field_str(1, str(port)) + wire.field_bytes(2, on_match)  # map entry: key, value
        port_entries.append(wire.field_bytes(_FIELD_MAP, entry))
    body = _PORT_INPUT_FIELD + wire.field_bytes(_FIELD_EXACT, b"".join(port_entries))
    return wire.field_bytes(FILTER_CHAIN_MATCHER_FIELD, wire.field_bytes(_FIELD_TREE, body))


def sni_inspector(ports: Iterable[int]) -> Any:
    """The TLS inspector (the SNI of HTTPS egress) on `ports` only: a server-first protocol on another
    port (the client waits for the server) would otherwise stall in it until the listener's timeout."""
    predicate = lc.ListenerFilterChainMatchPredicate
    ranges = [int_range_pb2.Int32Range(start=p, end=p + 1) for p in ports]
    rules = [predicate(destination_port_range=r) for r in ranges]
    on_ports = rules[0] if len(rules) == 1 else predicate(or_match=predicate.MatchSet(rules=rules))
    return lc.ListenerFilter(
        name="envoy.filters.listener.tls_inspector",
        typed_config=pack(tls_inspector_pb2.TlsInspector()),
        filter_disabled=predicate(not_match=on_ports),
    )


def outbound_listener(policy: OutboundPolicy, tracing: Tracing | None = None) -> Any | None:
    """The outbound listener built as a message (the generator composes the same bytes from parts, but
    for identities with Egress policies)."""
    chains = chain_addresses(policy.upstreams)
    if not chains and not policy.egress and not policy.egress_ports:
        return None
    listener = listener_shell(policy.egress)
    https_ports = [e.port for e in policy.egress_ports if e.protocol == "https"]
    if https_ports:
        listener.listener_filters.append(sni_inspector(https_ports))
    listener.filter_chains.extend(build_filter_chain(up, tracing) for _, up in filter_chains(chains))
    listener.filter_chains.extend(egress_filter_chain(e, tracing) for e in policy.egress_ports)
    if chains or policy.egress_ports:
        listener.filter_chain_matcher.CopyFrom(chain_matcher(chains, policy.egress_ports))
    return listener


def listener_shell(egress: bool) -> Any:
    """The outbound listener without its per-upstream filter chains (field 3, appended when composing)."""
    listener = listener_pb2.Listener(
        name=OUTBOUND_LISTENER,
        address=socket_address("0.0.0.0", PORT_OUTBOUND),
        traffic_direction=base_pb2.OUTBOUND,
        listener_filters=[original_dst_filter()],
        access_log=[stdout_access_log()],
    )
    if egress:
        listener.default_filter_chain.CopyFrom(
            lc.FilterChain(
                name=EGRESS_CHAIN, filters=[tcp_proxy_filter(PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER)]
            )
        )
    return listener


FILTER_CHAINS_FIELD = 3  # Listener.filter_chains
