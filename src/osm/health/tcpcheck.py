"""The TCP-probe shim a meshed pod runs beside its app (upstream's `osm-healthcheck`, port 15904).

Inbound TCP to a meshed pod is redirected to Envoy, so a kubelet TCP probe of the app's port would
reach Envoy, not the app, and pass while the app is down. The injector rewrites each TCP probe into
`GET :15904/osm-healthcheck` with the header `Original-Tcp-Port: <port>`; this server dials
`127.0.0.1:<port>` from inside the pod (the iptables rules let a process other than Envoy reach
localhost directly) and answers 200 when the connection opens, 503 when it does not, 400 when the
header is missing or not a port. Each dial is bounded by a timeout, and requests carry no body.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from osm.models.k8s import HEALTHCHECK_HEADER as HEADER
from osm.models.k8s import HEALTHCHECK_PATH as PATH
from osm.models.k8s import HEALTHCHECK_PORT as PORT
from osm.webhook.http import AppServer

DIAL_TIMEOUT = 1.0  # seconds; the kubelet's own probe timeout is at least 1 s


def parse_port(value: str | None) -> int:
    """The port named by the header; ValueError with the reason."""
    if value is None:
        raise ValueError(f"header {HEADER} is missing")
    try:
        port = int(value.strip())
    except ValueError:
        raise ValueError(f"header {HEADER}={value[:32]!r}: not a port number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"header {HEADER}={port}: a port is 1-65535")
    return port


async def dial(host: str, port: int, within: float = DIAL_TIMEOUT) -> str | None:
    """None when a TCP connection to host:port opens within `within` seconds, else why not."""
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"no connection to {host}:{port} within {within:g}s"
    except OSError as e:
        return f"cannot connect to {host}:{port}: {e.strerror or e}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


class TcpHealthcheck(AppServer):
    def __init__(self, address: str = f"0.0.0.0:{PORT}", *, target_host: str = "127.0.0.1") -> None:
        super().__init__(address)
        self.target_host = target_host

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024)
        app.router.add_get(PATH, self._on_check)
        return app

    async def _on_check(self, request: web.Request) -> web.Response:
        try:
            port = parse_port(request.headers.get(HEADER))
        except ValueError as e:
            return web.Response(status=400, text=f"{e}\n")
        failure = await dial(self.target_host, port)
        if failure is not None:
            return web.Response(status=503, text=failure + "\n")
        return web.Response(text=f"port {port} accepts connections\n")
