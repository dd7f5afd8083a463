"""Protobuf wire encoding of the few envelope messages we assemble from pre-serialized bytes.

Building protobuf objects costs 10-25x their serialization; the ADS server therefore keeps every
resource as serialized bytes and concatenates envelopes (Any, DiscoveryResponse, delta Resource)
around them instead of rebuilding messages per proxy.
"""

from __future__ import annotations

from collections.abc import Iterable

_SMALL = [bytes([i]) for i in range(128)]
_TAG2 = b"\x12"  # field 2, length-delimited


def varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    if n < 16384:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number: int, value: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint((number << 3) | 2) + varint(len(value)) + value


def field_str(number: int, value: str) -> bytes:
    return field_bytes(number, value.encode()) if value else b""


def any_bytes(type_url: str, body: bytes) -> bytes:
    """google.protobuf.Any{type_url=1, value=2}."""
    return b"".join((field_str(1, type_url), _TAG2, varint(len(body)), body))


def framed_any(type_url: str, body: bytes) -> bytes:
    """An Any as field 2 of its envelope, framed (tag and length) once for every response that sends it.

    DiscoveryResponse.resources and the delta Resource.resource are both field 2, so the same framed
    bytes serve SotW and delta."""
    return framed_any_head(type_url, len(body)) + body


def framed_any_head(type_url: str, body_len: int) -> bytes:
    """framed_any's bytes before the body (for callers that join the body from parts themselves)."""
    head = field_str(1, type_url)
    size = len(head) + 1 + len(varint(body_len)) + body_len
    return b"".join((_TAG2, varint(size), head, _TAG2, varint(body_len)))


def unframe(framed: bytes) -> bytes:
    """The Any inside framed_any's result."""
    i = 1
    while framed[i] & 0x80:
        i += 1
    return framed[i + 1 :]


def discovery_response(version: str, type_url: str, nonce: str, resources: Iterable[bytes]) -> bytes:
    """DiscoveryResponse{version_info=1, resources=2 (Any), type_url=4, nonce=5}."""
    return discovery_response_framed(version, type_url, nonce, (field_bytes(2, r) for r in resources))


def discovery_response_framed(version: str, type_url: str, nonce: str, framed: Iterable[bytes]) -> bytes:
    """discovery_response from framed_any results: each resource's bytes are copied once, into the
    result (a response may hold megabytes), with no per-resource encoding."""
    return b"".join((field_str(1, version), *framed, field_str(4, type_url), field_str(5, nonce)))


def delta_envelope(name: str, version: str, framed_len: int) -> tuple[bytes, bytes]:
    """The bytes before and after a framed_any result `framed_len` long that make it an
    envoy.service.discovery.v3.Resource{version=1, resource=2 (Any), name=3}, as a field 2 of the
    delta response: head + framed + tail (joined once by the caller)."""
    head, tail = field_str(1, version), field_str(3, name)
    return _TAG2 + varint(len(head) + framed_len + len(tail)) + head, tail


def delta_discovery_response(
    system_version: str,
    type_url: str,
    nonce: str,
    resources: Iterable[bytes],
    removed: Iterable[str],
) -> bytes:
    """DeltaDiscoveryResponse{system_version_info=1, resources=2, type_url=4, nonce=5, removed=6};
    `resources` as each resource's delta_envelope head, framed bytes and tail, one after the other."""
    parts = [field_str(1, system_version), *resources, field_str(4, type_url), field_str(5, nonce)]
    parts += [field_str(6, n) for n in removed]
    return b"".join(parts)
