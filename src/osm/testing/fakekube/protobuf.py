"""Kubernetes protobuf request bodies, for the kinds clients send that way (client-go's typed clients:
helm's release Secrets, `kubectl create namespace`): the `k8s\\0` envelope (runtime.Unknown) and the
fields of ObjectMeta, Secret, ConfigMap and Namespace. Anything else is refused with 415."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(b: bytes, i: int) -> tuple[int, int]:
    shift = out = 0
    while True:
        if i >= len(b):
            raise ProtobufError("truncated varint")
        byte = b[i]
        i += 1
        out |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return out, i
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields(b: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs: an int for varints, bytes for length-delimited and fixed fields."""
    i, out = 0, []
    while i < len(b):
        tag, i = _varint(b, i)
        number, wire = tag >> 3, tag & 7
        value: Any
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise ProtobufError("truncated field")
            value, i = b[i : i + n], i + n
        elif wire == 1:
            value, i = b[i : i + 8], i + 8
        elif wire == 5:
            value, i = b[i : i + 4], i + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, value))
    return out


def _text(v: Any) -> str:
    return bytes(v).decode() if isinstance(v, bytes | bytearray) else str(v)


def _map(entries: list[bytes], *, binary: bool = False) -> dict[str, str]:
    out = {}
    for e in entries:
        f = dict(fields(e))
        value = f.get(2, b"")
        out[_text(f.get(1, b""))] = base64.b64encode(value).decode() if binary else _text(value)
    return out


def _meta(b: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    labels, annotations, finalizers, owners = [], [], [], []
    for n, v in fields(b):
        if n in names and v:
            meta[names[n]] = _text(v)
        elif n == 7 and v:
            meta["generation"] = v
        elif n == 8:
            seconds = dict(fields(v)).get(1)
            if seconds:
                meta["creationTimestamp"] = datetime.fromtimestamp(seconds, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
        elif n == 11:
            labels.append(v)
        elif n == 12:
            annotations.append(v)
        elif n == 13:
            f = dict(fields(v))
            owners.append(
                {
                    "kind": _text(f.get(1, b"")),
                    "name": _text(f.get(3, b"")),
                    "uid": _text(f.get(4, b"")),
                    "apiVersion": _text(f.get(5, b"")),
                    **({"controller": bool(f[6])} if 6 in f else {}),
                }
            )
        elif n == 14:
            finalizers.append(_text(v))
    if labels:
        meta["labels"] = _map(labels)
    if annotations:
        meta["annotations"] = _map(annotations)
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    return meta


def decode(raw: bytes) -> dict[str, Any]:
    """A protobuf-encoded object as its JSON form."""
    if raw[:4] != MAGIC:
        raise ProtobufError("not a Kubernetes protobuf body (no k8s magic)")
    envelope = dict(fields(raw[4:]))
    type_meta = dict(fields(envelope.get(1, b"")))
    api_version, kind = _text(type_meta.get(1, b"")), _text(type_meta.get(2, b""))
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    body = fields(envelope.get(2, b""))
    if kind in ("Secret", "ConfigMap"):
        data, extra = [], []
        for n, v in body:
            if n == 1:
                obj["metadata"] = _meta(v)
            elif n == 2:
                data.append(v)
            elif kind == "Secret" and n == 3:
                obj["type"] = _text(v)
            elif (kind == "Secret" and n == 4) or (kind == "ConfigMap" and n == 3):
                extra.append(v)
            elif n in (4, 5):
                obj["immutable"] = bool(v)
        if data:
            obj["data"] = _map(data, binary=kind == "Secret")
        if extra:
            obj["stringData" if kind == "Secret" else "binaryData"] = _map(extra, binary=kind == "ConfigMap")
    elif kind == "Namespace":
        for n, v in body:
            if n == 1:
                obj["metadata"] = _meta(v)
            elif n == 2:
                finalizers = [_text(f) for m, f in fields(v) if m == 1]
                obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    elif kind in ("DeleteOptions", ""):
        return {"kind": "DeleteOptions"}
    else:
        raise ProtobufError(f"protobuf bodies of kind {kind!r} are not supported; send JSON")
    return obj
