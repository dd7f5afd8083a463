"""The HTTP connection manager used by the mesh's filter chains (RDS over ADS)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.trace.v3 import http_tracer_pb2, zipkin_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from osm.envoy.common import TRACING_CLUSTER, ads_source, pack, stdout_access_log
from osm.models.trafficpolicy import Tracing

HCM_FILTER = "envoy.filters.network.http_connection_manager"


def router_filter() -> Any:
    return hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))


def tracing_config(tracing: Tracing) -> Any:
    """Zipkin spans (HTTP JSON) to the tracing cluster, for `sampling` percent of the requests."""
    zipkin = zipkin_pb2.ZipkinConfig(
        collector_cluster=TRACING_CLUSTER,
        collector_endpoint=tracing.endpoint,
        collector_endpoint_version=zipkin_pb2.ZipkinConfig.HTTP_JSON,
        collector_hostname=tracing.address,
    )
    return hcm_pb2.HttpConnectionManager.Tracing(
        verbose=True,
        random_sampling=percent_pb2.Percent(value=tracing.sampling),
        provider=http_tracer_pb2.Tracing.Http(name="envoy.tracers.zipkin", typed_config=pack(zipkin)),
    )


def hcm_filter(
    rds_name: str,
    http_filters: Iterable[Any],
    *,
    forward_client_cert: bool = False,
    tracing: Tracing | None = None,
) -> Any:
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=f"mesh-http-conn-manager.{rds_name}",
        rds=hcm_pb2.Rds(config_source=ads_source(), route_config_name=rds_name),
        http_filters=[*http_filters, router_filter()],
        upgrade_configs=[hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        access_log=[stdout_access_log()],
    )
    if tracing is not None:
        hcm.generate_request_id.CopyFrom(wrappers_pb2.BoolValue(value=True))
        hcm.tracing.CopyFrom(tracing_config(tracing))
    if forward_client_cert:
        # The peer sidecar's HTTP/2 may carry an upgrade (WebSocket) as an extended CONNECT.
        hcm.http2_protocol_options.allow_connect = True
        # Tell the app who called it: the verified peer identity from the mTLS handshake.
        hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
        hcm.set_current_client_cert_details.dns = True
        hcm.set_current_client_cert_details.uri = True
    return lc.Filter(name=HCM_FILTER, typed_config=pack(hcm))
