"""Keep an object the control plane owns as it wants it (upstream's webhook reconciler, always on): the
webhook configurations are re-applied when deleted or edited, checked every `interval` seconds."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from osm import errcode
from osm.k8s.client import ApiError, KubeClient

log = logging.getLogger(__name__)


def _differs(live: dict[str, Any], want: dict[str, Any]) -> bool:
    """Whether the fields the control plane sets differ in the live object (others are the API's)."""
    for key, value in want.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            labels = (live.get("metadata") or {}).get("labels") or {}
            if any(labels.get(k) != v for k, v in (value.get("labels") or {}).items()):
                return True
            continue
        if live.get(key) != value:
            return True
    return False


async def keep_applied(
    kube: KubeClient, path: str, want: dict[str, Any], *, field_manager: str, interval: float = 30.0
) -> None:
    """Apply `want` at `path` now and whenever it is missing or changed; until cancelled."""
    code = errcode.RECONCILED_WEBHOOK
    while True:
        try:
            try:
                live = await kube.get(path)
            except ApiError as e:
                if not e.not_found:
                    raise
                log.warning("%s was deleted; re-creating it", path, extra={"err_code": code})
                await kube.apply(path, want, field_manager=field_manager)
            else:
                if _differs(live, want):
                    log.warning("%s was changed; restoring it", path, extra={"err_code": code})
                    await kube.apply(path, want, field_manager=field_manager)
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as e:
            log.warning("cannot check %s: %s", path, e, extra={"err_code": errcode.KUBE_API_FAILED})
        await asyncio.sleep(interval)
