"""The Envoy bootstrap for a sidecar, as the injector writes it (Secret `envoy-bootstrap-config-<uuid>`).

Pure: returns the file contents. `bootstrap.yaml` points Envoy at the controller over ADS (HTTP/2,
mTLS with the proxy's xDS client certificate read from files through file-based SDS) and carries the
static health-probe listeners.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import yaml

from osm.envoy.common import ACCESS_LOG_FIELDS, PORT_ADMIN, PORT_ADS

ADS_CLUSTER = "osm-controller"
TYPE_SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
FILE_BOOTSTRAP = "bootstrap.yaml"
FILE_TLS_SDS = "tls_certificate_sds_secret.yaml"
FILE_VALIDATION_SDS = "validation_context_sds_secret.yaml"
FILE_CERT = "sds_cert.pem"
FILE_KEY = "sds_key.pem"
FILE_CA = "cacert.pem"
STDOUT_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
PROBE_PORTS = {"liveness": 15901, "readiness": 15902, "startup": 15903}


@dataclass(frozen=True, slots=True)
class ProbeRoute:
    """An app HTTP(S) probe that the sidecar serves on 1590x and forwards to the app."""

    kind: str  # liveness | readiness | startup
    port: int
    path: str
    https: bool = False
    timeout_seconds: int = 1


@dataclass(frozen=True, slots=True)
class BootstrapParams:
    node_id: str  # the xDS certificate CN
    service_cluster: str  # <sa>.<ns>
    ads_host: str
    ads_port: int = PORT_ADS
    config_dir: str = "/etc/envoy"
    admin_address: str = "127.0.0.1"
    admin_port: int = PORT_ADMIN
    xds: str = "sotw"  # sotw | delta
    # The DNS SAN the control plane's certificate must carry (`ads.<trust-domain>`): a server holding
    # any other mesh certificate cannot configure the sidecar.
    control_plane_san: str = "ads.cluster.local"
    tls_min_version: str = "TLSv1_2"
    tls_max_version: str = "TLSv1_3"
    probes: tuple[ProbeRoute, ...] = ()
    # The static listener on 15010 (None: none): `/ready` (Envoy's readiness: 200 once its first config is
    # in place, the native sidecar's startup probe) and `/stats/prometheus`. Nothing else of the admin
    # interface is reachable through it. The stats are served whether or not the namespace enables
    # metrics: Prometheus follows the annotations (`osm metrics enable|disable`), so turning metrics on
    # reaches sidecars already running, which a route fixed at injection could not.
    metrics_port: int | None = None
    # Wait for the first CDS and LDS however long it takes (by default Envoy gives up after 15 s for
    # each and goes live with no config): a native sidecar's app then starts only with the mesh's config.
    wait_for_config: bool = False


def _addr(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _access_log() -> list[dict[str, Any]]:
    return [
        {
            "name": "envoy.access_loggers.stream",
            "typed_config": {
                "@type": STDOUT_LOG_TYPE,
                "log_format": {"json_format": dict(ACCESS_LOG_FIELDS)},
            },
        }
    ]


def _static_cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr("127.0.0.1", port)}}]}],
        },
    }


def _probe_listener(p: ProbeRoute) -> dict[str, Any]:
    cluster = f"{p.kind}_cluster"
    if p.https:  # no TLS termination: pass the bytes through
        filt = {
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "health_probes",
                "cluster": cluster,
            },
        }
    else:
        filt = {
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                ".HttpConnectionManager",
                "stat_prefix": "health_probes_http",
                "route_config": {
                    "name": "local_route",
                    "virtual_hosts": [
                        {
                            "name": "local_service",
                            "domains": ["*"],
                            "routes": [
                                {
                                    "match": {"prefix": f"/osm-{p.kind}-probe"},
                                    "route": {
                                        "cluster": cluster,
                                        "prefix_rewrite": p.path,
                                        "timeout": f"{max(1, p.timeout_seconds)}s",
                                    },
                                }
                            ],
                        }
                    ],
                },
                "http_filters": [
                    {
                        "name": "envoy.filters.http.router",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                        },
                    }
                ],
                "access_log": _access_log(),
            },
        }
    return {
        "name": f"{p.kind}_listener",
        "address": _addr("0.0.0.0", PROBE_PORTS[p.kind]),
        "filter_chains": [{"filters": [filt]}],
    }


# Envoy's command-line drain settings for every sidecar. A listener update that changes a filter chain
# (an inbound chain's network RBAC after a TrafficTarget edit, tracing, a rate limit) applies to new
# connections at once, but connections already open keep the old chain until they are drained: with
# Envoy's defaults (gradual, over 600 s) a peer sidecar's pooled HTTP/2 connection kept a revoked
# source's access, or an old tracing setting, for up to ten minutes. Immediate draining sends GOAWAY
# at once (the peer opens a new connection, under the new chain) and closes what remains after 30 s.
DRAIN_ARGS = ("--drain-time-s", "30", "--drain-strategy", "immediate")

METRICS_LISTENER = "inbound-prometheus-listener"  # upstream's names
METRICS_CLUSTER = "envoy-metrics-cluster"


def _metrics_listener(p: BootstrapParams, port: int) -> dict[str, Any]:
    paths = ["/ready", "/stats/prometheus"]
    routes = [{"match": {"path": path}, "route": {"cluster": METRICS_CLUSTER}} for path in paths]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "prometheus-http-conn-manager",
        "normalize_path": True,
        "route_config": {
            "name": "prometheus-route-config",
            "virtual_hosts": [
                {"name": "prometheus-inbound-virtual-host", "domains": ["*"], "routes": routes}
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "name": METRICS_LISTENER,
        "address": _addr("0.0.0.0", port),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


def _sds_file(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "sds_config": {"path_config_source": {"path": path}}}


def bootstrap_config(p: BootstrapParams) -> dict[str, Any]:
    if p.xds not in ("sotw", "delta"):
        raise ValueError(f"xds must be sotw or delta, got {p.xds!r}")
    d = p.config_dir.rstrip("/")
    upstream_tls = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        # No TLS session resumption: each connection presents the current (renewed) client certificate,
        # which the control plane checks; a resumed session would carry the one it was made with.
        "max_session_keys": 0,
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_params": {
                "tls_minimum_protocol_version": p.tls_min_version,
                "tls_maximum_protocol_version": p.tls_max_version,
            },
            "tls_certificate_sds_secret_configs": [_sds_file("tls_sds", f"{d}/{FILE_TLS_SDS}")],
            "validation_context_sds_secret_config": _sds_file(
                "validation_context_sds", f"{d}/{FILE_VALIDATION_SDS}"
            ),
        },
    }
    ads_cluster = {
        "name": ADS_CLUSTER,
        "type": "STATIC" if _is_ip(p.ads_host) else "LOGICAL_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr(p.ads_host, p.ads_port)}}]}],
        },
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": upstream_tls},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_probes": 5, "keepalive_time": 60, "keepalive_interval": 5}
        },
    }
    clusters = [ads_cluster] + [_static_cluster(f"{pr.kind}_cluster", pr.port) for pr in p.probes]
    listeners = [_probe_listener(pr) for pr in p.probes]
    initial_fetch = {"initial_fetch_timeout": "0s"} if p.wait_for_config else {}
    if p.metrics_port is not None:
        clusters.append(_static_cluster(METRICS_CLUSTER, p.admin_port))
        listeners.append(_metrics_listener(p, p.metrics_port))
    return {
        "node": {"id": p.node_id, "cluster": p.service_cluster},
        "admin": {
            "address": _addr(p.admin_address, p.admin_port),
            "access_log": [
                {
                    "name": "envoy.access_loggers.stream",
                    "typed_config": {"@type": STDOUT_LOG_TYPE},
                }
            ],
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC" if p.xds == "sotw" else "DELTA_GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [
                    {
                        "envoy_grpc": {"cluster_name": ADS_CLUSTER},
                        # Reconnect within seconds of a control-plane restart (Envoy's default backoff
                        # grows to 30 s).
                        "retry_policy": {"retry_back_off": {"base_interval": "0.25s", "max_interval": "5s"}},
                    }
                ],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3", **initial_fetch},
            "lds_config": {"ads": {}, "resource_api_version": "V3", **initial_fetch},
        },
        "static_resources": {"clusters": clusters, "listeners": listeners},
    }


def sds_files(config_dir: str, control_plane_san: str) -> dict[str, dict[str, Any]]:
    d = config_dir.rstrip("/")
    return {
        FILE_TLS_SDS: {
            "resources": [
                {
                    "@type": TYPE_SECRET,
                    "name": "tls_sds",
                    "tls_certificate": {
                        "certificate_chain": {"filename": f"{d}/{FILE_CERT}"},
                        "private_key": {"filename": f"{d}/{FILE_KEY}"},
                        # Reload the pair on any move into the directory: a renewal written in place
                        # (local), or the kubelet swapping the `..data` link of a projected Secret.
                        "watched_directory": {"path": d},
                    },
                }
            ]
        },
        FILE_VALIDATION_SDS: {
            "resources": [
                {
                    "@type": TYPE_SECRET,
                    "name": "validation_context_sds",
                    "validation_context": {
                        "trusted_ca": {"filename": f"{d}/{FILE_CA}"},
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": control_plane_san}}
                        ],
                    },
                }
            ]
        },
    }


def bootstrap_files(p: BootstrapParams, cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> dict[str, bytes]:
    """The keys of the bootstrap Secret: file name -> content."""
    files = {
        FILE_BOOTSTRAP: yaml.safe_dump(json.loads(json.dumps(bootstrap_config(p))), sort_keys=False).encode()
    }
    for name, content in sds_files(p.config_dir, p.control_plane_san).items():
        files[name] = yaml.safe_dump(content, sort_keys=False).encode()
    files[FILE_CERT] = cert_pem
    files[FILE_KEY] = key_pem
    files[FILE_CA] = ca_pem
    return files
