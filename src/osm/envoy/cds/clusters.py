"""CDS: upstream mesh clusters (EDS + mTLS), local app clusters, and the egress passthrough cluster."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import base_pb2, protocol_pb2
from envoy.config.core.v3.extension_pb2 import TypedExtensionConfig
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.network.dns_resolver.getaddrinfo.v3 import getaddrinfo_dns_resolver_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from osm.envoy import wire
from osm.envoy.common import (
    ALPN_MESH,
    PASSTHROUGH_CLUSTER,
    TRACING_CLUSTER,
    ads_source,
    pack,
    sds_ref,
    socket_address,
    tls_params,
)
from osm.envoy.sds import names
from osm.models.identity import ServiceIdentity
from osm.models.k8s import PROTOCOL_GRPC, PROTOCOL_HTTP
from osm.models.service import MeshService
from osm.models.trafficpolicy import (
    ConnectionSettings,
    OutlierDetection,
    TLSSettings,
    Tracing,
    UpstreamCluster,
    UpstreamSettings,
)

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_MAX = 4294967295
_CONNECT_TIMEOUT = duration_pb2.Duration(seconds=1)
NO_PEER = "no-allowed-peer.invalid"
_UNLIMITED = ConnectionSettings(_MAX, 1000, _MAX, 0, _MAX, _MAX)


def _http2_options(max_requests_per_connection: int = 0) -> Any:
    options = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
            # extended CONNECT (RFC 8441): an HTTP/1.1 upgrade (WebSocket) crosses to the peer sidecar
            http2_protocol_options=protocol_pb2.Http2ProtocolOptions(allow_connect=True)
        )
    )
    if max_requests_per_connection:
        options.common_http_protocol_options.max_requests_per_connection.value = max_requests_per_connection
    return pack(options)


def _circuit_breakers(settings: ConnectionSettings | None = None) -> Any:
    """Envoy's thresholds: effectively none (as upstream), or an UpstreamTrafficSetting's."""
    s = settings or _UNLIMITED
    t = circuit_breaker_pb2.CircuitBreakers.Thresholds
    return circuit_breaker_pb2.CircuitBreakers(
        thresholds=[
            t(
                max_connections=wrappers_pb2.UInt32Value(value=s.max_connections),
                max_pending_requests=wrappers_pb2.UInt32Value(value=s.max_pending_requests),
                max_requests=wrappers_pb2.UInt32Value(value=s.max_requests),
                max_retries=wrappers_pb2.UInt32Value(value=s.max_retries),
            )
        ]
    )


def _duration(ms: int) -> Any:
    return duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def outlier_detection(o: OutlierDetection) -> Any:
    """Eject an endpoint after `consecutive_errors` 5xx answers (or connection failures) in a row."""
    return outlier_detection_pb2.OutlierDetection(
        consecutive_5xx=wrappers_pb2.UInt32Value(value=o.consecutive_errors),
        interval=_duration(o.interval_ms),
        base_ejection_time=_duration(o.base_ejection_ms),
        max_ejection_percent=wrappers_pb2.UInt32Value(value=o.max_ejection_percent),
        enforcing_consecutive_5xx=wrappers_pb2.UInt32Value(value=100),
    )


def peer_validation(principals: Iterable[str]) -> Any:
    """Trust the mesh CA (the shared outbound root secret), and only peers whose certificate names one
    of `principals`: the identities backing the upstream service. Envoy merges the secret into the
    default context, so the CA goes out once per proxy instead of once per upstream."""
    # With no allowed peer, match a name no certificate carries: an empty list would accept any mesh cert.
    allowed = sorted(set(principals)) or [NO_PEER]
    san = common_pb2.SubjectAltNameMatcher
    return common_pb2.CertificateValidationContext(
        match_typed_subject_alt_names=[
            san(san_type=san.DNS, matcher=string_pb2.StringMatcher(exact=p)) for p in allowed
        ]
    )


def _common_tls(cluster: UpstreamCluster, tls: TLSSettings, trust_domain: str) -> Any:
    """The cluster's CommonTlsContext without the proxy's own certificate."""
    peers = (p.principal(trust_domain) for p in cluster.peer_identities)
    combined = tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
        default_validation_context=peer_validation(peers),
        validation_context_sds_secret_config=sds_ref(names.OUTBOUND_ROOT),
    )
    return tls_pb2.CommonTlsContext(
        tls_params=tls_params(tls), alpn_protocols=[ALPN_MESH], combined_validation_context=combined
    )


def upstream_cluster(
    cluster: UpstreamCluster, downstream: ServiceIdentity, tls: TLSSettings, trust_domain: str
) -> Any:
    """`<ns>/<svc>|<targetPort>`: EDS over ADS, mTLS with the downstream's service cert, SNI = FQDN, and
    the peer's certificate checked against the identities backing the service."""
    svc = cluster.service
    common = _common_tls(cluster, tls, trust_domain)
    common.tls_certificate_sds_secret_configs.append(sds_ref(names.service_cert(downstream)))
    upstream_tls = tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=svc.fqdn(trust_domain))
    settings = cluster.settings or UpstreamSettings()
    conn = settings.connection
    c = cluster_pb2.Cluster(
        name=svc.cluster_name,
        connect_timeout=_CONNECT_TIMEOUT if conn is None else _duration(conn.connect_timeout_ms),
        circuit_breakers=_circuit_breakers(conn),
        transport_socket=base_pb2.TransportSocket(
            name="envoy.transport_sockets.tls", typed_config=pack(upstream_tls)
        ),
    )
    if cluster.per_pod:  # the pod the client dialed (the outbound listener matched only the service's pods)
        c.type = cluster_pb2.Cluster.ORIGINAL_DST
        c.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    else:
        c.type = cluster_pb2.Cluster.EDS
        c.eds_cluster_config.eds_config.CopyFrom(ads_source())
        c.lb_policy = cluster_pb2.Cluster.ROUND_ROBIN
    if settings.outlier is not None:
        c.outlier_detection.CopyFrom(outlier_detection(settings.outlier))
    if svc.protocol in (PROTOCOL_HTTP, PROTOCOL_GRPC):
        per_connection = conn.max_requests_per_connection if conn is not None else 0
        c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(_http2_options(per_connection))
    return c


def local_cluster(svc: MeshService) -> Any:
    """`<ns>/<svc>|<targetPort>|local`: the app in the same pod, on 127.0.0.1:<targetPort>."""
    c = cluster_pb2.Cluster(
        name=svc.local_cluster_name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=_CONNECT_TIMEOUT,
        circuit_breakers=_circuit_breakers(),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=svc.local_cluster_name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(
                                address=socket_address("127.0.0.1", svc.target_port)
                            )
                        )
                    ]
                )
            ],
        ),
    )
    if svc.protocol == PROTOCOL_GRPC:
        c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(_http2_options())
    return c


def _dns_cluster(name: str, kind: Any, host: str, port: int) -> Any:
    """A cluster of one `host:port`, its name resolved as the app's are (getaddrinfo: /etc/hosts and the
    pod's hostAliases first, then the pod's resolv.conf), not by Envoy's own resolver, which skips the
    hosts file."""
    endpoint = endpoint_components_pb2.Endpoint(address=socket_address(host, port))
    return cluster_pb2.Cluster(
        name=name,
        type=kind,
        typed_dns_resolver_config=TypedExtensionConfig(
            name="envoy.network.dns_resolver.getaddrinfo",
            typed_config=pack(getaddrinfo_dns_resolver_pb2.GetAddrInfoDnsResolverConfig()),
        ),
        connect_timeout=_CONNECT_TIMEOUT,
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[endpoint_components_pb2.LbEndpoint(endpoint=endpoint)]
                )
            ],
        ),
    )


def egress_cluster(host: str, port: int) -> Any:
    """`<host>:<port>`: an HTTP egress host, resolved by DNS (as upstream); plaintext, as the app sent it."""
    cluster = _dns_cluster(f"{host}:{port}", cluster_pb2.Cluster.STRICT_DNS, host, port)
    cluster.circuit_breakers.CopyFrom(_circuit_breakers())
    return cluster


def tracing_cluster(tracing: Tracing) -> Any:
    """`envoy-tracing-cluster`: the Zipkin collector."""
    cluster = _dns_cluster(TRACING_CLUSTER, cluster_pb2.Cluster.LOGICAL_DNS, tracing.address, tracing.port)
    cluster.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
    return cluster


def passthrough_cluster() -> Any:
    """Global egress: forward to the original destination."""
    return cluster_pb2.Cluster(
        name=PASSTHROUGH_CLUSTER,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=_CONNECT_TIMEOUT,
        circuit_breakers=_circuit_breakers(),
    )


# ---- composition from shared serialized parts
#
# An upstream cluster differs between proxies only in the name of the proxy's own certificate
# (`service-cert:<ns>/<sa>`). Building a Cluster message per proxy costs ~40 us per cluster, which in
# permissive mode (every proxy holds every service) is ~40 ms per proxy. Instead the parts are
# serialized once (per service, and per identity) and the cluster's bytes are composed by concatenation:
# a message's serialization is the concatenation of its fields' serializations, in any order.

UPSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_TLS_SOCKET = "envoy.transport_sockets.tls"


def upstream_cluster_parts(
    cluster: UpstreamCluster, tls: TLSSettings, trust_domain: str
) -> tuple[bytes, bytes, bytes]:
    """Identity-independent parts of `upstream_cluster`: the cluster without its transport socket, the
    CommonTlsContext without the proxy's own certificate, and the SNI field."""
    svc = cluster.service
    full = upstream_cluster(cluster, ServiceIdentity("", ""), tls, trust_domain)
    full.ClearField("transport_socket")
    return (
        full.SerializeToString(deterministic=True),
        _common_tls(cluster, tls, trust_domain).SerializeToString(deterministic=True),
        wire.field_str(2, svc.fqdn(trust_domain)),
    )


def own_certificate_field(downstream: ServiceIdentity) -> bytes:
    """CommonTlsContext.tls_certificate_sds_secret_configs (field 6) naming the proxy's service cert."""
    return wire.field_bytes(6, sds_ref(names.service_cert(downstream)).SerializeToString(deterministic=True))


_SOCKET_NAME = wire.field_str(1, _TLS_SOCKET)  # TransportSocket.name
_TLS_TYPE_URL = wire.field_str(1, UPSTREAM_TLS_TYPE)  # Any.type_url
_TRANSPORT_SOCKET_TAG = wire.varint((24 << 3) | 2)  # Cluster.transport_socket


def socket_header(parts: tuple[bytes, bytes, bytes], own_certificate_len: int) -> bytes:
    """What goes between the shared parts `base` and `common` of a composed cluster:

    transport_socket{name, typed_config: Any{type_url, value: UpstreamTlsContext{
        common_tls_context{common + own_certificate}, sni}}}

    It depends on the parts and on the length of the proxy's own-certificate field only, so proxies whose
    certificate names are equally long share it."""
    _, common, sni = parts
    varint = wire.varint
    common_len = len(common) + own_certificate_len
    tls_len = 1 + len(varint(common_len)) + common_len + len(sni)  # UpstreamTlsContext
    any_len = len(_TLS_TYPE_URL) + 1 + len(varint(tls_len)) + tls_len
    socket_len = len(_SOCKET_NAME) + 1 + len(varint(any_len)) + any_len
    return b"".join(
        (
            _TRANSPORT_SOCKET_TAG,
            varint(socket_len),
            _SOCKET_NAME,
            b"\x1a",  # TransportSocket.typed_config (3)
            varint(any_len),
            _TLS_TYPE_URL,
            b"\x12",  # Any.value (2)
            varint(tls_len),
            b"\x0a",  # UpstreamTlsContext.common_tls_context (1)
            varint(common_len),
        )
    )


def compose_upstream_cluster(parts: tuple[bytes, bytes, bytes], own_certificate: bytes) -> bytes:
    """The serialized `upstream_cluster` for one proxy, from its shared parts."""
    base, common, sni = parts
    return b"".join((base, socket_header(parts, len(own_certificate)), common, own_certificate, sni))
