"""LDS: `outbound-listener` on 15001, one filter chain per upstream service port, egress passthrough."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import wrappers_pb2

from osm.envoy.cds.clusters import PASSTHROUGH_CLUSTER
from osm.envoy.common import PORT_OUTBOUND, pack, socket_address, stdout_access_log
from osm.envoy.lds.hcm import hcm_filter
from osm.envoy.rds.routes import outbound_name
from osm.models.trafficpolicy import OutboundPolicy, Upstream, WeightedCluster

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


def cidr(ip: str) -> Any:
    prefix = 32 if ipaddress.ip_address(ip).version == 4 else 128
    return address_pb2.CidrRange(address_prefix=ip, prefix_len=wrappers_pb2.UInt32Value(value=prefix))


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


def filter_chain(up: Upstream, ips: Iterable[str]) -> Any:
    """The chain for one upstream, matching its port and `ips`."""
    svc = up.service
    if svc.protocol in HTTP_PROTOCOLS:
        network_filter = hcm_filter(outbound_name(svc.port), [])
    else:
        network_filter = tcp_proxy_filter(
            f"outbound-mesh-tcp-proxy.{svc.namespace}/{svc.name}_{svc.port}", up.clusters
        )
    return lc.FilterChain(
        name=svc.outbound_chain_name,
        filter_chain_match=lc.FilterChainMatch(
            destination_port=wrappers_pb2.UInt32Value(value=svc.port), prefix_ranges=[cidr(ip) for ip in ips]
        ),
        filters=[network_filter],
    )


def outbound_listener(policy: OutboundPolicy) -> Any | None:
    chains = chain_addresses(policy.upstreams)
    if not chains and not policy.egress:
        return None
    listener = listener_shell(policy.egress)
    listener.filter_chains.extend(filter_chain(up, ips) for up, ips in chains)
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
