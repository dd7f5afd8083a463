"""The HTTP side of an admission webhook: bounded body, 400 for what is not an AdmissionReview, and an
answer (never a 500) when the review itself fails."""

from __future__ import annotations

import json
import logging
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from osm.metrics import ControlPlaneMetrics
from osm.webhook.review import ReviewError, request_of, response

log = logging.getLogger(__name__)

MAX_REVIEW_BYTES = 4 * 1024 * 1024  # an AdmissionReview of one object (Kubernetes caps objects near 1.5 MiB)

Review = Callable[[Any], Awaitable[dict[str, Any]]]


def metrics_middleware(metrics: ControlPlaneMetrics) -> Any:
    """osm_http_response_total and osm_http_response_duration for every request, labelled by the route's
    path pattern (never the raw path: an outsider's paths cannot grow the series)."""

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as e:
            code = e.status
            raise
        finally:
            route = request.match_info.route.resource
            path = route.canonical if route is not None else "unmatched"
            labels = (str(code), request.method if request.method in _METHODS else "other", path)
            metrics.http_response_total.inc(*labels)
            metrics.http_response_duration.observe(time.perf_counter() - started, *labels)

    return record


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def handler(
    review: Review, what: str, metrics: ControlPlaneMetrics | None = None, kind: str = ""
) -> Callable[[web.Request], Awaitable[web.Response]]:
    def answered(answer: dict[str, Any]) -> web.Response:
        if metrics is not None:
            allowed = bool((answer.get("response") or {}).get("allowed"))
            metrics.admission_webhook_response_total.inc(kind or what, "true" if allowed else "false")
        return web.json_response(answer)

    async def handle(request: web.Request) -> web.Response:
        too_big = web.Response(status=413, text=f"an AdmissionReview over {MAX_REVIEW_BYTES} bytes\n")
        if request.content_length is not None and request.content_length > MAX_REVIEW_BYTES:
            return too_big
        body = await request.content.read(MAX_REVIEW_BYTES + 1)
        if len(body) > MAX_REVIEW_BYTES:
            return too_big
        try:
            doc = json.loads(body)
            uid = str(request_of(doc)["uid"])
        except (ValueError, ReviewError) as e:
            return web.Response(status=400, text=f"{e}\n")
        try:
            answer = await review(doc)
        except Exception as e:  # the API server needs an answer; failurePolicy Fail refuses the request
            log.exception("%s failed", what)
            return answered(response(uid, False, message=f"{what} failed: {e}", code=500))
        return answered(answer)

    return handle


def app(
    path: str, review: Review, what: str, metrics: ControlPlaneMetrics | None = None, kind: str = ""
) -> web.Application:
    application = web.Application(
        client_max_size=MAX_REVIEW_BYTES, middlewares=[metrics_middleware(metrics)] if metrics else []
    )
    application.router.add_post(path, handler(review, what, metrics, kind))
    return application


def server_ssl(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS 1.2+ server context for a webhook's certificate (signed by the mesh CA: the caBundle)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as d:  # the ssl module loads keys from files only
        crt, key = Path(d) / "tls.crt", Path(d) / "tls.key"
        crt.write_bytes(cert_pem)
        key.touch(0o600)
        key.write_bytes(key_pem)
        ctx.load_cert_chain(crt, key)
    return ctx


class AppServer:
    """An aiohttp application (`app()`) served over plain HTTP on HOST:PORT from start() to stop();
    `port` is the one bound (PORT 0: an ephemeral one)."""

    def __init__(self, address: str) -> None:
        self.host, self.port = split_address(address)
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        self._runner, self.port = await serve(self.app(), f"{self.host}:{self.port}", None)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


async def serve(
    application: web.Application, address: str, context: ssl.SSLContext | None
) -> tuple[web.AppRunner, int]:
    """Serve on HOST:PORT (over HTTPS with `context`); the runner (to clean up) and the port bound."""
    runner = web.AppRunner(application, handle_signals=False, access_log=None)
    await runner.setup()
    host, port = split_address(address)
    site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    sockets = getattr(site._server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1]) if sockets else port
