"""RBAC policies: network RBAC per TrafficTarget, HTTP RBAC per route."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.type.matcher.v3 import string_pb2

from osm.envoy.common import pack
from osm.models.trafficpolicy import ANY_PRINCIPAL, NetworkRBACPolicy

NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
HTTP_RBAC_FILTER = "envoy.filters.http.rbac"


def principals(names: Iterable[str]) -> list[Any]:
    out = []
    for n in names:
        if n == ANY_PRINCIPAL:
            return [rbac_pb2.Principal(any=True)]
        out.append(
            rbac_pb2.Principal(
                authenticated=rbac_pb2.Principal.Authenticated(
                    principal_name=string_pb2.StringMatcher(exact=n)
                )
            )
        )
    return out


def network_rbac_filter(policies: tuple[NetworkRBACPolicy, ...], stat_name: str) -> Any:
    """ALLOW action: one policy per TrafficTarget; no matching policy means deny."""
    rules = rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW)
    for p in policies:
        perms = [rbac_pb2.Permission(destination_port=port) for port in p.ports] or [
            rbac_pb2.Permission(any=True)
        ]
        permission = (
            perms[0]
            if len(perms) == 1
            else rbac_pb2.Permission(or_rules=rbac_pb2.Permission.Set(rules=perms))
        )
        rules.policies[p.name].CopyFrom(
            rbac_pb2.Policy(permissions=[permission], principals=principals(p.principals))
        )
    cfg = network_rbac_pb2.RBAC(stat_prefix=f"network-{stat_name}.", rules=rules)
    return listener_components_pb2.Filter(name=NETWORK_RBAC_FILTER, typed_config=pack(cfg))


def http_rbac_per_route(allowed: tuple[str, ...]) -> Any:
    rules = rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW)
    if allowed:
        rules.policies["rbac-for-route"].CopyFrom(
            rbac_pb2.Policy(permissions=[rbac_pb2.Permission(any=True)], principals=principals(allowed))
        )
    return pack(http_rbac_pb2.RBACPerRoute(rbac=http_rbac_pb2.RBAC(rules=rules)))


def http_rbac_filter() -> Any:
    """The HCM's RBAC filter: no rules of its own; each route carries its policy."""
    return hcm_pb2.HttpFilter(name=HTTP_RBAC_FILTER, typed_config=pack(http_rbac_pb2.RBAC()))
