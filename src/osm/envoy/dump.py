"""A proxy's resources as the controller serves them, in the shape of Envoy's /config_dump (an
envoy.admin.v3.ConfigDump): what the proxy should have, to compare with what it has (pure)."""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2, json_format

from osm.envoy.types import (
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    TYPE_SECRET,
    ProxyResources,
)

_ADMIN = "type.googleapis.com/envoy.admin.v3."


def _items(res: ProxyResources, type_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, version, the resource as JSON with its @type) of one type, by name."""
    out = []
    for name, r in sorted(res.get(type_url).items()):
        body = json_format.MessageToDict(
            any_pb2.Any.FromString(r.any_bytes), preserving_proto_field_name=True
        )
        out.append((name, r.version, body))
    return out


def config_dump(res: ProxyResources) -> dict[str, Any]:
    """Clusters, endpoints, listeners, routes and secrets as Envoy's dump lists its dynamic ones. Secrets
    carry their private keys: redact before showing (osm.debugger.redact_private_keys)."""
    v = res.versions
    return {
        "configs": [
            {
                "@type": _ADMIN + "ClustersConfigDump",
                "version_info": v.get(TYPE_CLUSTER, ""),
                "dynamic_active_clusters": [
                    {"version_info": ver, "cluster": body} for _, ver, body in _items(res, TYPE_CLUSTER)
                ],
            },
            {
                "@type": _ADMIN + "EndpointsConfigDump",
                "dynamic_endpoint_configs": [
                    {"version_info": ver, "endpoint_config": body}
                    for _, ver, body in _items(res, TYPE_ENDPOINT)
                ],
            },
            {
                "@type": _ADMIN + "ListenersConfigDump",
                "version_info": v.get(TYPE_LISTENER, ""),
                "dynamic_listeners": [
                    {"name": name, "active_state": {"version_info": ver, "listener": body}}
                    for name, ver, body in _items(res, TYPE_LISTENER)
                ],
            },
            {
                "@type": _ADMIN + "RoutesConfigDump",
                "dynamic_route_configs": [
                    {"version_info": ver, "route_config": body} for _, ver, body in _items(res, TYPE_ROUTE)
                ],
            },
            {
                "@type": _ADMIN + "SecretsConfigDump",
                "dynamic_active_secrets": [
                    {"name": name, "version_info": ver, "secret": body}
                    for name, ver, body in _items(res, TYPE_SECRET)
                ],
            },
        ]
    }
