"""List-then-watch of one API resource, kept going through every failure the API can have.

The loop is client-go's reflector: list (in pages), hand the whole list to the handler, then watch from
the list's resourceVersion. Bookmarks move the resourceVersion on without an object; when a watch ends
(the server's timeout, a dropped connection, an API server restart) the next one resumes from the last
resourceVersion seen, so nothing is missed and nothing is listed again. 410 Gone means the server no
longer has the history from there: list again, and the handler reconciles the list with what it holds
(so an object deleted in the gap is deleted). Other failures back off (0.5 s doubling to 30 s) and retry.

A resource the server does not serve (404: a CRD not installed yet) counts as an empty list, so the
mesh starts without it and closed (no TrafficTargets: no traffic); it is listed again after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from osm import errcode
from osm.k8s.client import ApiError, KubeClient, Obj
from osm.k8s.resources import Resource

log = logging.getLogger(__name__)


class Handler(Protocol):
    def replace(self, resource: Resource, items: list[Obj]) -> None:
        """The whole collection (after a list): add, update and delete to match it."""

    def event(self, resource: Resource, type_: str, obj: Obj) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""


@dataclass(frozen=True, slots=True)
class InformerSettings:
    watch_seconds: int = 300
    backoff_min: float = 0.5
    backoff_max: float = 30.0
    absent_retry: float = 10.0  # how soon a resource the server does not serve is listed again


class Informer:
    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        handler: Handler,
        *,
        namespace: str = "",
        field_selector: str = "",
        settings: InformerSettings | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.handler = handler
        self.namespace = namespace
        self.field_selector = field_selector
        self.settings = settings or InformerSettings()
        self.synced = asyncio.Event()
        self.resource_version = ""
        # Counters (for tests and metrics)
        self.lists = 0
        self.watches = 0
        self.failures = 0
        self._watching: asyncio.Task[int] | None = None
        self._relist = False

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.resource}{where}"

    @property
    def _path(self) -> str:
        return self.resource.path(self.namespace)

    @property
    def _query(self) -> dict[str, str | int]:
        return {"fieldSelector": self.field_selector} if self.field_selector else {}

    def relist(self) -> None:
        """List again now (e.g. a namespace joined the mesh and its objects are wanted)."""
        self._relist = True
        if self._watching is not None:
            self._watching.cancel()

    async def _list(self) -> None:
        try:
            items, rv = await self.client.list(self._path, self._query)
        except ApiError as e:
            if not e.not_found:
                raise
            if not self.synced.is_set():
                log.warning(
                    "the API server does not serve %s (%s): the mesh runs without them until it does",
                    self.resource,
                    e.message or e.reason,
                    extra={"err_code": errcode.KUBE_RESOURCE_ABSENT},
                )
            self.handler.replace(self.resource, [])
            self.synced.set()
            raise
        for item in items:  # a list's items carry no apiVersion and kind
            item["apiVersion"], item["kind"] = self.resource.api_version, self.resource.kind
        self.lists += 1
        self.handler.replace(self.resource, items)
        self.resource_version = rv
        self.synced.set()

    async def _watch(self) -> int:
        """Follow one watch until the server ends it; the number of events it brought."""
        self.watches += 1
        events = 0
        async for ev in self.client.watch(
            self._path, self.resource_version, query=self._query, timeout_seconds=self.settings.watch_seconds
        ):
            rv = ev.object.get("metadata", {}).get("resourceVersion")
            if ev.type != "BOOKMARK":
                ev.object.setdefault("apiVersion", self.resource.api_version)
                ev.object.setdefault("kind", self.resource.kind)
                self.handler.event(self.resource, ev.type, ev.object)
            if isinstance(rv, str) and rv:
                self.resource_version = rv
            events += 1
        return events

    async def run(self) -> None:
        delay = self.settings.backoff_min
        me = asyncio.current_task()
        while True:
            try:
                if self._relist or not self.resource_version:
                    self._relist = False
                    await self._list()
                started = time.monotonic()
                self._watching = asyncio.create_task(self._watch())
                try:
                    events = await self._watching
                finally:
                    self._watching = None
                if events == 0 and time.monotonic() - started < 1.0:
                    # A watch the server ends at once, empty (a proxy in the way, a server shutting
                    # down): back off instead of reconnecting in a loop.
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.backoff_max)
                else:
                    delay = self.settings.backoff_min
            except asyncio.CancelledError:
                if me is not None and me.cancelling():
                    raise
                # relist() cancelled the watch: go round and list
            except ApiError as e:
                if e.gone:
                    log.info("%s: resourceVersion %s is gone; listing again", self, self.resource_version)
                    self.resource_version = ""
                    continue
                if e.not_found:  # the CRD is gone (or not there yet): list again later
                    self.resource_version = ""
                    await asyncio.sleep(self.settings.absent_retry)
                    continue
                delay = await self._failed(e, delay)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                delay = await self._failed(e, delay)
            except Exception as e:  # a bug or a surprise of the client: never end the informer
                log.exception("%s: unexpected failure", self)
                delay = await self._failed(e, delay)

    async def _failed(self, error: BaseException, delay: float) -> float:
        self.failures += 1
        log.warning(
            "%s: %s: %s; retrying in %.1fs",
            self,
            "watch" if self.resource_version else "list",
            error or type(error).__name__,
            delay,
            extra={"err_code": errcode.KUBE_API_FAILED},
        )
        await asyncio.sleep(delay)
        return min(delay * 2, self.settings.backoff_max)
