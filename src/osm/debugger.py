"""The controller's debug server (upstream: port 9092, on while MeshConfig
`observability.enableDebugServer` is true).

Endpoints (JSON unless said): `/debug` (the index, text), `/debug/proxy` (connected proxies;
`?uuid=<id>` that proxy's configuration as the controller serves it, an Envoy ConfigDump with private
keys redacted as Envoy's own dump does), `/debug/certs` (identity, serial, validity: never a key),
`/debug/xds` (each proxy's latest xDS requests, by type), `/debug/policies`, `/debug/config`
(MeshConfig), `/debug/namespaces`, `/debug/feature-flags`, and profiles of this Python process:
`/debug/pprof/profile?seconds=N` (CPU, cProfile of the event loop's thread, text) and
`/debug/pprof/heap` (tracemalloc's largest allocation sites; the first call starts tracing).

Every answer is built from the controller's own state; none carries a private key (a test greps every
endpoint's output for PEM keys). Requests are small (1 KiB cap) and a CPU profile lasts at most 30 s,
one at a time.
"""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import io
import json
import pstats
import tracemalloc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from aiohttp import web

from osm.webhook.http import AppServer

MAX_PROFILE_SECONDS = 30
REDACTED = "[redacted]"

ENDPOINTS = (
    ("/debug/proxy", "connected proxies; ?uuid=<id> for one proxy's config dump"),
    ("/debug/certs", "certificates issued: identity, serial, validity"),
    ("/debug/xds", "each proxy's latest xDS requests, by type"),
    ("/debug/policies", "SMI and OSM policies in the current snapshot"),
    ("/debug/config", "the MeshConfig in effect"),
    ("/debug/namespaces", "namespaces in the mesh"),
    ("/debug/feature-flags", "MeshConfig feature flags"),
    ("/debug/pprof/profile", "CPU profile of the controller process (?seconds=N, at most 30)"),
    ("/debug/pprof/heap", "largest allocation sites (tracemalloc; the first call starts tracing)"),
)


@dataclass(frozen=True)
class DebugView:
    """What the debug server may read, as the controller hands it over."""

    proxies: Callable[[], list[dict[str, Any]]]
    config_dump: Callable[[str], dict[str, Any] | None]  # by proxy UUID; None: not connected
    certs: Callable[[], list[dict[str, Any]]]
    xds: Callable[[], dict[str, Any]]
    policies: Callable[[], dict[str, Any]]
    mesh_config: Callable[[], dict[str, Any]]
    namespaces: Callable[[], list[str]]
    feature_flags: Callable[[], dict[str, bool]]


def plain(value: Any) -> Any:
    """A JSON-able rendering of a model object (dataclasses, mappings, enums, datetimes)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
    if isinstance(value, Mapping):
        return {
            str(k) if not isinstance(k, tuple) else "/".join(map(str, k)): plain(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return REDACTED if b"PRIVATE KEY" in value else value.decode(errors="replace")
    return value


def redact_private_keys(dump: Any) -> Any:
    """The dump with every private key (a `private_key` field, or PEM key text) replaced by
    "[redacted]", as Envoy's /config_dump does (`private_key: {inline_string: "[redacted]"}`)."""
    if isinstance(dump, dict):
        return {
            k: ({"inline_string": REDACTED} if k == "private_key" else redact_private_keys(v))
            for k, v in dump.items()
        }
    if isinstance(dump, list):
        return [redact_private_keys(v) for v in dump]
    if isinstance(dump, str) and "PRIVATE KEY-----" in dump:
        return REDACTED
    return dump


class DebugServer(AppServer):
    def __init__(self, address: str, view: DebugView) -> None:
        super().__init__(address)
        self.view = view
        self._profiling = asyncio.Lock()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024)
        r = app.router
        r.add_get("/debug", self._index)
        r.add_get("/debug/", self._index)
        r.add_get("/debug/proxy", self._proxy)
        v = self.view
        r.add_get("/debug/certs", self._serving(v.certs))
        r.add_get("/debug/xds", self._serving(v.xds))
        r.add_get("/debug/policies", self._serving(v.policies))
        r.add_get("/debug/config", self._serving(v.mesh_config))
        r.add_get("/debug/namespaces", self._serving(v.namespaces))
        r.add_get("/debug/feature-flags", self._serving(v.feature_flags))
        r.add_get("/debug/pprof/profile", self._cpu)
        r.add_get("/debug/pprof/heap", self._heap)
        return app

    def _serving(self, read: Callable[[], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(_: web.Request) -> web.Response:
            return await self._json(read())

        return handle

    @staticmethod
    async def _json(body: Any) -> web.Response:
        text = json.dumps(redact_private_keys(plain(body)), indent=1, sort_keys=True, default=str)
        return web.Response(text=text + "\n", content_type="application/json")

    async def _index(self, _: web.Request) -> web.Response:
        lines = ["OSM controller debug server", ""] + [f"{path}\t{what}" for path, what in ENDPOINTS]
        return web.Response(text="\n".join(lines) + "\n")

    async def _proxy(self, request: web.Request) -> web.Response:
        uuid = request.query.get("uuid")
        if uuid is None:
            return await self._json(self.view.proxies())
        dump = self.view.config_dump(uuid)
        if dump is None:
            return web.Response(status=404, text=f"no connected proxy with UUID {uuid[:64]!r}\n")
        return await self._json(dump)

    async def _cpu(self, request: web.Request) -> web.Response:
        try:
            seconds = float(request.query.get("seconds", "5"))
        except ValueError:
            return web.Response(status=400, text="seconds: a number of seconds\n")
        if not 0 < seconds <= MAX_PROFILE_SECONDS:
            return web.Response(status=400, text=f"seconds: between 0 and {MAX_PROFILE_SECONDS}\n")
        if self._profiling.locked():
            return web.Response(status=409, text="a CPU profile is being taken; ask again after it\n")
        async with self._profiling:
            profile = cProfile.Profile()
            profile.enable()  # this thread: the event loop's, where the controller does its work
            try:
                await asyncio.sleep(seconds)
            finally:
                profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(60)
        return web.Response(text=out.getvalue())

    async def _heap(self, _: web.Request) -> web.Response:
        if not tracemalloc.is_tracing():
            tracemalloc.start(8)
            return web.Response(text="allocation tracing started; ask again for the largest sites\n")
        snapshot = tracemalloc.take_snapshot()
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"traced: {current / 1e6:.1f} MB now, {peak / 1e6:.1f} MB at peak", ""]
        lines += [str(stat) for stat in snapshot.statistics("lineno")[:40]]
        return web.Response(text="\n".join(lines) + "\n")
