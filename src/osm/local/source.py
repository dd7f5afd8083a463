"""The local state source: a directory of Kubernetes YAML, read recursively and watched for changes.

A document that fails to parse or validate is reported (file, document index, kind, name, field,
reason) and the last accepted version of its objects is kept. A deleted file deletes its objects.
Pods without an `osm-proxy-uuid` label get a stable one derived from their namespace and name.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from osm.models.errors import ValidationError
from osm.models.k8s import LABEL_PROXY_UUID, ObjectMeta, Pod
from osm.state.decode import MeshObject, ObjectKey, decode, key_of
from osm.state.store import Store

log = logging.getLogger(__name__)

YAML_SUFFIXES = (".yaml", ".yml", ".json")
_UUID_NAMESPACE = uuid.UUID("6f1d3c1e-7b0e-4d59-9a43-2f1b7c0c9e21")


@dataclass(frozen=True, slots=True)
class DocumentError:
    file: str
    index: int
    kind: str
    name: str
    field: str
    reason: str

    def __str__(self) -> str:
        obj = f"{self.kind} {self.name}".strip() or "document"
        where = f" field {self.field}" if self.field else ""
        return f"{self.file} (document {self.index}): {obj}:{where}: {self.reason}"


def stable_proxy_uuid(namespace: str, name: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{namespace}/{name}"))


def with_proxy_uuid(pod: Pod) -> Pod:
    if pod.proxy_uuid:
        return pod
    labels = dict(pod.meta.labels)
    labels[LABEL_PROXY_UUID] = stable_proxy_uuid(pod.meta.namespace, pod.meta.name)
    meta: ObjectMeta = replace(pod.meta, labels=labels)
    return replace(pod, meta=meta)


def parse_file(path: Path, display: str) -> tuple[list[MeshObject], list[DocumentError]]:
    """Every accepted object of one file, and an error for each rejected document."""
    objects: list[MeshObject] = []
    errors: list[DocumentError] = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        return [], [DocumentError(display, 0, "", "", "", f"cannot read file: {e}")]
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        return [], [DocumentError(display, 0, "", "", "", f"invalid YAML: {e}")]
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        items: list[Any] = [doc]
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            items = doc.get("items") or []
            if not isinstance(items, list):
                errors.append(DocumentError(display, i, "List", "", "items", "must be a list"))
                continue
        for item in items:
            try:
                obj = decode(item)
            except ValidationError as e:
                name = f"{e.namespace}/{e.name}" if e.namespace and e.name else e.name
                errors.append(DocumentError(display, i, e.kind, name, e.field, e.reason))
                continue
            if obj is None:
                continue
            if isinstance(obj, Pod):
                obj = with_proxy_uuid(obj)
            objects.append(obj)
    return objects, errors


class ManifestSource:
    """Feeds a Store from a directory. One owner of that directory's I/O."""

    def __init__(
        self, root: Path, store: Store, *, on_error: Callable[[DocumentError], None] | None = None
    ) -> None:
        self.root = root.resolve()
        self.store = store
        self.on_error = on_error or (lambda e: log.error("rejected: %s", e))
        self._owned: dict[Path, dict[ObjectKey, MeshObject]] = {}
        self.errors: dict[Path, list[DocumentError]] = {}

    def _wanted(self, p: Path) -> bool:
        """A manifest file: a YAML/JSON suffix, and no hidden part below the root (e.g. `..data/`)."""
        rel = p.relative_to(self.root) if p.is_relative_to(self.root) else p
        return p.suffix in YAML_SUFFIXES and not any(part.startswith(".") for part in rel.parts)

    def _files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file() and self._wanted(p))

    def load(self) -> None:
        """(Re)read every file; apply what changed."""
        files = set(self._files())
        for gone in sorted(set(self._owned) - files):
            self._remove_file(gone)
        for path in sorted(files):
            self.load_file(path)

    def load_file(self, path: Path) -> None:
        if not path.exists():
            self._remove_file(path)
            return
        display = str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)
        objects, errors = parse_file(path, display)
        for e in errors:
            self.on_error(e)
        self.errors[path] = errors
        old = self._owned.get(path, {})
        new: dict[ObjectKey, MeshObject] = {}
        for obj in objects:
            new[key_of(obj)] = obj
        if errors:
            # Keep the last accepted version of objects whose document was rejected this time. An error
            # that names no object (unreadable file, invalid YAML, no name) keeps every old object.
            unattributed = any(not e.name or e.kind in ("", "<unknown>") for e in errors)
            for key, obj in old.items():
                if key not in new and (unattributed or any(_error_names(e, key) for e in errors)):
                    new[key] = obj
        self._owned[path] = new
        self._forget(old.keys() - new.keys())
        for obj in new.values():
            self.store.apply(obj)

    def _forget(self, keys: set[ObjectKey]) -> None:
        """Objects no longer defined by a file: delete them, or fall back to another file's version."""
        for key in keys:
            other = next((objs[key] for objs in self._owned.values() if key in objs), None)
            if other is None:
                self.store.delete(key)
            else:
                self.store.apply(other)

    def _remove_file(self, path: Path) -> None:
        old = self._owned.pop(path, {})
        self.errors.pop(path, None)
        self._forget(set(old))

    async def watch(self, *, debounce_ms: int = 50, stop: asyncio.Event | None = None) -> None:
        """Apply changes as files are written, until cancelled (or `stop` is set)."""
        from watchfiles import awatch

        async for changes in awatch(
            self.root, debounce=debounce_ms, step=20, stop_event=stop, recursive=True, force_polling=False
        ):
            paths = sorted({Path(p) for _, p in changes})
            for p in paths:
                if self._wanted(p) and (p.is_file() or p in self._owned):
                    self.load_file(p)
                elif p.is_dir() or (not p.exists() and p.suffix not in YAML_SUFFIXES):
                    self.load()  # a directory appeared or disappeared
                    break


def _error_names(e: DocumentError, key: ObjectKey) -> bool:
    name = f"{key.namespace}/{key.name}" if key.namespace else key.name
    return e.kind == key.kind and e.name == name
