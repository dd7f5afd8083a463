"""Typed reading of Kubernetes JSON with errors that name the object and the field path.

Unknown fields are ignored; a field of the wrong type or an invalid value raises ValidationError.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from osm.models.errors import ValidationError

_MISSING: Any = object()


class Doc:
    """A view on one (sub)object of a Kubernetes document, with its path for error messages."""

    __slots__ = ("_data", "kind", "name", "namespace", "path")

    def __init__(
        self,
        data: Mapping[str, Any],
        kind: builtins.str,
        namespace: builtins.str,
        name: builtins.str,
        path: builtins.str = "",
    ) -> None:
        self._data = data
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.path = path

    def _p(self, key: builtins.str) -> builtins.str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, field: builtins.str, reason: builtins.str) -> ValidationError:
        return ValidationError(
            self.kind, self.namespace, self.name, self._p(field) if field else self.path, reason
        )

    def has(self, key: builtins.str) -> builtins.bool:
        return self._data.get(key) is not None

    def raw(self, key: builtins.str) -> Any:
        return self._data.get(key)

    def fields(self) -> list[Any]:
        return list(self._data)

    def str(
        self, key: builtins.str, default: builtins.str | None = None, *, required: builtins.bool = False
    ) -> builtins.str:
        v = self._data.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return "" if default is None else default
        if not isinstance(v, str):
            raise self.error(key, f"must be a string, got {type(v).__name__}")
        if required and not v:
            raise self.error(key, "must not be empty")
        return v

    def int(
        self,
        key: builtins.str,
        default: builtins.int = 0,
        *,
        required: builtins.bool = False,
        lo: builtins.int | None = None,
        hi: builtins.int | None = None,
    ) -> builtins.int:
        v = self._data.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"must be an integer, got {type(v).__name__}")
        if lo is not None and v < lo:
            raise self.error(key, f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise self.error(key, f"must be <= {hi}, got {v}")
        return v

    def bool(self, key: builtins.str, default: builtins.bool = False) -> builtins.bool:
        v = self._data.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.error(key, f"must be a boolean, got {type(v).__name__}")
        return v

    def obj(self, key: builtins.str, *, required: builtins.bool = False) -> Doc:
        v = self._data.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            v = {}
        if not isinstance(v, Mapping):
            raise self.error(key, f"must be an object, got {type(v).__name__}")
        return Doc(v, self.kind, self.namespace, self.name, self._p(key))

    def seq(self, key: builtins.str, *, required: builtins.bool = False) -> list[Any]:
        v = self._data.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return []
        if not isinstance(v, list):
            raise self.error(key, f"must be a list, got {type(v).__name__}")
        return v

    def objs(self, key: builtins.str, *, required: builtins.bool = False) -> list[Doc]:
        out = []
        for i, item in enumerate(self.seq(key, required=required)):
            if not isinstance(item, Mapping):
                raise self.error(f"{key}[{i}]", f"must be an object, got {type(item).__name__}")
            out.append(Doc(item, self.kind, self.namespace, self.name, self._p(f"{key}[{i}]")))
        return out

    def strs(self, key: builtins.str) -> tuple[builtins.str, ...]:
        items = self.seq(key)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.error(f"{key}[{i}]", f"must be a string, got {type(item).__name__}")
        return tuple(items)

    def str_map(self, key: builtins.str) -> dict[builtins.str, builtins.str]:
        v = self._data.get(key)
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            raise self.error(key, f"must be a map of strings, got {type(v).__name__}")
        out: dict[str, str] = {}
        for k, val in v.items():
            if not isinstance(k, str):
                raise self.error(key, f"has a non-string key {k!r}")
            if isinstance(val, bool | int | float):
                val = str(val).lower() if isinstance(val, bool) else str(val)
            if not isinstance(val, str):
                raise self.error(f"{key}.{k}", f"must be a string, got {type(val).__name__}")
            out[k] = val
        return out


def parse_duration(text: str) -> float:
    """Parse a Go duration string ("24h", "1h30m", "90s", "250ms") into seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    if s == "0":
        return 0.0
    total = 0.0
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        if j == i:
            raise ValueError(f"invalid duration {text!r}")
        number = float(s[i:j])
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        unit = s[j:k]
        if unit not in units:
            raise ValueError(f"invalid unit {unit!r} in duration {text!r}")
        total += number * units[unit]
        i = k
    return total
