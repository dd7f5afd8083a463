"""Golden-file helpers: a proxy's resources as sorted snake_case JSON, and the consistency check
(every EDS name is a CDS cluster, every RDS name is referenced by LDS, every referenced secret and
cluster exists)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from google.protobuf import any_pb2, json_format

import osm.envoy.generator  # noqa: F401  (registers every message type the generators use)
from osm.envoy.types import (
    SHORT,
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    TYPE_SECRET,
    ProxyResources,
    Resource,
)


def resource_json(r: Resource) -> dict[str, Any]:
    msg = any_pb2.Any.FromString(r.any_bytes)
    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def resources_json(res: ProxyResources) -> dict[str, Any]:
    return {SHORT[t]: {name: resource_json(r) for name, r in sorted(res.get(t).items())} for t in res.by_type}


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _walk(node: Any) -> Iterator[tuple[str, Any, Any]]:
    """(key, value, parent) for every key in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v, node
            yield from _walk(v)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def consistency_errors(res: ProxyResources) -> list[str]:
    data = {t: {n: resource_json(r) for n, r in res.get(t).items()} for t in res.by_type}
    clusters, endpoints = data[TYPE_CLUSTER], data[TYPE_ENDPOINT]
    listeners, routes, secrets = data[TYPE_LISTENER], data[TYPE_ROUTE], data[TYPE_SECRET]
    errors: list[str] = []
    eds_clusters = {n for n, c in clusters.items() if c.get("type") == "EDS"}
    errors += [f"EDS {n} has no CDS cluster" for n in sorted(set(endpoints) - eds_clusters)]
    errors += [f"CDS cluster {n} has no EDS resource" for n in sorted(eds_clusters - set(endpoints))]
    rds_refs = {v for lst in listeners.values() for k, v, _ in _walk(lst) if k == "route_config_name"}
    errors += [f"LDS references missing RDS {n}" for n in sorted(rds_refs - set(routes))]
    errors += [f"RDS {n} is not referenced by LDS" for n in sorted(set(routes) - rds_refs)]
    secret_refs: set[str] = set()
    for doc in [*clusters.values(), *listeners.values()]:
        for k, v, _ in _walk(doc):
            if k == "tls_certificate_sds_secret_configs":
                secret_refs |= {s["name"] for s in v}
            elif k == "validation_context_sds_secret_config":
                secret_refs.add(v["name"])
    errors += [f"referenced secret {n} does not exist" for n in sorted(secret_refs - set(secrets))]
    cluster_refs: set[str] = set()
    for doc in [*routes.values(), *listeners.values()]:
        for k, v, parent in _walk(doc):
            if k == "cluster" and isinstance(v, str):
                cluster_refs.add(v)
            elif k == "clusters" and isinstance(v, list) and "clusters" in parent:
                cluster_refs |= {c["name"] for c in v if isinstance(c, dict) and "name" in c}
    errors += [f"referenced cluster {n} does not exist" for n in sorted(cluster_refs - set(clusters))]
    return errors
