"""The HTTP connection manager used by the mesh's filter chains (RDS over ADS)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from osm.envoy.common import ads_source, pack, stdout_access_log

HCM_FILTER = "envoy.filters.network.http_connection_manager"


def router_filter() -> Any:
    return hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))


def hcm_filter(rds_name: str, http_filters: Iterable[Any], *, forward_client_cert: bool = False) -> Any:
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=f"mesh-http-conn-manager.{rds_name}",
        rds=hcm_pb2.Rds(config_source=ads_source(), route_config_name=rds_name),
        http_filters=[*http_filters, router_filter()],
        upgrade_configs=[hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        access_log=[stdout_access_log()],
    )
    if forward_client_cert:
        # The peer sidecar's HTTP/2 may carry an upgrade (WebSocket) as an extended CONNECT.
        hcm.http2_protocol_options.allow_connect = True
        # Tell the app who called it: the verified peer identity from the mTLS handshake.
        hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
        hcm.set_current_client_cert_details.dns = True
        hcm.set_current_client_cert_details.uri = True
    return lc.Filter(name=HCM_FILTER, typed_config=pack(hcm))
