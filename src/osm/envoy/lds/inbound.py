"""LDS: `inbound-listener` on 15003: per backed service port, an mTLS filter chain (SNI = service FQDN,
ALPN osm) with network RBAC in SMI mode, then HTTP (RDS `rds-inbound.<targetPort>`) or TCP to the app."""

from __future__ import annotations

import ipaddress
from typing import Any

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import wrappers_pb2

from osm.envoy.common import (
    ALPN_MESH,
    PORT_INBOUND,
    pack,
    sds_ref,
    socket_address,
    stdout_access_log,
    tls_params,
)
from osm.envoy.lds.hcm import hcm_filter
from osm.envoy.lds.outbound import original_dst_filter, tcp_proxy_filter
from osm.envoy.rbac.policies import http_rbac_filter, network_rbac_filter
from osm.envoy.rds import ratelimit
from osm.envoy.rds.routes import inbound_name, ingress_name
from osm.envoy.sds import names
from osm.models.identity import ServiceIdentity
from osm.models.trafficpolicy import (
    InboundPolicy,
    InboundService,
    IngressRoute,
    NetworkRBACPolicy,
    TLSSettings,
    Tracing,
)

INBOUND_LISTENER = "inbound-listener"
HTTP_PROTOCOLS = ("http", "grpc")


def downstream_tls(identity: ServiceIdentity, tls: TLSSettings, *, require_client_cert: bool = True) -> Any:
    # No ALPN on the server side: the filter chain matches the client's offered "osm", but nothing is
    # negotiated, so the HTTP connection manager sniffs HTTP/2 (sidecar to sidecar) or HTTP/1.1 itself.
    # Negotiating "osm" would pin the codec to HTTP/1.1 and break HTTP/2 from the upstream sidecar.
    ctx = tls_pb2.DownstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=tls_params(tls),
            tls_certificate_sds_secret_configs=[sds_ref(names.service_cert(identity))],
            validation_context_sds_secret_config=sds_ref(names.inbound_root(identity)),
        ),
        require_client_certificate=wrappers_pb2.BoolValue(value=require_client_cert),
    )
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=pack(ctx))


def filter_chain(
    svc: InboundService,
    policy: InboundPolicy,
    tls: TLSSettings,
    trust_domain: str,
    tracing: Tracing | None = None,
) -> Any:
    ms = svc.service
    prefix = f"inbound_{ms.namespace}/{ms.name}_{ms.target_port}"
    filters = []
    if policy.network_rbac is not None:
        filters.append(network_rbac_filter(policy.network_rbac, prefix))
    if svc.tcp_rate_limit is not None:
        filters.append(ratelimit.tcp_filter(svc.tcp_rate_limit, prefix))
    if ms.protocol in HTTP_PROTOCOLS:
        http_filters = [http_rbac_filter()]
        if svc.http_rate_limited:
            http_filters.append(ratelimit.http_filter(prefix))
        filters.append(
            hcm_filter(inbound_name(ms.target_port), http_filters, forward_client_cert=True, tracing=tracing)
        )
    else:
        filters.append(
            tcp_proxy_filter(
                f"inbound-tcp-proxy.{ms.namespace}/{ms.name}_{ms.target_port}", ms.local_cluster_name
            )
        )
    return lc.FilterChain(
        name=ms.inbound_chain_name,
        filter_chain_match=lc.FilterChainMatch(
            destination_port=wrappers_pb2.UInt32Value(value=ms.target_port),
            server_names=[ms.fqdn(trust_domain)],
            transport_protocol="tls",
            application_protocols=[ALPN_MESH],
        ),
        filters=filters,
        transport_socket=downstream_tls(policy.identity, tls),
    )


def ingress_filter_chain(
    route: IngressRoute, policy: InboundPolicy, tls: TLSSettings, tracing: Tracing | None = None
) -> Any:
    """`ingress_<ns>/<svc>_<port>_<protocol>`: from the IngressBackend's sources only; plaintext HTTP, or
    HTTPS terminated with the service's certificate (client certificates checked against the mesh CA
    and the allowed principals, unless validation is skipped)."""
    ms = route.service
    name = f"ingress_{ms.namespace}/{ms.name}_{ms.target_port}_{route.protocol}"
    match = lc.FilterChainMatch(
        destination_port=wrappers_pb2.UInt32Value(value=ms.target_port),
        source_prefix_ranges=[cidr_range(r) for r in route.source_ranges],
    )
    filters = []
    socket = None
    if route.protocol == "https":
        match.transport_protocol = "tls"
        match.server_names.extend(route.sni_hosts)
        if route.require_client_cert:
            allowed = NetworkRBACPolicy(f"ingress-{ms.namespace}/{ms.name}", route.principals, ())
            filters.append(network_rbac_filter((allowed,), name))
        socket = downstream_tls(policy.identity, tls, require_client_cert=route.require_client_cert)
    else:
        match.transport_protocol = "raw_buffer"
    filters.append(
        hcm_filter(
            ingress_name(ms.target_port), [], forward_client_cert=route.protocol == "https", tracing=tracing
        )
    )
    chain = lc.FilterChain(name=name, filter_chain_match=match, filters=filters)
    if socket is not None:
        chain.transport_socket.CopyFrom(socket)
    return chain


def cidr_range(cidr: str) -> Any:
    net = ipaddress.ip_network(cidr, strict=False)
    return address_pb2.CidrRange(
        address_prefix=str(net.network_address), prefix_len=wrappers_pb2.UInt32Value(value=net.prefixlen)
    )


def inbound_listener(
    policy: InboundPolicy, tls: TLSSettings, trust_domain: str, tracing: Tracing | None = None
) -> Any | None:
    if not policy.services:
        return None
    return listener_pb2.Listener(
        name=INBOUND_LISTENER,
        address=socket_address("0.0.0.0", PORT_INBOUND),
        traffic_direction=base_pb2.INBOUND,
        listener_filters=[
            lc.ListenerFilter(
                name="envoy.filters.listener.tls_inspector",
                typed_config=pack(tls_inspector_pb2.TlsInspector()),
            ),
            original_dst_filter(),
        ],
        filter_chains=[
            *(filter_chain(s, policy, tls, trust_domain, tracing) for s in policy.services),
            *(ingress_filter_chain(r, policy, tls, tracing) for r in policy.ingress),
        ],
        access_log=[stdout_access_log()],
    )
