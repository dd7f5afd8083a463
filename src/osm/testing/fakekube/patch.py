"""The patch types of the Kubernetes API, on plain JSON values: JSON patch (RFC 6902), JSON merge patch
(RFC 7386), strategic merge patch (lists merged by their patch merge key, `$patch` and
`$setElementOrder` directives) and server-side apply (the applied configuration merged in, and what the
same field manager applied before but no longer does removed)."""

from __future__ import annotations

import copy
from typing import Any

# Patch merge keys of the lists clients patch, by field name (Kubernetes' struct tags). A list of maps
# not named here is replaced as a whole, as for a list without a merge key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ports": "containerPort",  # container ports; a Service's are keyed by port (see _merge_key)
    "conditions": "type",
    "webhooks": "name",
    "rules": "",  # replaced
    "finalizers": "",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "envFrom": "",
}


class PatchError(ValueError):
    pass


# ---- RFC 6902


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} does not start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        if isinstance(doc, dict):
            if p not in doc:
                raise PatchError(f"path element {p!r} not found")
            doc = doc[p]
        elif isinstance(doc, list):
            try:
                doc = doc[int(p)]
            except (ValueError, IndexError):
                raise PatchError(f"list index {p!r} out of range") from None
        else:
            raise PatchError(f"cannot index into {type(doc).__name__} with {p!r}")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "test":
            if _resolve(doc, parts) != op.get("value"):
                raise PatchError(f"test failed at {op['path']}")
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(_resolve(doc, _pointer(op.get("from", ""))))
            if kind == "move":
                doc = _remove(doc, _pointer(op["from"]))
            doc = _add(doc, parts, value)
        elif kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "replace":
            _resolve(doc, parts)  # must exist
            doc = _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        else:
            raise PatchError(f"unknown operation {kind!r}")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                i = int(last)
            except ValueError:
                raise PatchError(f"list index {last!r} is not a number") from None
            if not 0 <= i <= len(parent):
                raise PatchError(f"list index {i} out of range")
            parent.insert(i, value)
    else:
        raise PatchError(f"cannot add into {type(parent).__name__}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path element {last!r} not found")
        del parent[last]
    elif isinstance(parent, list):
        try:
            del parent[int(last)]
        except (ValueError, IndexError):
            raise PatchError(f"list index {last!r} out of range") from None
    else:
        raise PatchError(f"cannot remove from {type(parent).__name__}")
    return doc


# ---- RFC 7386


def merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---- strategic merge patch


def _merge_key(field: str, items: list[Any], path: tuple[str, ...]) -> str:
    if (
        field == "ports"
        and path[-2:-1] == ("spec",)
        and any(isinstance(i, dict) and "port" in i for i in items)
    ):
        return "port"  # a Service's ports
    return MERGE_KEYS.get(field, "")


def strategic_merge(doc: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if (
            k.startswith("$setElementOrder/")
            or k.startswith("$deleteFromPrimitiveList/")
            or k == "$retainKeys"
        ):
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _merge_list(k, out[k], v, (*path, k))
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, (*path, k))
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = copy.deepcopy(v)
    return out


def _merge_list(field: str, old: list[Any], new: list[Any], path: tuple[str, ...]) -> list[Any]:
    key = _merge_key(field, [*old, *new], path)
    if not key or not all(isinstance(i, dict) for i in [*old, *new]):
        return [copy.deepcopy(i) for i in new if not (isinstance(i, dict) and "$patch" in i)]
    out = [copy.deepcopy(i) for i in old]
    for item in new:
        k = item.get(key)
        idx = next((n for n, o in enumerate(out) if o.get(key) == k), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
        elif idx is None:
            out.append(copy.deepcopy({a: b for a, b in item.items() if a != "$patch"}))
        else:
            out[idx] = strategic_merge(out[idx], item, path)
    return out


# ---- server-side apply


def apply(live: Any, applied: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The live object after a field manager applies `applied`, having applied `previous` before: what it
    applied before and no longer does is removed, the rest merged in (lists by merge key)."""
    base = _remove_dropped(copy.deepcopy(live), previous or {}, applied) if live is not None else {}
    merged = strategic_merge(base, applied)
    assert isinstance(merged, dict)
    return merged


def _remove_dropped(live: Any, previous: Any, applied: Any) -> Any:
    if not isinstance(live, dict) or not isinstance(previous, dict):
        return live
    applied = applied if isinstance(applied, dict) else {}
    for k, v in previous.items():
        if k in ("apiVersion", "kind", "metadata") and not isinstance(v, dict):
            continue
        if k not in applied:
            live.pop(k, None)
        elif isinstance(v, dict):
            live[k] = _remove_dropped(live.get(k), v, applied[k])
    return live
