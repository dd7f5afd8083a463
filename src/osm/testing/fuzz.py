"""Fuzz targets: what the control plane reads from outside, fed anything.

Each `check_*` takes one input and raises `Finding` when the code under test misbehaves on it: an
exception other than the clear rejection the input deserves (a ValidationError naming the object's
kind and a reason; a DecodeError for bytes that are no protobuf; LimitExceeded for a request beyond the
limits), or a response that breaks the xDS rules. Anything else (accepting, rejecting clearly) is fine.

Used by the hypothesis tests (a short run of each, in the test suite) and by bench/fuzz.py (a million
inputs and more, with atheris for the byte-level targets).
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import yaml
from google.protobuf.message import DecodeError

from osm.apis.meshconfig import MeshConfig
from osm.catalog import MeshCatalog
from osm.envoy.ads.delta import DeltaRequest, DeltaStream
from osm.envoy.ads.server import parse_delta, parse_sotw
from osm.envoy.ads.sotw import LimitExceeded, Request, SotwStream
from osm.envoy.generator import ConfigGenerator
from osm.envoy.sds.secrets import CertMaterial
from osm.envoy.types import ORDER, WILDCARD_TYPES, ProxyResources
from osm.local.source import DocumentError, SourceLimits, parse_manifest
from osm.models.errors import ValidationError
from osm.paths import DATA
from osm.state.decode import decode
from osm.state.snapshot import MeshState
from osm.testing.mesh import build

DEMO = DATA / "demo"
FAKE_CERT = CertMaterial(b"<cert>", b"<key>", b"<bundle>")
LIMITS = SourceLimits(max_file_bytes=64 * 1024, max_files=10, max_documents=200)
MAX_NAMES = 200


class Finding(Exception):
    """The code under test misbehaved on an input."""


# ---- documents, manifests, MeshConfig


def _clear(e: ValidationError) -> None:
    if not e.kind or not e.reason or e.kind not in str(e) or e.reason not in str(e):
        raise Finding(f"unclear rejection: {e!r} ({e})")


def _unexpected(what: str, e: BaseException) -> Finding:
    return Finding(f"{what}: {type(e).__name__}: {e}")


def check_document(doc: Any) -> None:
    """decode() accepts the document, ignores it, or rejects it naming kind, field and reason."""
    try:
        decode(doc)
    except ValidationError as e:
        _clear(e)
    except Exception as e:
        raise _unexpected("decode", e) from e


def check_meshconfig(spec: Any) -> None:
    doc = {"metadata": {"name": "osm-mesh-config", "namespace": "osm-system"}, "spec": spec}
    try:
        MeshConfig.from_k8s(doc)
    except ValidationError as e:
        _clear(e)
    except Exception as e:
        raise _unexpected("MeshConfig.from_k8s", e) from e


def check_manifest(data: bytes) -> None:
    """parse_manifest() of any bytes: objects, and a reasoned error for everything it refuses."""
    try:
        parsed = parse_manifest(data, "fuzz.yaml", LIMITS)
    except Exception as e:
        raise _unexpected("parse_manifest", e) from e
    for err in parsed.errors:
        if not isinstance(err, DocumentError) or not err.reason or err.file != "fuzz.yaml":
            raise Finding(f"unclear rejection: {err!r}")


@functools.cache
def seed_documents() -> tuple[Mapping[str, Any], ...]:
    """The demo's documents (every kind the mesh reads), to mutate."""
    docs: list[Mapping[str, Any]] = []
    for path in sorted(DEMO.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return tuple(docs)


_JUNK: tuple[Any, ...] = (
    None,
    "",
    "x",
    "-1",
    "a/b",
    "ÿ\u0000",
    "*",
    ".*(",
    "999999999999999999999",
    0,
    -1,
    1,
    65536,
    2**32,
    2**64,
    1.5,
    float("nan"),
    True,
    False,
    [],
    {},
    [None],
    {"": None},
    ["x", 1],
    {"name": 12},
)


def mutate(doc: Any, rnd: random.Random, depth: int = 0) -> Any:
    """A copy of `doc` with one random value replaced, removed or retyped (deep in the tree)."""
    doc = copy.deepcopy(doc)
    paths = list(_paths(doc))
    if not paths:
        return rnd.choice(_JUNK)
    parent, key = rnd.choice(paths)
    action = rnd.random()
    if action < 0.2 and isinstance(parent, dict):
        del parent[key]
    elif action < 0.8:
        parent[key] = rnd.choice(_JUNK)
    elif action < 0.9:
        parent[key] = mutate(parent[key], rnd, depth + 1) if depth < 3 else rnd.choice(_JUNK)
    elif isinstance(parent, dict):
        parent[rnd.choice(["extra", "kind", "metadata", "spec", "status", "name", "weight"])] = rnd.choice(
            _JUNK
        )
    return doc


def _paths(doc: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield doc, k
            yield from _paths(v)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield doc, i
            yield from _paths(v)


def random_document(rnd: random.Random) -> Any:
    doc = rnd.choice(seed_documents())
    for _ in range(rnd.randint(1, 3)):
        doc = mutate(doc, rnd)
    return doc


# ---- xDS


@functools.cache
def proxy_resources() -> tuple[ProxyResources, ...]:
    """A standard mesh's proxy resources at three states (a proxy's config over time)."""
    out = []
    for seed in (1, 2, 3):
        state = MeshState.build(build(8, 2, mode="smi", seed=seed).objects)
        catalog = MeshCatalog(state)
        pod = next(p for p in state.pods.values())
        out.append(ConfigGenerator().resources(catalog.proxy_policy(catalog.group_for_pod(pod)), FAKE_CERT))
    return tuple(out)


TYPES = (*ORDER, "", "type.googleapis.com/unknown.Type")


def random_requests(rnd: random.Random, n: int, delta: bool) -> list[Any]:
    """A sequence of requests and config changes ("update", i) a hostile or confused client may cause."""
    res = proxy_resources()
    names = [*sorted({name for r in res for t in ORDER for name in r.names(t)}), "missing", "*", ""]
    out: list[Any] = []
    for _ in range(n):
        if rnd.random() < 0.15:
            out.append(("update", rnd.randrange(len(res))))
            continue
        type_url = rnd.choice(TYPES)
        picked = tuple(rnd.sample(names, rnd.randint(0, min(8, len(names)))))
        nonce = rnd.choice(["", "1", "2", "3", "17", str(rnd.randint(0, 50)), "x"])
        error = rnd.choice([None, None, None, "bad config", ""])
        if delta:
            out.append(
                DeltaRequest(
                    type_url,
                    subscribe=picked,
                    unsubscribe=tuple(rnd.sample(names, rnd.randint(0, 2))),
                    initial_versions={n: rnd.choice(["v", ""]) for n in picked[:2]}
                    if rnd.random() < 0.2
                    else {},
                    nonce=nonce,
                    error=error,
                )
            )
        else:
            out.append(
                Request(type_url, version_info=rnd.choice(["", "v1"]), nonce=nonce, names=picked, error=error)
            )
    return out


def check_xds(ops: list[Any], delta: bool) -> None:
    """Feed requests and changes to a stream's state machine: it never crashes, answers only the types
    it serves, never answers a request with an unknown type, and every response carries a nonce."""
    res = proxy_resources()
    machine: SotwStream | DeltaStream = (
        DeltaStream(max_names=MAX_NAMES) if delta else SotwStream(max_names=MAX_NAMES)
    )
    current = res[0]
    for op in ops:
        try:
            if isinstance(op, tuple):
                current = res[op[1]]
                out: list[Any] = machine.on_update(current)
            else:
                out = machine.on_request(op, current)
        except LimitExceeded:
            return  # the stream ends, as the server ends it
        except Exception as e:
            raise _unexpected("xDS state machine", e) from e
        for r in out:
            if r.type_url not in ORDER or not r.nonce:
                raise Finding(f"response of type {r.type_url!r} with nonce {r.nonce!r}")
        if not isinstance(op, tuple) and op.type_url not in ORDER and out:
            raise Finding(f"answered a request of unknown type {op.type_url!r}")
        if (
            not isinstance(op, tuple)
            and op.error is not None
            and machine.decision == "nack"
            and op.type_url in WILDCARD_TYPES
            and any(r.type_url == op.type_url for r in out)
        ):
            raise Finding("a NACK of a wildcard type was answered (with the rejected type)")


def check_request_bytes(data: bytes, delta: bool = False) -> None:
    """Bytes as the server receives them: a DecodeError ends the stream; anything decoded is handled."""
    try:
        req: Any = parse_delta(data) if delta else parse_sotw(data)
    except DecodeError:
        return
    except Exception as e:
        raise _unexpected("parse", e) from e
    check_xds([req, ("update", 1), req], delta)


TARGETS: dict[str, Callable[[random.Random], None]] = {
    "document": lambda rnd: check_document(random_document(rnd)),
    "meshconfig": lambda rnd: check_meshconfig(
        mutate(next(d for d in seed_documents() if d.get("kind") == "MeshConfig").get("spec", {}), rnd)
    ),
    "manifest": lambda rnd: check_manifest(
        yaml.safe_dump_all([random_document(rnd) for _ in range(rnd.randint(1, 3))]).encode()
        if rnd.random() < 0.8
        else rnd.randbytes(rnd.randint(0, 200))
    ),
    "xds-sotw": lambda rnd: check_xds(random_requests(rnd, rnd.randint(1, 30), False), False),
    "xds-delta": lambda rnd: check_xds(random_requests(rnd, rnd.randint(1, 30), True), True),
    "request-bytes": lambda rnd: check_request_bytes(rnd.randbytes(rnd.randint(0, 64)), rnd.random() < 0.5),
}
