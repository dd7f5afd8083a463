"""The runtime's feed to a controller process: list, changes, acknowledgements, bounds."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from osm.local import feed as feed_mod
from osm.local.feed import FeedError, FeedServer, FeedSource, read_frame
from osm.models.k8s import LABEL_PROXY_UUID, Namespace, ObjectMeta, Pod, PodSpec
from osm.state.decode import ObjectKey
from osm.state.store import Store
from osm.testing.wait import wait_for

pytestmark = pytest.mark.asyncio


def pod(name: str, uuid: str) -> Pod:
    return Pod(ObjectMeta(name=name, namespace="shop", labels={LABEL_PROXY_UUID: uuid}), PodSpec())


@contextlib.asynccontextmanager
async def feeding(runtime: Store, controller: Store) -> AsyncIterator[tuple[FeedServer, FeedSource]]:
    """The runtime's store fed to the controller's over a socket pair, both ends running."""
    server = FeedServer(runtime)
    ours, theirs = socket.socketpair()
    source = FeedSource(theirs, controller)
    serving = asyncio.create_task(server.serve(ours))
    reading = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.synced.wait(), 5)
        yield server, source
    finally:
        serving.cancel()
        reading.cancel()
        await asyncio.gather(serving, reading, return_exceptions=True)


async def test_a_controller_gets_the_list_then_each_change_and_acknowledges_what_it_serves() -> None:
    runtime, controller = Store(), Store()
    runtime.apply(Namespace(ObjectMeta(name="shop")))
    runtime.apply(pod("a", "uuid-a"))
    async with feeding(runtime, controller) as (server, source):
        assert set(controller.keys()) == set(runtime.keys())
        assert not server.knows("uuid-a")  # the controller has not acknowledged a snapshot yet
        source.ack()
        await wait_for(lambda: server.knows("uuid-a"), 5, "the acknowledgement")
        runtime.apply(pod("b", "uuid-b"))
        runtime.delete(ObjectKey("Pod", "shop", "a"))
        await wait_for(lambda: ObjectKey("Pod", "shop", "a") not in set(controller.keys()), 5, "the delete")
        assert controller.get(ObjectKey("Pod", "shop", "b")) == runtime.get(ObjectKey("Pod", "shop", "b"))
        assert not server.knows("uuid-b")
        source.ack()
        await wait_for(lambda: server.knows("uuid-b"), 5, "the acknowledgement of b")
        assert not server.knows("uuid-a")  # deleted


async def test_a_restarted_controller_lists_again_and_drops_what_went_away_meanwhile() -> None:
    runtime, controller = Store(), Store()
    runtime.apply(pod("a", "uuid-a"))
    controller.apply(pod("gone", "uuid-gone"))  # what a previous feed left in a (reused) store
    async with feeding(runtime, controller):
        assert set(controller.keys()) == {ObjectKey("Pod", "shop", "a")}


async def test_the_controller_ends_when_the_runtime_closes_the_feed() -> None:
    ours, theirs = socket.socketpair()
    source = FeedSource(theirs, Store())
    ours.close()
    with pytest.raises(FeedError, match="closed the feed"):
        await asyncio.wait_for(source.run(), 5)


async def test_an_oversized_frame_is_refused_before_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_mod, "MAX_FRAME", 1024)
    reader = asyncio.StreamReader()
    reader.feed_data(struct.pack(">I", 1025) + b"x" * 10)
    with pytest.raises(FeedError, match="exceeds 1024"):
        await read_frame(reader)
