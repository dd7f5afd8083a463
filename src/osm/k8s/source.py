"""The Kubernetes source: informers of the API server feeding the mesh's object store.

What the store holds is what the mesh acts on: every Namespace, the MeshConfig of the OSM namespace, and
the other watched kinds in the namespaces of the mesh (labelled `openservicemesh.io/monitored-by=<mesh>`).
Objects of other namespaces are dropped as they arrive, so the controller's memory follows the mesh,
not the cluster. When a namespace joins, the namespaced informers list again (which brings its
objects in); when it leaves, its objects leave the store.

An object that does not decode (an invalid TrafficSplit, a Service with a bad port) is reported with
kind, namespace/name, field and reason, and the version accepted before it is kept: a bad edit never
deletes working policy. Deleting the object deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from osm import errcode
from osm.k8s.client import KubeClient, Obj
from osm.k8s.informer import Informer, InformerSettings
from osm.k8s.resources import MESH_CONFIGS, MESH_NAMESPACED, NAMESPACES, PODS, Resource
from osm.models.errors import ValidationError
from osm.models.k8s import Namespace
from osm.state.decode import ObjectKey, decode, document_ref
from osm.state.store import Store

log = logging.getLogger(__name__)


class PodHook(Protocol):
    """Follows the mesh's pods: told of each accepted pod and each deleted one, and run beside the
    informers."""

    def notice(self, pod: Obj) -> None: ...

    def forget(self, pod: Obj) -> None: ...

    async def run(self) -> None: ...


class KubeSource:
    def __init__(
        self,
        client: KubeClient,
        store: Store,
        *,
        namespaced: tuple[Resource, ...] = MESH_NAMESPACED,
        settings: InformerSettings | None = None,
        pod_hooks: Sequence[PodHook] = (),
    ) -> None:
        self.client = client
        self.store = store
        self.namespaces = Informer(client, NAMESPACES, self, settings=settings)
        self.mesh_config = Informer(
            client, MESH_CONFIGS, self, namespace=store.osm_namespace, settings=settings
        )
        self.namespaced = [Informer(client, r, self, settings=settings) for r in namespaced]
        self.synced = asyncio.Event()
        # Objects whose latest version was rejected: key -> reason (the accepted version, if any, is kept)
        self.rejected: dict[ObjectKey, str] = {}
        self._monitored: set[str] = set()
        # What else follows the mesh's pods (their bootstrap Secrets' owner references and renewals)
        self.pod_hooks = tuple(pod_hooks)

    @property
    def informers(self) -> list[Informer]:
        return [self.namespaces, self.mesh_config, *self.namespaced]

    def monitored(self) -> frozenset[str]:
        return frozenset(self._monitored)

    # ---- the informers' handler

    def _key(self, resource: Resource, doc: Obj) -> ObjectKey | None:
        ref = document_ref({**doc, "kind": resource.kind})
        return None if ref is None else ObjectKey(resource.kind, ref[0], ref[1])

    def _wanted(self, resource: Resource, key: ObjectKey) -> bool:
        if resource is NAMESPACES or resource is MESH_CONFIGS:
            return True
        return key.namespace in self._monitored

    def _accept(self, resource: Resource, key: ObjectKey, doc: Obj) -> None:
        try:
            obj = decode(doc)
        except ValidationError as e:
            kept = "; the accepted version is kept" if self.store.get(key) is not None else ""
            reason = str(e)
            if self.rejected.get(key) != reason:
                log.error(
                    "%s rejected: %s%s",
                    key,
                    reason,
                    kept,
                    extra={"err_code": errcode.KUBE_OBJECT_REJECTED},
                )
            self.rejected[key] = reason
            return
        if obj is None:  # not a kind the mesh reads (cannot happen for the watched resources)
            return
        self.rejected.pop(key, None)
        self.store.apply(obj)
        if resource is PODS:
            for hook in self.pod_hooks:
                hook.notice(doc)

    def replace(self, resource: Resource, items: list[Obj]) -> None:
        listed: set[ObjectKey] = set()
        for doc in items:
            key = self._key(resource, doc)
            if key is None or not self._wanted(resource, key):
                continue
            listed.add(key)
            self._accept(resource, key, doc)
        for key in list(self.store.keys()):
            if key.kind == resource.kind and key not in listed:
                self.store.delete(key)
                self.rejected.pop(key, None)
        if resource is NAMESPACES:
            self._membership_changed()

    def event(self, resource: Resource, type_: str, obj: Obj) -> None:
        key = self._key(resource, obj)
        if key is None:
            log.error("%s: a watch event for an object without a name: %.200s", resource, obj.get("metadata"))
            return
        if type_ == "DELETED":
            self.store.delete(key)
            self.rejected.pop(key, None)
            if resource is PODS:
                for hook in self.pod_hooks:
                    hook.forget(obj)
        elif self._wanted(resource, key):
            self._accept(resource, key, obj)
        if resource is NAMESPACES:
            self._membership_changed()

    def _membership_changed(self) -> None:
        mesh = self.store.mesh_name
        now = {
            o.meta.name for o in self.store.values() if isinstance(o, Namespace) and o.monitored_by == mesh
        }
        left, joined = self._monitored - now, now - self._monitored
        self._monitored = now
        if left:
            log.info("namespaces left the mesh: %s", ", ".join(sorted(left)))
            for key in list(self.store.keys()):
                if key.namespace in left and key.kind not in ("Namespace", "MeshConfig"):
                    self.store.delete(key)
                    self.rejected.pop(key, None)
        if joined:
            log.info("namespaces joined the mesh: %s", ", ".join(sorted(joined)))
            for informer in self.namespaced:
                if informer.synced.is_set():
                    informer.relist()

    # ---- running

    async def run(self) -> None:
        """Run the informers until cancelled; `synced` is set once each has listed."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.namespaces.run())
            tg.create_task(self.mesh_config.run())
            await self.namespaces.synced.wait()  # which namespaces are wanted, before their objects
            for informer in self.namespaced:
                tg.create_task(informer.run())
            for hook in self.pod_hooks:
                tg.create_task(hook.run())
            for informer in self.informers:
                await informer.synced.wait()
            self.synced.set()
            log.info("the Kubernetes source is in sync: %d objects", len(self.store))

    def stats(self) -> dict[str, Any]:
        return {
            str(i): {"resourceVersion": i.resource_version, "lists": i.lists, "watches": i.watches}
            for i in self.informers
        }
