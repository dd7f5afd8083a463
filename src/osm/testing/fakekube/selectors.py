"""Label and field selectors, as the API server parses them (`a=b,c!=d,e in (f,g),!h,i`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, str]], bool]

_SET = re.compile(r"^\s*([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


class SelectorError(ValueError):
    pass


def _split(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def _requirement(term: str) -> Predicate:
    m = _SET.match(term)
    if m:
        key, values = m.group(1), {v.strip() for v in m.group(3).split(",") if v.strip()}
        if m.group(2) == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if "!=" in term:
        k, v = (s.strip() for s in term.split("!=", 1))
        return lambda labels: labels.get(k) != v
    if "=" in term:
        k, v = (s.strip() for s in re.split("==?", term, maxsplit=1))
        return lambda labels: labels.get(k) == v
    if term.startswith("!"):
        absent = term[1:].strip()
        return lambda labels: absent not in labels
    if re.fullmatch(r"[A-Za-z0-9./_-]+", term):
        return lambda labels: term in labels
    raise SelectorError(f"unable to parse requirement: {term!r}")


def label_selector(text: str) -> Predicate:
    tests = [_requirement(raw.strip()) for raw in _split(text or "")]
    return lambda labels: all(t(labels) for t in tests)


def _field_requirement(term: str) -> Callable[[Mapping[str, Any]], bool]:
    neg = "!=" in term
    k, v = (s.strip() for s in re.split("!=|==?", term, maxsplit=1))
    if k not in ("metadata.name", "metadata.namespace", "status.phase", "spec.nodeName", "type"):
        raise SelectorError(f'field label not supported: "{k}"')
    path = k.split(".")

    def test(obj: Mapping[str, Any]) -> bool:
        cur: Any = obj
        for p in path:
            cur = cur.get(p) if isinstance(cur, Mapping) else None
        value = cur if cur is not None else ""
        return bool(value != v) if neg else bool(value == v)

    return test


def field_selector(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """Field selectors of the fields every object has (metadata.name, metadata.namespace) and a few
    status fields (status.phase), with = == and !=."""
    tests = [_field_requirement(raw.strip()) for raw in _split(text or "")]
    return lambda obj: all(t(obj) for t in tests)
