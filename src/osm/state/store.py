"""The object store: current objects by key, with add/update/delete events to subscribers."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from osm.state.decode import MeshObject, ObjectKey, key_of
from osm.state.snapshot import DEFAULT_MESH_NAME, DEFAULT_OSM_NAMESPACE, MeshState

log = logging.getLogger(__name__)


class EventType(enum.Enum):
    ADDED = "added"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    key: ObjectKey
    old: MeshObject | None
    new: MeshObject | None


Listener = Callable[[Event], None]
Mutator = Callable[[MeshObject], MeshObject]


class Store:
    """Holds the accepted version of every object. Not thread-safe: one owner (the event loop)."""

    def __init__(
        self, *, mesh_name: str = DEFAULT_MESH_NAME, osm_namespace: str = DEFAULT_OSM_NAMESPACE
    ) -> None:
        self._objects: dict[ObjectKey, MeshObject] = {}
        self._listeners: list[Listener] = []
        self._mutators: list[Mutator] = []
        self._version = 0
        self.mesh_name = mesh_name
        self.osm_namespace = osm_namespace

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def add_mutator(self, mutator: Mutator) -> None:
        """Admission: every applied object passes through the mutators (e.g. ClusterIP allocation)."""
        self._mutators.append(mutator)

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("store listener failed on %s %s", event.type.value, event.key)

    def apply(self, obj: MeshObject) -> bool:
        """Add or update an object; returns True when it changed."""
        for mutate in self._mutators:
            obj = mutate(obj)
        key = key_of(obj)
        old = self._objects.get(key)
        if old == obj:
            return False
        self._objects[key] = obj
        self._emit(Event(EventType.UPDATED if old is not None else EventType.ADDED, key, old, obj))
        return True

    def delete(self, key: ObjectKey) -> bool:
        old = self._objects.pop(key, None)
        if old is None:
            return False
        self._emit(Event(EventType.DELETED, key, old, None))
        return True

    def get(self, key: ObjectKey) -> MeshObject | None:
        return self._objects.get(key)

    def values(self) -> list[MeshObject]:
        return list(self._objects.values())

    def keys(self) -> Iterator[ObjectKey]:
        return iter(list(self._objects))

    def __len__(self) -> int:
        return len(self._objects)

    def snapshot(self) -> MeshState:
        self._version += 1
        return MeshState.build(
            self._objects.values(),
            version=self._version,
            mesh_name=self.mesh_name,
            osm_namespace=self.osm_namespace,
        )
