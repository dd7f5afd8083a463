"""The local runtime's object feed: how a control plane in another process sees the runtime's store.

The runtime plays the API server. Its store holds the accepted objects (the manifests, with what the
runtime adds: pod IPs and readiness, proxy UUIDs, ClusterIPs, the pods of Deployments); the feed
streams them to the controller: the whole list first, then each change, numbered. The controller
answers with the number up to which the snapshot it serves includes the changes, so the runtime starts
a sidecar only once the control plane knows its pod (as a pod in a cluster starts only once admitted).

The controller is a separate process so that it can fail (or be killed) alone: the sidecars keep
their last configuration, the runtime keeps its pods, and a restarted controller lists again.

Frames: a 4-byte big-endian length, then a pickle of a tuple. Both ends are this program, and the
socket pair is made by the runtime and inherited by the controller alone (no path another process
could open). Frames are bounded, and so is what the runtime buffers for a slow controller.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import struct
from typing import Any

from osm.models.k8s import Pod
from osm.state.decode import ObjectKey, key_of
from osm.state.store import Event, EventType, Store

log = logging.getLogger(__name__)

MAX_FRAME = 64 * 1024 * 1024
MAX_BUFFERED = 256 * 1024 * 1024  # unsent bytes for a controller that does not read: it is cut off
_HEADER = struct.Struct(">I")


class FeedError(Exception):
    pass


def frame(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(body) > MAX_FRAME:
        raise FeedError(f"a feed frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return _HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise FeedError("the feed ended inside a frame") from None
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise FeedError(f"a feed frame of {size} bytes exceeds {MAX_FRAME}")
    message = pickle.loads(await reader.readexactly(size))
    if not isinstance(message, tuple) or not message:
        raise FeedError("a feed frame that is not a message")
    return message


class FeedServer:
    """The runtime's end: serves its store to one controller at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seq = 0  # the number of the last change
        self.acked = -1  # what the connected controller's snapshot includes (-1: nothing yet)
        self._writer: asyncio.StreamWriter | None = None
        # proxy UUID -> the change that made its pod known (0: before the feed began)
        self._pod_seq: dict[str, int] = {p.proxy_uuid: 0 for p in store.values() if isinstance(p, Pod)}
        store.subscribe(self._on_event)

    def knows(self, proxy_uuid: str) -> bool:
        """Whether the controller's snapshot includes the pod of this proxy."""
        seq = self._pod_seq.get(proxy_uuid)
        return seq is not None and self._writer is not None and self.acked >= seq

    def _on_event(self, ev: Event) -> None:
        self.seq += 1
        if isinstance(ev.new, Pod) and ev.new.proxy_uuid and ev.new.proxy_uuid not in self._pod_seq:
            self._pod_seq[ev.new.proxy_uuid] = self.seq
        if ev.type is EventType.DELETED and isinstance(ev.old, Pod):
            self._pod_seq.pop(ev.old.proxy_uuid, None)
        if self._writer is not None:
            msg = ("delete", self.seq, ev.key) if ev.new is None else ("apply", self.seq, ev.new)
            self._send(msg)

    def _send(self, msg: tuple[Any, ...]) -> None:
        w = self._writer
        if w is None:
            return
        if w.transport.get_write_buffer_size() > MAX_BUFFERED:
            log.error(
                "the controller does not read its feed (%d bytes waiting); cutting it off", MAX_BUFFERED
            )
            w.close()
            self._writer = None
            return
        w.write(frame(msg))

    async def serve(self, sock: socket.socket) -> None:
        """Feed one controller: the list, then every change, until it disconnects."""
        reader, writer = await asyncio.open_connection(sock=sock)
        self.acked = -1
        self._writer = writer
        try:
            self._send(("sync", self.seq, self.store.values()))
            while (msg := await read_frame(reader)) is not None:
                if msg[0] == "ack" and isinstance(msg[1], int):
                    self.acked = max(self.acked, msg[1])
        except (FeedError, OSError, pickle.UnpicklingError) as e:
            log.warning("controller feed ended: %s", e)
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()


class FeedSource:
    """The controller's end: applies the runtime's objects to its store."""

    def __init__(self, sock: socket.socket, store: Store) -> None:
        self.sock = sock
        self.store = store
        self.seq = 0
        self.synced = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None

    def ack(self) -> None:
        """Tell the runtime that the snapshot now served includes every change applied so far."""
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(frame(("ack", self.seq)))

    async def run(self) -> None:
        """Apply the feed until the runtime closes it (then raise FeedError: nothing feeds the mesh)."""
        reader, writer = await asyncio.open_connection(sock=self.sock)
        self._writer = writer
        try:
            while (msg := await read_frame(reader)) is not None:
                self._apply(msg)
        finally:
            writer.close()
        raise FeedError("the local runtime closed the feed")

    def _apply(self, msg: tuple[Any, ...]) -> None:
        kind, seq = msg[0], msg[1]
        if kind == "sync":
            objects = msg[2]
            present = {key_of(o) for o in objects}
            for key in list(self.store.keys()):
                if key not in present:
                    self.store.delete(key)
            for obj in objects:
                self.store.apply(obj)
            self.synced.set()
        elif kind == "apply":
            self.store.apply(msg[2])
        elif kind == "delete" and isinstance(msg[2], ObjectKey):
            self.store.delete(msg[2])
        else:
            raise FeedError(f"unknown feed message {kind!r}")
        self.seq = seq
