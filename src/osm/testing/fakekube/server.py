"""fakekube's HTTP API: discovery, OpenAPI, and get/list/watch/create/update/patch/delete of every type,
as client-go clients (kubectl, helm) and the mesh's informers call them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from osm.testing.fakekube import openapi, protobuf
from osm.testing.fakekube.selectors import SelectorError, field_selector, label_selector
from osm.testing.fakekube.store import ApiError, ApiType, Obj, Store
from osm.testing.fakekube.webhooks import Webhooks

log = logging.getLogger(__name__)

VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-fakekube",
    "gitCommit": "fakekube",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.27",
    "compiler": "gc",
    "platform": "linux/amd64",
}
AGGREGATED = "apidiscovery.k8s.io"
MAX_BODY = 3 * 1024 * 1024  # the API server's request limit is about 3 MB
MAX_PROXIED = 16 * 1024 * 1024  # a service-proxy answer


class Api:
    """The routes over one Store. `bookmark_interval` is how often a watch gets a BOOKMARK."""

    def __init__(self, store: Store, webhooks: Webhooks, *, bookmark_interval: float = 1.0) -> None:
        self.store = store
        # a container's log, as the kubelet would give it: "namespace/pod/container" -> its text
        self.pod_logs: dict[str, bytes] = {}
        # where the pod proxy reaches a pod's port ("namespace/pod:port" -> "host:port"), instead of
        # its status.podIP: tests give pods the addresses of a mesh and serve them on 127.0.0.1
        self.pod_addresses: dict[str, str] = {}
        self.webhooks = webhooks
        self.bookmark_interval = bookmark_interval
        self.requests = 0
        self.closing = False  # set while the server stops: open watches end

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/version", self._version)
        app.router.add_get("/healthz", self._ok)
        app.router.add_get("/readyz", self._ok)
        app.router.add_get("/livez", self._ok)
        app.router.add_get("/api", self._core_versions)
        app.router.add_get("/apis", self._groups)
        app.router.add_get("/openapi/v2", self._openapi_v2)
        app.router.add_get("/openapi/v3", self._openapi_v3_index)
        app.router.add_get("/openapi/v3/{path:.*}", self._openapi_v3)
        app.router.add_route(
            "*", "/api/v1/namespaces/{ns}/services/{svc}/proxy{path:(/.*)?}", self._service_proxy
        )
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{pod}/proxy{path:(/.*)?}", self._pod_proxy)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/log", self._pod_log)
        app.router.add_route("*", "/api/{rest:.*}", self._resource)
        app.router.add_route("*", "/apis/{rest:.*}", self._resource)
        return app

    # ---- discovery

    async def _service_proxy(self, request: web.Request) -> web.Response:
        """The service proxy (`services/[https:]NAME[:PORT]/proxy/PATH`), to where `services` says the
        Service is reachable ("ns/name:port", else "ns/name"); 503 as a real API server answers a
        Service without endpoints."""
        ns = request.match_info["ns"]
        scheme, name, port = _proxy_ref(request.match_info["svc"], "")
        services = self.webhooks.services
        where = services.get(f"{ns}/{name}:{port}") if port else None
        where = where or services.get(f"{ns}/{name}")
        try:
            self.store.get(self.store.type_of("", "v1", "services"), ns, name)  # 404 without the Service
            if where is None:
                raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
            return await _proxy_to(where, scheme, request, request.match_info["path"])
        except ApiError as e:
            return _error(e)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            return _error(ApiError(503, "ServiceUnavailable", f"error trying to reach service: {e}"))

    async def _pod_proxy(self, request: web.Request) -> web.Response:
        """The pod proxy (`pods/[https:]NAME[:PORT]/proxy/PATH`), to the pod's status.podIP as the API
        server does; 503 for a pod without an IP."""
        ns = request.match_info["ns"]
        scheme, name, port = _proxy_ref(request.match_info["pod"], "80")
        try:
            pod = self.store.get(self.store.type_of("", "v1", "pods"), ns, name)
            ip = (pod.get("status") or {}).get("podIP")
            if not ip:
                raise ApiError(503, "ServiceUnavailable", f'pod "{name}" has no IP')
            where = self.pod_addresses.get(f"{ns}/{name}:{port}", f"{ip}:{port}")
            return await _proxy_to(where, scheme, request, request.match_info["path"])
        except ApiError as e:
            return _error(e)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            return _error(ApiError(503, "ServiceUnavailable", f"error trying to reach pod: {e}"))

    async def _pod_log(self, request: web.Request) -> web.Response:
        """A container's log (`pods/NAME/log?container=C&tailLines=N&limitBytes=N`), from `pod_logs`;
        as the API server, `container` may be left out only for a pod of one container."""
        ns, name = request.match_info["ns"], request.match_info["pod"]
        try:
            pod = self.store.get(self.store.type_of("", "v1", "pods"), ns, name)
            names = [c.get("name") for c in (pod.get("spec") or {}).get("containers", [])]
            names += [c.get("name") for c in (pod.get("spec") or {}).get("initContainers", [])]
            container = request.query.get("container")
            if container is None:
                if len(names) != 1:
                    raise ApiError(
                        400,
                        "BadRequest",
                        f"a container name must be specified for pod {name}, choose one of: {names}",
                    )
                container = names[0]
            if container not in names:
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            text = self.pod_logs.get(f"{ns}/{name}/{container}", b"")
            if "tailLines" in request.query:
                lines = text.splitlines(keepends=True)
                text = (
                    b"".join(lines[-int(request.query["tailLines"]) :])
                    if int(request.query["tailLines"])
                    else b""
                )
            if "limitBytes" in request.query:
                text = text[: int(request.query["limitBytes"])]
            return web.Response(body=text, content_type="text/plain")
        except ApiError as e:
            return _error(e)
        except ValueError:
            return _error(ApiError(400, "BadRequest", "tailLines and limitBytes are integers"))

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(VERSION)

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _aggregated(self, request: web.Request) -> bool:
        return AGGREGATED in request.headers.get(
            "Accept", ""
        ) and "as=APIGroupDiscoveryList" in request.headers.get("Accept", "")

    async def _core_versions(self, request: web.Request) -> web.Response:
        if self._aggregated(request):
            return self._discovery_list(request, core=True)
        return web.json_response(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        )

    async def _groups(self, request: web.Request) -> web.Response:
        if self._aggregated(request):
            return self._discovery_list(request, core=False)
        groups = []
        for group, ts in sorted(self.store.groups().items()):
            if not group:
                continue
            versions = sorted({t.version for t in ts}, reverse=True)
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    def _discovery_list(self, request: web.Request, core: bool) -> web.Response:
        items = []
        for group, ts in sorted(self.store.groups().items()):
            if bool(group) == core:
                continue
            by_version: dict[str, list[ApiType]] = {}
            for t in ts:
                by_version.setdefault(t.version, []).append(t)
            versions = []
            for v, vts in sorted(by_version.items(), reverse=True):
                resources = []
                for t in sorted(vts, key=lambda t: t.plural):
                    entry: dict[str, Any] = {
                        "resource": t.plural,
                        "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
                        "scope": "Namespaced" if t.namespaced else "Cluster",
                        "singularResource": t.singular or t.kind.lower(),
                        "verbs": t.resource_entry()["verbs"],
                    }
                    if t.short_names:
                        entry["shortNames"] = list(t.short_names)
                    if t.categories:
                        entry["categories"] = list(t.categories)
                    if t.status_subresource:
                        entry["subresources"] = [
                            {
                                "subresource": "status",
                                "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
                                "verbs": ["get", "patch", "update"],
                            }
                        ]
                    resources.append(entry)
                versions.append({"version": v, "resources": resources, "freshness": "Current"})
            items.append({"metadata": {"name": group}, "versions": versions})
        body = {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }
        return web.Response(
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"},
        )

    def _resource_list(self, group: str, version: str) -> web.Response:
        ts = [t for t in self.store.types.values() if t.group == group and t.version == version]
        if not ts:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resources = []
        for t in sorted(ts, key=lambda t: t.plural):
            resources.append(t.resource_entry())
            if t.status_subresource:
                resources.append(
                    {
                        "name": f"{t.plural}/status",
                        "singularName": "",
                        "namespaced": t.namespaced,
                        "kind": t.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        gv = f"{group}/{version}" if group else version
        return web.json_response(
            {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
        )

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        # Clients ask for v2 as protobuf only; without it they use OpenAPI v3 and their built-in types.
        return _error(ApiError(404, "NotFound", "OpenAPI v2 is not served; use /openapi/v3"))

    async def _openapi_v3_index(self, request: web.Request) -> web.Response:
        return web.json_response(openapi.v3_index(self.store))

    async def _openapi_v3(self, request: web.Request) -> web.Response:
        doc = openapi.v3(self.store, request.match_info["path"])
        if doc is None:
            return _error(ApiError(404, "NotFound", "the server could not find the requested resource"))
        return web.json_response(doc)

    # ---- resources

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        try:
            return await self._dispatch(request)
        except ApiError as e:
            return _error(e)
        except SelectorError as e:
            return _error(ApiError(400, "BadRequest", str(e)))

    def _parse(self, request: web.Request) -> tuple[str, str, list[str]]:
        """(group, version, the rest of the path) for /api/v1/... and /apis/group/version/..."""
        parts = [p for p in request.path.split("/") if p]
        if parts[0] == "api":
            if len(parts) < 2:
                raise ApiError(404, "NotFound", "not found")
            return "", parts[1], parts[2:]
        if len(parts) < 3:
            if len(parts) == 2:  # /apis/<group>: an APIGroup
                raise _GroupDoc(parts[1])
            raise ApiError(404, "NotFound", "not found")
        return parts[1], parts[2], parts[3:]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            group, version, rest = self._parse(request)
        except _GroupDoc as g:
            return self._group_doc(g.group)
        if not rest:
            if request.method != "GET":
                raise ApiError(405, "MethodNotAllowed", "method not allowed")
            return self._resource_list(group, version)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        t = self.store.type_of(group, version, rest[0])
        if namespace and not t.namespaced:
            raise ApiError(404, "NotFound", f"{t.plural} is not namespaced")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub != "status":
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({sub})")
        if sub == "status" and not t.status_subresource:
            raise ApiError(404, "NotFound", f"{t.plural} has no status subresource")
        q = request.query
        dry = q.get("dryRun") == "All"
        strict = q.get("fieldValidation", "") == "Strict"
        m = request.method
        if m == "GET" and not name:
            if q.get("watch") in ("true", "1"):
                return await self._watch(request, t, namespace)
            return self._list(t, namespace, q)
        if m == "GET":
            return _json(self.store.get(t, namespace, name))
        if m == "POST" and not name:
            body = await _body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body is not an object")
            candidate = self.store.create(t, namespace, body, dry_run=True, strict=strict)
            admitted = await self.webhooks.review("CREATE", t, candidate, None, dry_run=dry)
            for k in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                admitted.get("metadata", {}).pop(k, None)
            return _json(self.store.create(t, namespace, admitted, dry_run=dry, strict=strict), 201)
        if m == "PUT" and name:
            body = await _body(request)
            old = self.store.get(t, namespace, name)
            candidate = self.store.update(
                t, namespace, name, body, subresource=sub, dry_run=True, strict=strict
            )
            admitted = await self.webhooks.review("UPDATE", t, candidate, old, sub=sub, dry_run=dry)
            return _json(
                self.store.update(t, namespace, name, admitted, subresource=sub, dry_run=dry, strict=strict)
            )
        if m == "PATCH" and name:
            body = await _body(request)
            existed = _exists(self.store, t, namespace, name)
            before = self.store.get(t, namespace, name) if existed else None

            def patch(dry_run: bool) -> Obj:
                return self.store.patch(
                    t,
                    namespace,
                    name,
                    request.headers.get("Content-Type", ""),
                    body,
                    subresource=sub,
                    field_manager=q.get("fieldManager", ""),
                    force=q.get("force") == "true",
                    dry_run=dry_run,
                    strict=strict,
                )

            candidate = patch(True)
            admitted = await self.webhooks.review(
                "UPDATE" if existed else "CREATE", t, candidate, before, sub=sub, dry_run=dry
            )
            out = patch(dry)
            if not dry and _content(admitted) != _content(candidate):  # a mutating webhook changed it
                admitted["metadata"]["resourceVersion"] = out["metadata"]["resourceVersion"]
                out = self.store.update(t, namespace, name, admitted, subresource=sub, strict=strict)
            return _json(out, 200 if existed else 201)
        if m == "DELETE" and name:
            old = self.store.get(t, namespace, name)
            await self.webhooks.review("DELETE", t, old, old, dry_run=dry)
            deleted = self.store.delete(t, namespace, name, dry_run=dry)
            return _json(deleted)
        if m == "DELETE":
            selector = label_selector(q.get("labelSelector", ""))
            gone = [
                self.store.delete(t, o["metadata"].get("namespace", ""), o["metadata"]["name"], dry_run=dry)
                for o in self.store.list(t, namespace)
                if selector(o["metadata"].get("labels") or {})
            ]
            return _json({"kind": t.list_kind, "apiVersion": t.api_version, "metadata": {}, "items": gone})
        raise ApiError(405, "MethodNotAllowed", f"{m} is not allowed here")

    def _group_doc(self, group: str) -> web.Response:
        versions = sorted({t.version for t in self.store.types.values() if t.group == group}, reverse=True)
        if not versions:
            raise ApiError(404, "NotFound", "not found")
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return web.json_response(
            {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": group,
                "versions": gvs,
                "preferredVersion": gvs[0],
            }
        )

    def _list(self, t: ApiType, namespace: str, q: Any) -> web.Response:
        labels = label_selector(q.get("labelSelector", ""))
        fields = field_selector(q.get("fieldSelector", ""))
        items = [
            o
            for o in self.store.list(t, namespace)
            if labels(o["metadata"].get("labels") or {}) and fields(o)
        ]
        for o in items:  # list items carry no kind or apiVersion, as the API server sends them
            o.pop("kind", None)
            o.pop("apiVersion", None)
        return _json(
            {
                "kind": t.list_kind,
                "apiVersion": t.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, t: ApiType, namespace: str) -> web.StreamResponse:
        q = request.query
        labels = label_selector(q.get("labelSelector", ""))
        fields = field_selector(q.get("fieldSelector", ""))
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(q.get("timeoutSeconds") or 1800)
        rv_text = q.get("resourceVersion", "")
        initial = q.get("sendInitialEvents") == "true"
        if rv_text not in ("", "0") and not rv_text.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_text!r}")
        resp = web.StreamResponse(
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )
        await resp.prepare(request)
        if rv_text in ("", "0") or initial:
            # "Start at most recent": synthetic ADDED events for what exists now; a streaming list
            # (sendInitialEvents) ends them with a bookmark marked as their end.
            for o in self.store.list(t, namespace):
                if labels(o["metadata"].get("labels") or {}) and fields(o):
                    await resp.write(_line({"type": "ADDED", "object": o}))
            since = self.store.rv
            if initial:
                end = {"resourceVersion": str(since), "annotations": {"k8s.io/initial-events-end": "true"}}
                marker = {"kind": t.kind, "apiVersion": t.api_version, "metadata": end}
                await resp.write(_line({"type": "BOOKMARK", "object": marker}))
        else:
            since = int(rv_text)
        deadline = time.monotonic() + timeout
        last_bookmark = time.monotonic()
        try:
            while time.monotonic() < deadline and not self.closing:
                try:
                    events = self.store.events_after(since, t, namespace)
                except ApiError as gone:
                    await resp.write(_line({"type": "ERROR", "object": gone.status()}))
                    break
                for ev in events:
                    since = ev.rv
                    o = dict(ev.obj)
                    o["apiVersion"], o["kind"] = t.api_version, t.kind
                    if labels(o["metadata"].get("labels") or {}) and fields(o):
                        await resp.write(_line({"type": ev.type, "object": o}))
                if bookmarks and time.monotonic() - last_bookmark >= self.bookmark_interval:
                    since = max(since, self.store.rv)
                    await resp.write(
                        _line(
                            {
                                "type": "BOOKMARK",
                                "object": {
                                    "kind": t.kind,
                                    "apiVersion": t.api_version,
                                    "metadata": {"resourceVersion": str(since)},
                                },
                            }
                        )
                    )
                    last_bookmark = time.monotonic()
                cond = self.store.changed
                async with cond:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(cond.wait(), min(0.5, self.bookmark_interval))
        except (ConnectionResetError, asyncio.CancelledError):
            return resp
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp


class _GroupDoc(Exception):
    def __init__(self, group: str) -> None:
        self.group = group


def _content(obj: Obj) -> Obj:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": meta}


def _exists(store: Store, t: ApiType, namespace: str, name: str) -> bool:
    try:
        store.get(t, namespace, name)
    except ApiError:
        return False
    return True


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "RequestEntityTooLarge", "the request is too large")
    ctype = request.headers.get("Content-Type", "")
    if "protobuf" in ctype:
        try:
            return protobuf.decode(raw)
        except protobuf.ProtobufError as e:
            raise ApiError(415, "UnsupportedMediaType", str(e)) from None
    if "cbor" in ctype:
        raise ApiError(
            415, "UnsupportedMediaType", f"the body's media type {ctype!r} is not supported; send JSON"
        )
    try:
        if "yaml" in ctype:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as e:
        raise ApiError(
            400, "BadRequest", f"the request body is not valid {'YAML' if 'yaml' in ctype else 'JSON'}: {e}"
        ) from None


def _json(obj: Obj, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(obj), status=status, content_type="application/json")


def _line(event: Obj) -> bytes:
    return (json.dumps(event) + "\n").encode()


def _proxy_ref(ref: str, default_port: str) -> tuple[str, str, str]:
    """(scheme, name, port) of a proxy path's `[https:]NAME[:PORT]`."""
    parts = ref.split(":")
    scheme = "http"
    if len(parts) > 1 and parts[0] in ("http", "https"):
        scheme, parts = parts[0], parts[1:]
    return scheme, parts[0], parts[1] if len(parts) > 1 else default_port


async def _proxy_to(where: str, scheme: str, request: web.Request, path: str) -> web.Response:
    url = f"{scheme}://{where}{path or '/'}"
    body = await request.read()
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(request.method, url, params=request.query, data=body or None, ssl=False) as resp,
    ):
        content = b""
        while len(content) <= MAX_PROXIED:  # one read returns what has arrived, not the whole answer
            more = await resp.content.read(MAX_PROXIED + 1 - len(content))
            if not more:
                break
            content += more
        if len(content) > MAX_PROXIED:
            raise ApiError(502, "BadGateway", f"the answer of {url} is over {MAX_PROXIED} bytes")
        return web.Response(body=content, status=resp.status, content_type=resp.content_type or "text/plain")


def _error(e: ApiError) -> web.Response:
    return web.Response(text=json.dumps(e.status()), status=e.code, content_type="application/json")
