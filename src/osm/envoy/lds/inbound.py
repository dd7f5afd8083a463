"""LDS: `inbound-listener` on 15003: per backed service port, an mTLS filter chain (SNI = service FQDN,
ALPN osm) with network RBAC in SMI mode, then HTTP (RDS `rds-inbound.<targetPort>`) or TCP to the app."""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
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
from osm.envoy.rds.routes import inbound_name
from osm.envoy.sds import names
from osm.models.identity import ServiceIdentity
from osm.models.trafficpolicy import InboundPolicy, InboundService, TLSSettings

INBOUND_LISTENER = "inbound-listener"
HTTP_PROTOCOLS = ("http", "grpc")


def downstream_tls(identity: ServiceIdentity, tls: TLSSettings) -> Any:
    # No ALPN on the server side: the filter chain matches the client's offered "osm", but nothing is
    # negotiated, so the HTTP connection manager sniffs HTTP/2 (sidecar to sidecar) or HTTP/1.1 itself.
    # Negotiating "osm" would pin the codec to HTTP/1.1 and break HTTP/2 from the upstream sidecar.
    ctx = tls_pb2.DownstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=tls_params(tls),
            tls_certificate_sds_secret_configs=[sds_ref(names.service_cert(identity))],
            validation_context_sds_secret_config=sds_ref(names.inbound_root(identity)),
        ),
        require_client_certificate=wrappers_pb2.BoolValue(value=True),
    )
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=pack(ctx))


def filter_chain(svc: InboundService, policy: InboundPolicy, tls: TLSSettings, trust_domain: str) -> Any:
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
        filters.append(hcm_filter(inbound_name(ms.target_port), http_filters, forward_client_cert=True))
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


def inbound_listener(policy: InboundPolicy, tls: TLSSettings, trust_domain: str) -> Any | None:
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
        filter_chains=[filter_chain(s, policy, tls, trust_domain) for s in policy.services],
        access_log=[stdout_access_log()],
    )
