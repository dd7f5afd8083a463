"""Small builders shared by the generators: ADS config source, addresses, TLS parameters, access log."""

from __future__ import annotations

from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, substitution_format_string_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from google.protobuf import any_pb2, struct_pb2

from osm.models.trafficpolicy import TLSSettings

ALPN_MESH = "osm"
PASSTHROUGH_CLUSTER = "passthrough-outbound"  # ORIGINAL_DST: global egress, and HTTPS/TCP egress policy
PORT_OUTBOUND = 15001
PORT_INBOUND = 15003
PORT_ADMIN = 15000
PORT_METRICS = 15010
TRACING_CLUSTER = "envoy-tracing-cluster"
PORT_ADS = 15128

ACCESS_LOG_FIELDS = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "time_to_first_byte": "%RESPONSE_DURATION%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "response_flags": "%RESPONSE_FLAGS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
}


def pack(msg: Any) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg)
    return a


def ads_source() -> Any:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.ApiVersion.V3
    )


def socket_address(ip: str, port: int) -> Any:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=ip, port_value=port))


def tls_params(tls: TLSSettings) -> Any:
    p = common_pb2.TlsParameters
    return p(
        tls_minimum_protocol_version=p.TlsProtocol.Value(tls.min_version),
        tls_maximum_protocol_version=p.TlsProtocol.Value(tls.max_version),
    )


def sds_ref(name: str) -> Any:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_source())


def stdout_access_log() -> Any:
    fmt = struct_pb2.Struct()
    fmt.update(ACCESS_LOG_FIELDS)
    log = stream_pb2.StdoutAccessLog(
        log_format=substitution_format_string_pb2.SubstitutionFormatString(json_format=fmt)
    )
    return accesslog_pb2.AccessLog(name="envoy.access_loggers.stream", typed_config=pack(log))


def data_source(data: bytes) -> Any:
    return base_pb2.DataSource(inline_bytes=data)
