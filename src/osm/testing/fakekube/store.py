"""fakekube's state: objects by type, namespace and name, one resourceVersion counter, and the event log
watches read from (compactable, so a watch from a compacted version gets 410 Gone)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from osm.testing.fakekube import patch as patches
from osm.testing.fakekube import schema as schemas
from osm.testing.fakekube.types import BUILTIN, CRD, ApiType, types_of_crd

Obj = dict[str, Any]
Key = tuple[str, str, str, str, str]  # group, version (the stored one), plural, namespace, name

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
MAX_EVENTS = 100_000
DEFAULT_NAMESPACES = (
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
)  # the event log keeps at most this many (older ones are compacted)


NAME_LABEL = "kubernetes.io/metadata.name"


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def not_found(t: ApiType, name: str) -> ApiError:
    g = f"{t.plural}.{t.group}" if t.group else t.plural
    return ApiError(
        404, "NotFound", f'{g} "{name}" not found', {"name": name, "group": t.group, "kind": t.plural}
    )


@dataclass
class Event:
    rv: int
    type: str  # ADDED MODIFIED DELETED
    group: str
    plural: str
    namespace: str
    obj: Obj


@dataclass
class Store:
    types: dict[tuple[str, str, str], ApiType] = field(default_factory=dict)
    objects: dict[tuple[str, str, str, str], Obj] = field(default_factory=dict)  # group, plural, ns, name
    rv: int = 1
    events: list[Event] = field(default_factory=list)
    compacted: int = 0  # watches from a version below this get 410 Gone
    applied: dict[tuple[str, str, str, str, str], Obj] = field(default_factory=dict)  # + manager
    _changed: asyncio.Condition | None = None
    admission: list[Callable[[str, ApiType, Obj, Obj | None], Obj]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for t in BUILTIN:
            self.types[t.key] = t
        ns = self.types[("", "v1", "namespaces")]
        for name in DEFAULT_NAMESPACES:
            self.create(ns, "", {"metadata": {"name": name}})

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    # ---- types

    def type_of(self, group: str, version: str, plural: str) -> ApiType:
        t = self.types.get((group, version, plural))
        if t is None:
            gv = f"{group}/{version}" if group else version
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({gv} {plural})"
            )
        return t

    def groups(self) -> dict[str, list[ApiType]]:
        out: dict[str, list[ApiType]] = {}
        for t in self.types.values():
            out.setdefault(t.group, []).append(t)
        return out

    def _sync_crd(self, crd: Obj, deleted: bool) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        if deleted:
            for okey in [k for k in self.objects if k[0] == group and k[1] == plural]:
                self._record("DELETED", self.type_of_stored(group, plural), self.objects.pop(okey))
        for tkey in [k for k in self.types if k[0] == group and k[2] == plural]:
            del self.types[tkey]
        if deleted:
            return
        for t in types_of_crd(crd):
            self.types[t.key] = t

    def type_of_stored(self, group: str, plural: str) -> ApiType:
        return next(t for k, t in self.types.items() if k[0] == group and k[2] == plural)

    # ---- events

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _record(self, kind: str, t: ApiType, obj: Obj) -> None:
        ns = obj.get("metadata", {}).get("namespace", "")
        self.events.append(Event(self.rv, kind, t.group, t.plural, ns, copy.deepcopy(obj)))
        if len(self.events) > MAX_EVENTS:
            drop = len(self.events) - MAX_EVENTS
            self.compacted = self.events[drop - 1].rv + 1
            del self.events[:drop]
        self._notify()

    def _notify(self) -> None:
        cond = self._changed
        if cond is None:
            return

        async def wake() -> None:
            async with cond:
                cond.notify_all()

        with contextlib.suppress(RuntimeError):  # no loop: nobody watches
            asyncio.get_running_loop().create_task(wake())

    def compact(self) -> int:
        """Test hook: forget every event so far; a watch from an older version gets 410 Gone."""
        self.events.clear()
        self.compacted = self.rv + 1
        return self.rv

    def events_after(self, rv: int, t: ApiType, namespace: str) -> list[Event]:
        if rv < self.compacted - 1:
            raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.compacted - 1})")
        return [
            e
            for e in self.events
            if e.rv > rv
            and e.group == t.group
            and e.plural == t.plural
            and (not namespace or e.namespace == namespace)
        ]

    # ---- objects

    def _key(self, t: ApiType, namespace: str, name: str) -> tuple[str, str, str, str]:
        return (t.group, t.plural, namespace if t.namespaced else "", name)

    def get(self, t: ApiType, namespace: str, name: str) -> Obj:
        obj = self.objects.get(self._key(t, namespace, name))
        if obj is None:
            raise not_found(t, name)
        return self._as_version(obj, t)

    def list(self, t: ApiType, namespace: str = "") -> list[Obj]:
        return [
            self._as_version(o, t)
            for (g, p, ns, _), o in sorted(self.objects.items())
            if g == t.group and p == t.plural and (not namespace or ns == namespace)
        ]

    @staticmethod
    def _as_version(obj: Obj, t: ApiType) -> Obj:
        out = copy.deepcopy(obj)
        out["apiVersion"], out["kind"] = t.api_version, t.kind
        return out

    def create(
        self, t: ApiType, namespace: str, obj: Obj, *, dry_run: bool = False, strict: bool = False
    ) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(
                422,
                "Invalid",
                f'{t.kind} "" is invalid: metadata.name: Required value: name or generateName is required',
            )
        if t.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            if t.kind != "Namespace" and ("", "namespaces", "", meta["namespace"]) not in self.objects:
                raise ApiError(404, "NotFound", f'namespaces "{meta["namespace"]}" not found')
        else:
            meta.pop("namespace", None)
        key = self._key(t, meta.get("namespace", ""), name)
        if key in self.objects:
            g = f"{t.plural}.{t.group}" if t.group else t.plural
            raise ApiError(
                409, "AlreadyExists", f'{g} "{name}" already exists', {"name": name, "kind": t.plural}
            )
        obj["apiVersion"], obj["kind"] = t.api_version, t.kind
        obj = self._admit("CREATE", t, obj, None, strict)
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta.pop("resourceVersion", None)
        if t.kind == "Service":
            self._allocate_cluster_ip(obj)
        if t.kind == "Namespace":
            obj.setdefault("status", {"phase": "Active"})
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        if dry_run:
            meta["resourceVersion"] = str(self.rv)
            return obj
        meta["resourceVersion"] = self._next_rv()
        self.objects[key] = obj
        if t.kind == "CustomResourceDefinition":
            self._sync_crd(obj, deleted=False)
            obj.setdefault("status", {})["conditions"] = [{"type": "Established", "status": "True"}]
        self._record("ADDED", t, obj)
        return copy.deepcopy(obj)

    def update(
        self,
        t: ApiType,
        namespace: str,
        name: str,
        obj: Obj,
        *,
        subresource: str = "",
        dry_run: bool = False,
        strict: bool = False,
    ) -> Obj:
        key = self._key(t, namespace, name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(t, name)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        given_rv = meta.get("resourceVersion")
        if given_rv and given_rv != old["metadata"]["resourceVersion"]:
            g = f"{t.plural}.{t.group}" if t.group else t.plural
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {g} "{name}": the object has been modified; please '
                "apply your changes to the latest version and try again",
                {"name": name, "kind": t.plural},
            )
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = obj.get("status")
        else:
            new = obj
            if t.status_subresource:
                new["status"] = copy.deepcopy(old.get("status"))
                if new["status"] is None:
                    new.pop("status")
            new["apiVersion"], new["kind"] = t.api_version, t.kind
            for k in ("uid", "creationTimestamp", "namespace", "name"):
                if k in old["metadata"]:
                    new["metadata"][k] = old["metadata"][k]
            new["metadata"].setdefault("managedFields", old["metadata"].get("managedFields"))
            if new["metadata"].get("managedFields") is None:
                new["metadata"].pop("managedFields")
            new = self._admit("UPDATE", t, new, old, strict)
            if t.kind == "Service":
                spec = new.setdefault("spec", {})
                if not spec.get("clusterIP") and (old.get("spec") or {}).get("clusterIP"):
                    spec["clusterIP"] = old["spec"]["clusterIP"]
                    spec["clusterIPs"] = old["spec"].get("clusterIPs", [old["spec"]["clusterIP"]])
        gen = old["metadata"].get("generation", 1)
        changed_spec = {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")
        }
        new["metadata"]["generation"] = gen + 1 if changed_spec else gen
        if _same(new, old):
            return copy.deepcopy(old)
        if dry_run:
            return new
        new["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[key] = new
        if t.kind == "CustomResourceDefinition":
            self._sync_crd(new, deleted=False)
        self._record("MODIFIED", t, new)
        return copy.deepcopy(new)

    def patch(
        self,
        t: ApiType,
        namespace: str,
        name: str,
        content_type: str,
        body: Any,
        *,
        subresource: str = "",
        field_manager: str = "",
        force: bool = False,
        dry_run: bool = False,
        strict: bool = False,
    ) -> Obj:
        key = self._key(t, namespace, name)
        live = self.objects.get(key)
        kind = content_type.split(";")[0].strip()
        try:
            if kind == "application/apply-patch+yaml":
                if not isinstance(body, dict):
                    raise patches.PatchError("an apply patch is an object")
                manager = field_manager or "unknown"
                akey = (*key, manager)
                previous = self.applied.get(akey)
                if live is None:
                    created = self.create(t, namespace, body, dry_run=dry_run, strict=strict)
                    if not dry_run:
                        self.applied[akey] = copy.deepcopy(body)
                        self._managed(key, manager, t)
                        created = copy.deepcopy(self.objects[key])
                    return created
                merged = patches.apply(live, body, previous)
                merged["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                out = self.update(
                    t, namespace, name, merged, subresource=subresource, dry_run=dry_run, strict=strict
                )
                if not dry_run:
                    self.applied[akey] = copy.deepcopy(body)
                    self._managed(key, manager, t)
                    out = copy.deepcopy(self.objects[key])
                return out
            if live is None:
                raise not_found(t, name)
            if kind == "application/json-patch+json":
                new = patches.json_patch(live, body)
            elif kind == "application/merge-patch+json":
                new = patches.merge_patch(live, body)
            elif kind == "application/strategic-merge-patch+json":
                if t.schema is not None:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources",
                    )
                new = patches.strategic_merge(live, body)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"the media type {kind!r} is not a patch type")
        except patches.PatchError as e:
            raise ApiError(422, "Invalid", f"the patch could not be applied: {e}") from None
        # The patched object keeps the live resourceVersion unless the patch sets one: then, as in a real
        # API server, it is a precondition (409 when the object has changed since).
        new.setdefault("metadata", {}).setdefault("resourceVersion", live["metadata"]["resourceVersion"])
        return self.update(t, namespace, name, new, subresource=subresource, dry_run=dry_run, strict=strict)

    def _managed(self, key: tuple[str, str, str, str], manager: str, t: ApiType) -> None:
        obj = self.objects[key]
        fields = obj["metadata"].setdefault("managedFields", [])
        fields[:] = [f for f in fields if not (f.get("manager") == manager and f.get("operation") == "Apply")]
        fields.append(
            {
                "manager": manager,
                "operation": "Apply",
                "apiVersion": t.api_version,
                "time": _now(),
                "fieldsType": "FieldsV1",
                "fieldsV1": {},
            }
        )

    def delete(self, t: ApiType, namespace: str, name: str, *, dry_run: bool = False) -> Obj:
        key = self._key(t, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            raise not_found(t, name)
        if dry_run:
            return copy.deepcopy(obj)
        del self.objects[key]
        for akey in [k for k in self.applied if k[:4] == key]:
            del self.applied[akey]
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._record("DELETED", t, obj)
        if t.kind == "Namespace":
            for k in sorted(k for k in self.objects if k[2] == name):
                self.delete(self.type_of_stored(k[0], k[1]), name, k[3])
        if t.kind == "CustomResourceDefinition":
            self._sync_crd(obj, deleted=True)
        return copy.deepcopy(obj)

    # ---- admission: structural schemas of custom resources, then registered admission (webhooks)

    def _admit(self, op: str, t: ApiType, obj: Obj, old: Obj | None, strict: bool) -> Obj:
        if t.schema is not None:
            obj, errors = schemas.check(obj, t.schema, strict=strict)
            if errors:
                name = obj.get("metadata", {}).get("name", "")
                raise ApiError(
                    422,
                    "Invalid",
                    f'{t.kind}.{t.group} "{name}" is invalid: ' + ", ".join(f"{e}" for e in errors[:20]),
                    {
                        "name": name,
                        "group": t.group,
                        "kind": t.kind,
                        "causes": [{"message": e} for e in errors[:20]],
                    },
                )
        if t.kind == "Namespace" and t.group == "":
            # as the API server does (1.21+): a label naming the namespace, for namespaceSelectors
            meta = obj.setdefault("metadata", {})
            labels = meta.get("labels")
            meta["labels"] = {
                **(labels if isinstance(labels, dict) else {}),
                NAME_LABEL: meta.get("name", ""),
            }
        for hook in self.admission:
            obj = hook(op, t, obj, old)
        return obj

    def _allocate_cluster_ip(self, svc: Obj) -> None:
        spec = svc.setdefault("spec", {})
        if spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName":
            return
        if spec.get("clusterIP"):
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            return
        taken = {
            (o.get("spec") or {}).get("clusterIP")
            for (g, p, _, _), o in self.objects.items()
            if g == "" and p == "services"
        }
        for ip in list(SERVICE_CIDR.hosts())[10:]:
            if str(ip) not in taken:
                spec["clusterIP"], spec["clusterIPs"] = str(ip), [str(ip)]
                spec.setdefault("type", "ClusterIP")
                return
        raise ApiError(500, "InternalError", "the service IP range is full")


def _same(a: Obj, b: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        o = copy.deepcopy(o)
        o.get("metadata", {}).pop("resourceVersion", None)
        o.get("metadata", {}).pop("managedFields", None)
        return o

    return strip(a) == strip(b)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["CRD", "ApiError", "ApiType", "Store"]
