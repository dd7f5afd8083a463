"""Local rate limits of an UpstreamTrafficSetting, on the sidecars of its service's pods (pure).

Connections: Envoy's network `local_ratelimit` filter on the service's inbound filter chain (after
RBAC, so refused peers spend no tokens). Requests: the HTTP `local_ratelimit` filter in the inbound
connection manager, configured per virtual host and per route (RDS); it answers 429 (or the policy's
status) with the policy's headers when the bucket is empty.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as http_rl
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.local_ratelimit.v3 import local_rate_limit_pb2 as tcp_rl
from envoy.type.v3 import http_status_pb2, percent_pb2, token_bucket_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from osm.envoy.common import pack
from osm.models.trafficpolicy import HTTPRateLimit, TCPRateLimit

HTTP_FILTER = "envoy.filters.http.local_ratelimit"
TCP_FILTER = "envoy.filters.network.local_ratelimit"
_ALWAYS = base_pb2.RuntimeFractionalPercent(
    default_value=percent_pb2.FractionalPercent(
        numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED
    )
)


def _bucket(tokens: int, burst: int, fill_ms: int) -> Any:
    return token_bucket_pb2.TokenBucket(
        max_tokens=tokens + burst,
        tokens_per_fill=wrappers_pb2.UInt32Value(value=tokens),
        fill_interval=duration_pb2.Duration(seconds=fill_ms // 1000, nanos=(fill_ms % 1000) * 1_000_000),
    )


def tcp_filter(limit: TCPRateLimit, stat_prefix: str) -> Any:
    return lc.Filter(
        name=TCP_FILTER,
        typed_config=pack(
            tcp_rl.LocalRateLimit(
                stat_prefix=stat_prefix,
                token_bucket=_bucket(limit.connections, limit.burst, limit.fill_interval_ms),
            )
        ),
    )


def http_filter(stat_prefix: str) -> Any:
    """The connection manager's filter: no bucket of its own (each virtual host or route has one)."""
    return hcm_pb2.HttpFilter(
        name=HTTP_FILTER, typed_config=pack(http_rl.LocalRateLimit(stat_prefix=stat_prefix))
    )


def http_per_route(limit: HTTPRateLimit, stat_prefix: str) -> Any:
    """A virtual host's or a route's bucket (typed_per_filter_config of HTTP_FILTER)."""
    config = http_rl.LocalRateLimit(
        stat_prefix=stat_prefix,
        status=http_status_pb2.HttpStatus(code=limit.status),  # type: ignore[arg-type,unused-ignore]
        token_bucket=_bucket(limit.requests, limit.burst, limit.fill_interval_ms),
        filter_enabled=_ALWAYS,
        filter_enforced=_ALWAYS,
    )
    for name, value in limit.headers:
        config.response_headers_to_add.append(
            base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value))
        )
    return pack(config)
