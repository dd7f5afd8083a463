"""Custom resources checked against their CRD's structural schema (openAPIV3Schema), as the API server
does: defaults applied, unknown fields pruned (or refused with fieldValidation=Strict), types, enums,
bounds, patterns and required fields enforced. Errors read like the API server's:
`spec.x: Invalid value: "y": spec.x in body must be of type integer`."""

from __future__ import annotations

import copy
import re
from typing import Any

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
}


def check(
    obj: dict[str, Any], schema: dict[str, Any], *, strict: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The object defaulted and pruned, and the errors (empty when valid). metadata, apiVersion and kind
    are the API server's own, so they are not checked against the schema."""
    errors: list[str] = []
    out = copy.deepcopy(obj)
    body = {k: v for k, v in out.items() if k not in ("apiVersion", "kind", "metadata")}
    props = dict(schema.get("properties") or {})
    for k in ("apiVersion", "kind", "metadata"):
        props.pop(k, None)
    cleaned = _walk(body, {**schema, "properties": props}, "", errors, strict, top=True)
    assert isinstance(cleaned, dict)
    return {**{k: out[k] for k in ("apiVersion", "kind", "metadata") if k in out}, **cleaned}, errors


def _walk(
    value: Any, schema: dict[str, Any], path: str, errors: list[str], strict: bool, top: bool = False
) -> Any:
    where = path or "<root>"
    if value is None:
        if schema.get("nullable"):
            return None
        if not top:
            errors.append(f'{where}: Invalid value: "null": {where} in body must not be null')
        return value
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            errors.append(
                f"{where}: Invalid value: {value!r}: {where} in body must be an integer or a string"
            )
        return value
    kind = schema.get("type")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{where}: Invalid value: {_show(value)}: {where} in body must be of type integer")
            return value
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{where}: Invalid value: {_show(value)}: {where} in body must be of type number")
            return value
    elif kind in _TYPES and not isinstance(value, _TYPES[kind]):
        errors.append(f"{where}: Invalid value: {_show(value)}: {where} in body must be of type {kind}")
        return value
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_show(e) for e in schema["enum"])
        errors.append(f"{where}: Unsupported value: {_show(value)}: supported values: {allowed}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(
                f"{where}: Invalid value: {value}: should be greater than or equal to {schema['minimum']}"
            )
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(
                f"{where}: Invalid value: {value}: should be less than or equal to {schema['maximum']}"
            )
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: Too long: may not be longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(
                f"{where}: Invalid value: {_show(value)}: should be at least {schema['minLength']} chars long"
            )
        pattern = schema.get("pattern")
        if pattern and re.search(pattern, value) is None:
            errors.append(f"{where}: Invalid value: {_show(value)}: {where} in body should match '{pattern}'")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(
                f"{where}: Invalid value: {len(value)}: should have at least {schema['minItems']} items"
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
        items = schema.get("items") or {}
        return [_walk(v, items, f"{path}[{i}]", errors, strict) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return _object(value, schema, path, errors, strict)
    return value


def _object(
    value: dict[str, Any], schema: dict[str, Any], path: str, errors: list[str], strict: bool
) -> dict[str, Any]:
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    out: dict[str, Any] = {}
    for k, v in value.items():
        sub = f"{path}.{k}" if path else k
        if k in props:
            out[k] = _walk(v, props[k], sub, errors, strict)
        elif isinstance(extra, dict):
            out[k] = _walk(v, extra, sub, errors, strict)
        elif extra is True or preserve:
            out[k] = v
        elif strict:
            errors.append(f'.{sub}: unknown field "{sub}"')
        # else: pruned, as the API server prunes unknown fields
    for k, sub_schema in props.items():
        if k not in out and isinstance(sub_schema, dict) and "default" in sub_schema:
            # as the API server does, a defaulted value is defaulted in turn (`default: {}` on an object
            # brings its fields' defaults)
            sub = f"{path}.{k}" if path else k
            out[k] = _walk(copy.deepcopy(sub_schema["default"]), sub_schema, sub, errors, strict)
    for k in schema.get("required") or []:
        if k not in out:
            sub = f"{path}.{k}" if path else k
            errors.append(f"{sub}: Required value")
    return out


def _show(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
