"""The control plane's HTTP port (upstream: 9091): `/health/ready` (alias `/healthz`), `/health/alive`,
`/version`, `/metrics` (the process's osm_* metrics, Prometheus text format).

Ready answers 200 once the controller serves a snapshot of a fully listed source, 503 with the reason
before (and while it stops); alive answers 200 while the process's event loop turns. Requests are small
and bounded (aiohttp's limits plus a 1 KiB body cap: none of these routes takes a body).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from osm import __version__
from osm.metrics import CONTENT_TYPE, ControlPlaneMetrics
from osm.webhook.http import AppServer, metrics_middleware

Probe = Callable[[], tuple[bool, str]]


class HealthServer(AppServer):
    def __init__(self, address: str, *, ready: Probe, metrics: ControlPlaneMetrics | None = None) -> None:
        super().__init__(address)
        self._ready = ready
        self.metrics = metrics if metrics is not None else ControlPlaneMetrics()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024, middlewares=[metrics_middleware(self.metrics)])
        app.router.add_get("/metrics", self._on_metrics)
        app.router.add_get("/health/ready", self._on_ready)
        app.router.add_get("/health/alive", self._on_alive)
        app.router.add_get("/healthz", self._on_ready)  # the injector's and bootstrap's name for it
        app.router.add_get("/version", self._on_version)
        return app

    async def _on_ready(self, _: web.Request) -> web.Response:
        ok, reason = self._ready()
        return web.Response(status=200 if ok else 503, text=reason + "\n")

    async def _on_metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _on_alive(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _on_version(self, _: web.Request) -> web.Response:
        body = {"version": __version__, "gitCommit": "", "buildDate": ""}
        return web.Response(text=json.dumps(body), content_type="application/json")
