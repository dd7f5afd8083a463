"""Compare what a real Envoy holds with what the generators produced for its proxy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from osm.envoy.types import TYPE_CLUSTER, TYPE_LISTENER, TYPE_ROUTE, ProxyResources
from osm.testing.envoy import (
    EnvoyProcess,
    dynamic_clusters,
    dynamic_listeners,
    dynamic_route_configs,
    dynamic_secrets,
    warming_count,
)
from osm.testing.golden import _walk, resource_json

# File-based SDS secrets of the bootstrap (the proxy's xDS client certificate), not served over ADS.
BOOTSTRAP_SECRETS = frozenset({"tls_sds", "validation_context_sds"})


def referenced_secrets(res: ProxyResources) -> set[str]:
    names: set[str] = set()
    for t in (TYPE_CLUSTER, TYPE_LISTENER):
        for r in res.get(t).values():
            for k, v, _ in _walk(resource_json(r)):
                if k == "tls_certificate_sds_secret_configs":
                    names |= {s["name"] for s in v}
                elif k == "validation_context_sds_secret_config":
                    names.add(v["name"])
    return names


@dataclass(frozen=True)
class EnvoyView:
    listeners: set[str]
    clusters: set[str]
    routes: set[str]
    secrets: set[str]
    warming: int
    rejected: int

    @staticmethod
    def read(proc: EnvoyProcess) -> EnvoyView:
        dump: dict[str, Any] = proc.config_dump()
        stats = proc.stats()
        return EnvoyView(
            listeners=set(dynamic_listeners(dump)),
            clusters=set(dynamic_clusters(dump)),
            routes=set(dynamic_route_configs(dump)),
            secrets=set(dynamic_secrets(dump)) - BOOTSTRAP_SECRETS,
            warming=warming_count(dump),
            rejected=sum(v for k, v in stats.items() if k.endswith(".update_rejected")),
        )


def expected_view(res: ProxyResources) -> EnvoyView:
    return EnvoyView(
        listeners=set(res.get(TYPE_LISTENER)),
        clusters=set(res.get(TYPE_CLUSTER)),
        routes=set(res.get(TYPE_ROUTE)),
        secrets=referenced_secrets(res),
        warming=0,
        rejected=0,
    )


def holds(proc: EnvoyProcess, res: ProxyResources) -> bool:
    """True once the Envoy holds exactly the expected resources, nothing warming, nothing rejected."""
    try:
        return EnvoyView.read(proc) == expected_view(res)
    except Exception:
        return False
