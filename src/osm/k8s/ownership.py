"""Each pod's bootstrap Secret is made owned by its pod, so that Kubernetes deletes it with the pod.

The injector creates the Secret while the pod is being admitted, before the pod has a uid; the
controller, which sees the pod once it exists, adds the owner reference (upstream's bootstrap-secret
watcher). The queue of Secrets to patch is bounded: a pod dropped when it is full comes back at the
next list of pods.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from osm import errcode
from osm.k8s.client import ApiError, KubeClient, Obj
from osm.k8s.resources import SECRETS
from osm.models.k8s import LABEL_PROXY_UUID

log = logging.getLogger(__name__)

BOOTSTRAP_SECRET_PREFIX = "envoy-bootstrap-config-"


class BootstrapSecretOwner:
    def __init__(self, kube: KubeClient, *, max_queued: int = 10_000) -> None:
        self.kube = kube
        self._queue: asyncio.Queue[tuple[str, str, str, str]] = asyncio.Queue(maxsize=max_queued)
        self._done: set[str] = set()  # proxy UUIDs whose Secret is owned (or has none)
        self.owned = 0
        self.dropped = 0

    def notice(self, pod: Obj) -> None:
        """A pod exists: queue its bootstrap Secret for an owner reference (once per proxy)."""
        meta = pod.get("metadata") or {}
        uuid = (meta.get("labels") or {}).get(LABEL_PROXY_UUID)
        uid, name, ns = meta.get("uid"), meta.get("name"), meta.get("namespace")
        if not (isinstance(uuid, str) and uuid and isinstance(uid, str) and uid and name and ns):
            return
        if uuid in self._done:
            return
        self._done.add(uuid)
        try:
            self._queue.put_nowait((str(ns), str(name), uid, uuid))
        except asyncio.QueueFull:
            self._done.discard(uuid)  # noticed again at the next list
            self.dropped += 1

    def forget(self, pod: Obj) -> None:
        uuid = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_PROXY_UUID)
        if isinstance(uuid, str):
            self._done.discard(uuid)

    async def _own(self, ns: str, pod: str, uid: str, uuid: str) -> None:
        patch: dict[str, Any] = {
            "metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}]}
        }
        try:
            await self.kube.request(
                "PATCH",
                SECRETS.path(ns, BOOTSTRAP_SECRET_PREFIX + uuid),
                body=patch,
                content_type="application/merge-patch+json",
            )
            self.owned += 1
        except ApiError as e:
            if not e.not_found:  # no Secret: a pod another injector (or none) made; nothing to own
                raise

    async def run(self) -> None:
        while True:
            ns, pod, uid, uuid = await self._queue.get()
            try:
                await self._own(ns, pod, uid, uuid)
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as e:
                self._done.discard(uuid)  # retried when the pod is seen again
                log.warning(
                    "cannot make Secret %s/%s%s owned by Pod %s: %s",
                    ns,
                    BOOTSTRAP_SECRET_PREFIX,
                    uuid,
                    pod,
                    e,
                    extra={"err_code": errcode.KUBE_API_FAILED},
                )
