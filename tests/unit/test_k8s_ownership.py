"""The bootstrap-Secret owner's queue is bounded; what it drops comes back when the pod is seen again."""

from __future__ import annotations

from typing import Any, cast

from osm.k8s.client import KubeClient
from osm.k8s.ownership import BootstrapSecretOwner


def pod(n: int, uid: str = "u") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"p{n}",
            "namespace": "ns",
            "uid": f"{uid}{n}",
            "labels": {"osm-proxy-uuid": f"x{n}"},
        }
    }


async def test_the_queue_is_bounded_and_dropped_pods_come_back() -> None:
    owner = BootstrapSecretOwner(cast(KubeClient, None), max_queued=2)
    for n in range(3):
        owner.notice(pod(n))
    assert owner.dropped == 1 and owner._queue.qsize() == 2
    owner.notice(pod(0))  # already queued: once per proxy
    assert owner._queue.qsize() == 2
    owner._queue.get_nowait()
    owner.notice(pod(2))  # the dropped one, seen again at the next list
    assert owner._queue.qsize() == 2 and owner.dropped == 1
    owner.notice({"metadata": {"name": "no-uuid", "namespace": "ns", "uid": "u"}})  # not a meshed pod
    assert owner._queue.qsize() == 2
