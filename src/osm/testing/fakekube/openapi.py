"""OpenAPI documents, v2 and v3, as far as clients read them: every kind with its group-version-kind, and
custom resources with their CRD's schema. Built-in kinds are described loosely (any fields), so
client-side validation accepts them; the API server's own checks are the mesh's, not fakekube's."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from osm.testing.fakekube.store import Store
from osm.testing.fakekube.types import ApiType

_META = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _schema(t: ApiType) -> dict[str, Any]:
    gvk = [{"group": t.group, "version": t.version, "kind": t.kind}]
    if t.schema is not None:
        props = dict(t.schema.get("properties") or {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = _META
        return {**t.schema, "properties": props, "x-kubernetes-group-version-kind": gvk}
    return {
        "type": "object",
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": _META},
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-group-version-kind": gvk,
    }


def _name(t: ApiType) -> str:
    group = ".".join(reversed(t.group.split("."))) if t.group else "core"
    return f"io.k8s.api.{group}.{t.version}.{t.kind}"


def v2(store: Store) -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "fakekube", "version": "v1.37.0"},
        "paths": {},
        "definitions": {_name(t): _schema(t) for t in store.types.values()},
    }


def _gv_path(t: ApiType) -> str:
    return f"apis/{t.group}/{t.version}" if t.group else f"api/{t.version}"


def v3_index(store: Store) -> dict[str, Any]:
    paths = {}
    for path in sorted({_gv_path(t) for t in store.types.values()}):
        doc = v3(store, path)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def v3(store: Store, path: str) -> dict[str, Any] | None:
    """A group-version's document. Clients look for each kind's PATCH operation (by its
    x-kubernetes-group-version-kind) with a fieldValidation parameter, which tells them the server
    validates fields itself; with no strategic-merge requestBody they patch from their built-in types."""
    ts = [t for t in store.types.values() if _gv_path(t) == path.strip("/")]
    if not ts:
        return None
    paths = {}
    for t in ts:
        scope = "/namespaces/{namespace}" if t.namespaced else ""
        paths[f"/{_gv_path(t)}{scope}/{t.plural}/{{name}}"] = {
            "patch": {
                "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "fakekube", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": {_name(t): _schema(t) for t in ts}},
    }
