"""The mesh's Kubernetes API client: the one module that imports the Kubernetes client library.

kubernetes_asyncio gives us what a client must get right and we should not redo: kubeconfig and
in-cluster configuration, credentials (tokens, client certificates, exec plugins, refresh) and TLS.
On top of it this module speaks JSON to API paths directly, as dicts (the mesh decodes them itself at
its edge, `osm.state.decode`), and reads watches line by line with a bound of its own: the library's
watch reads lines with aiohttp's default limit of 128 KiB, so a legitimately large object (a Pod with
big annotations) would break the watch, and it retries a 410 Gone from the same resourceVersion instead
of listing again.

Every response is bounded: an object line of a watch by `max_object_bytes`, a page of a list by
`max_page_bytes` (lists are paged, `page_size` items per request).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.http_exceptions import LineTooLong
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.config.config_exception import ConfigException

Obj = dict[str, Any]

IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass(frozen=True, slots=True)
class ClientLimits:
    max_object_bytes: int = 8 * 1024 * 1024  # one watch event (Kubernetes stores objects up to ~1.5 MiB)
    max_page_bytes: int = 128 * 1024 * 1024  # one page of a list
    page_size: int = 500
    request_timeout: float = 30.0  # a request other than a watch


DEFAULT_CLIENT_LIMITS = ClientLimits()


class ApiError(Exception):
    """The API server answered with an error Status (or could not be understood)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


class ConfigError(Exception):
    """No usable kubeconfig or in-cluster configuration."""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Obj


def _status_error(status: int, body: bytes) -> ApiError:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        return ApiError(
            int(doc.get("code") or status), str(doc.get("reason", "")), str(doc.get("message", ""))
        )
    return ApiError(status, "", body[:512].decode("utf-8", "replace"))


class KubeClient:
    """JSON requests to the API server, with the credentials of a kubeconfig or of the pod."""

    def __init__(self, api: k8s_client.ApiClient, limits: ClientLimits = DEFAULT_CLIENT_LIMITS) -> None:
        self._api = api
        self.limits = limits

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | os.PathLike[str] | None = None,
        *,
        context: str | None = None,
        limits: ClientLimits = DEFAULT_CLIENT_LIMITS,
    ) -> KubeClient:
        """From `kubeconfig` if given, else from $KUBECONFIG or ~/.kube/config if present, else in-cluster."""
        cfg = k8s_client.Configuration()
        try:
            in_cluster = await asyncio.to_thread(IN_CLUSTER_TOKEN.exists)
            if kubeconfig is None and "KUBECONFIG" not in os.environ and in_cluster:
                k8s_config.load_incluster_config(client_configuration=cfg)
            else:
                await k8s_config.load_kube_config(
                    config_file=None if kubeconfig is None else os.fspath(kubeconfig),
                    context=context,
                    client_configuration=cfg,
                    persist_config=False,
                )
        except (ConfigException, OSError, ValueError) as e:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config (or in-cluster)"
            raise ConfigError(f"cannot load the Kubernetes configuration from {where}: {e}") from e
        return cls(k8s_client.ApiClient(cfg), limits)

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        deadline: aiohttp.ClientTimeout | float | None = None,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            resp: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=deadline if deadline is not None else self.limits.request_timeout,
            )
        except k8s_client.ApiException as e:  # raised by the library for some transport errors
            raise ApiError(int(e.status or 0), str(e.reason or ""), str(e.body or "")) from None
        return resp

    async def _read(self, resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
        try:
            declared = resp.content_length
            if declared is not None and declared > limit:
                raise ApiError(413, "ResponseTooLarge", f"{what}: {declared} bytes exceeds {limit}")
            body = await resp.content.read(limit + 1)
            while len(body) <= limit:
                more = await resp.content.read(limit + 1 - len(body))
                if not more:
                    break
                body += more
            if len(body) > limit:
                raise ApiError(413, "ResponseTooLarge", f"{what}: more than {limit} bytes")
            return body
        finally:
            resp.release()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One request; the decoded JSON object of a 2xx answer, else ApiError."""
        resp = await self._send(method, path, query=query, body=body, content_type=content_type)
        data = await self._read(resp, self.limits.max_page_bytes, f"{method} {path}")
        if not 200 <= resp.status <= 299:
            raise _status_error(resp.status, data)
        try:
            doc = json.loads(data) if data else {}
        except ValueError as e:
            raise ApiError(resp.status, "BadResponse", f"{method} {path}: not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ApiError(resp.status, "BadResponse", f"{method} {path}: not a JSON object")
        return doc

    async def get(self, path: str) -> Obj:
        return await self.request("GET", path)

    async def get_bytes(
        self, path: str, limit: int = 64 * 1024 * 1024, query: Mapping[str, str | int] | None = None
    ) -> bytes:
        """GET `path` as it is (not JSON: e.g. a pod's port through the API server's proxy, or a
        container's log), at most `limit` bytes; ApiError unless 2xx."""
        resp = await self._send("GET", path, query=query)
        data = await self._read(resp, limit, f"GET {path}")
        if not 200 <= resp.status <= 299:
            raise _status_error(resp.status, data)
        return data

    async def create(self, path: str, obj: Obj) -> Obj:
        return await self.request("POST", path, body=obj)

    async def replace(self, path: str, obj: Obj) -> Obj:
        return await self.request("PUT", path, body=obj)

    async def delete(self, path: str) -> Obj:
        return await self.request("DELETE", path)

    async def apply(self, path: str, obj: Obj, *, field_manager: str, force: bool = True) -> Obj:
        """Server-side apply of `obj` at `path` (the object's own path)."""
        query: dict[str, str | int] = {"fieldManager": field_manager}
        if force:
            query["force"] = "true"
        return await self.request(
            "PATCH", path, query=query, body=obj, content_type="application/apply-patch+yaml"
        )

    async def list(self, path: str, query: Mapping[str, str | int] | None = None) -> tuple[list[Obj], str]:
        """Every item of a collection (in pages) and the list's resourceVersion."""
        items: list[Obj] = []
        cont = ""
        while True:
            q: dict[str, str | int] = {**(query or {}), "limit": self.limits.page_size}
            if cont:
                q["continue"] = cont
            page = await self.request("GET", path, query=q)
            got = page.get("items")
            if not isinstance(got, list):
                raise ApiError(200, "BadResponse", f"GET {path}: a list without items")
            items.extend(i for i in got if isinstance(i, dict))
            meta = page.get("metadata") or {}
            cont = str(meta.get("continue") or "")
            if not cont:
                return items, str(meta.get("resourceVersion") or "")

    async def watch(
        self,
        path: str,
        resource_version: str,
        *,
        query: Mapping[str, str | int] | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """The events of a collection after `resource_version`, with bookmarks, until the server ends the
        watch (after about `timeout_seconds`). An ERROR event raises ApiError (410: list again)."""
        q: dict[str, str | int] = {
            **(query or {}),
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        # No total timeout; a connection silent for longer than the server's own end of the watch is dead.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.limits.request_timeout, sock_read=timeout_seconds + 30
        )
        resp = await self._send("GET", path, query=q, deadline=timeout)
        try:
            if not 200 <= resp.status <= 299:
                raise _status_error(resp.status, await resp.content.read(64 * 1024))
            while True:
                try:
                    line = await resp.content.readuntil(b"\n", max_size=self.limits.max_object_bytes)
                except (ValueError, LineTooLong) as e:
                    raise ApiError(
                        413,
                        "ResponseTooLarge",
                        f"watch {path}: an event over {self.limits.max_object_bytes} bytes",
                    ) from e
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line)
                except ValueError as e:
                    raise ApiError(
                        200, "BadResponse", f"watch {path}: an event that is not JSON: {e}"
                    ) from None
                if not isinstance(ev, dict) or not isinstance(ev.get("object"), dict):
                    raise ApiError(200, "BadResponse", f"watch {path}: an event without an object")
                typ = str(ev.get("type", ""))
                obj: Obj = ev["object"]
                if typ == "ERROR":
                    raise ApiError(
                        int(obj.get("code") or 500), str(obj.get("reason", "")), str(obj.get("message", ""))
                    )
                yield WatchEvent(typ, obj)
        finally:
            resp.release()
            resp.close()
