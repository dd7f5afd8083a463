"""fakekube: an in-memory Kubernetes API server for tests and for trying the mesh by hand.

It serves what the chart, the mesh and their clients (kubectl, helm, the mesh's informers) use:
discovery (aggregated too), OpenAPI v2/v3, get/list/watch/create/update/patch/delete of the built-in
kinds of the groups they touch, and custom resources once their CRD exists (checked against its
structural schema). resourceVersions grow monotonically; an update with a stale one gets 409; a watch
gets bookmarks when it asks and 410 Gone from a compacted version (`compact()`, a test hook). Admission
webhooks registered through Mutating/ValidatingWebhookConfigurations are called over HTTPS, verifying
their caBundle (see webhooks.py).

    python -m osm.testing.fakekube --port N --kubeconfig-out FILE [--service NS/NAME=HOST:PORT ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from osm.testing.fakekube.server import Api
from osm.testing.fakekube.store import ApiError, Store
from osm.testing.fakekube.webhooks import Webhooks

__all__ = ["ApiError", "FakeKube", "Store", "kubeconfig"]


def kubeconfig(server: str, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig for `server` (no credentials: fakekube does not authenticate)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fakekube", "cluster": {"server": server}}],
        "users": [{"name": "fakekube", "user": {}}],
        "contexts": [
            {
                "name": "fakekube",
                "context": {"cluster": "fakekube", "user": "fakekube", "namespace": namespace},
            }
        ],
        "current-context": "fakekube",
    }


class FakeKube:
    """fakekube on 127.0.0.1, in a thread of its own (tests) or on the caller's loop (`serve`).

    `services` maps "namespace/name" (or "namespace/name:port", for one port of it) to "host:port": where
    a Service is reachable (in a cluster, its ClusterIP), for the webhooks it calls and the service proxy
    (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`)."""

    def __init__(
        self,
        *,
        port: int = 0,
        services: dict[str, str] | None = None,
        bookmark_interval: float = 1.0,
        store: Store | None = None,
    ) -> None:
        self.store = store or Store()
        self.webhooks = Webhooks(self.store, services or {})
        self.api = Api(self.store, self.webhooks, bookmark_interval=bookmark_interval)
        self.port = port
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(kubeconfig(self.url, namespace)))
        return path

    async def serve(self) -> None:
        """Start listening (on the running loop); `stop()` ends it."""
        runner = web.AppRunner(self.api.app(), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            self.api.closing = True
            try:
                await self._runner.cleanup()
            finally:
                self.api.closing = False
            self._runner = None

    async def restart(self, down: float = 0.0) -> None:
        """Test hook: the API server goes away (connections and watches end) and comes back on the same
        port, with the same objects."""
        await self.stop()
        if down:
            await asyncio.sleep(down)
        await self.serve()

    def compact(self) -> int:
        """Test hook: every watch from an earlier resourceVersion gets 410 Gone."""
        return self.store.compact()

    # ---- in a thread (for synchronous tests and real clients run as processes)

    def start(self) -> FakeKube:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=main, name="fakekube", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fakekube did not start")
        return self

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on fakekube's loop (its state is the loop's) and return the result."""
        assert self._loop is not None
        fut: Any = asyncio.run_coroutine_threadsafe(_call(fn, *args), self._loop)
        return fut.result(10)

    def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _call(fn: Any, *args: Any) -> Any:
    out = fn(*args)
    if asyncio.iscoroutine(out):
        out = await out
    return out


@contextlib.contextmanager
def running(**kw: Any) -> Iterator[FakeKube]:
    with FakeKube(**kw) as fk:
        yield fk
