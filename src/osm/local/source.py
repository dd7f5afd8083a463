"""The local state source: a directory of Kubernetes YAML, read recursively and watched for changes.

What it accepts, and what it refuses:
- Only regular files with a YAML or JSON suffix, at most `max_file_bytes` each and `max_files` in all,
  outside hidden directories (e.g. `..data/`). A symlink is followed only to a file inside the
  directory. A FIFO, a device or an oversized file is reported, never read.
- A document that fails to parse or validate is reported (file, document index, kind, name, field,
  reason) and the last accepted version of its object is kept. A file that cannot be read or parsed
  at all keeps every object it defined. A deleted document or file deletes its objects.
- An object defined twice (in two files, or twice in one) keeps the definition that came first; the
  other is reported and takes over only when the first goes away.
- A Pod without an `osm-proxy-uuid` label gets a random one when it first appears (as the injector
  gives each new pod one), kept for as long as the pod exists and, with a state directory, across
  restarts of the control plane.

Files are read and parsed off the event loop while watching. Besides the file system's change events,
the watcher compares every file's stamp (inode, size, modification time) with the one it last read every
second (less often for a large tree, so that comparing takes at most 2% of the time), so that a change
made before the watch was in place, or one the kernel's event queue dropped, is still applied.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from osm import errcode
from osm.local.uuids import ProxyUuids
from osm.models.errors import ValidationError
from osm.models.k8s import LABEL_PROXY_UUID, Pod
from osm.state.decode import MeshObject, ObjectKey, decode, document_ref, key_of
from osm.state.store import Store

log = logging.getLogger(__name__)

YAML_SUFFIXES = (".yaml", ".yml", ".json")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """Bounds on what the directory may make the control plane read."""

    max_file_bytes: int = 4 * 1024 * 1024
    max_files: int = 10_000
    max_documents: int = 10_000  # per file, List items included


DEFAULT_SOURCE_LIMITS = SourceLimits()

Stamp = tuple[int, int, int]  # a file's inode, size and modification time (ns)
RESYNC_S = 1.0  # how often the watcher compares stamps (at most)
RESYNC_SHARE = 50  # ...and at least this many times as long as comparing took
WAKE_MS = 100


@dataclass(frozen=True, slots=True)
class DocumentError:
    file: str
    index: int
    kind: str
    name: str  # "namespace/name" (or "name"), as far as the document tells
    field: str
    reason: str
    # The object the document defines, when its metadata could be read: the last accepted version of
    # objects of that namespace and name is kept.
    ref: tuple[str, str] | None = None
    code: str = errcode.MANIFEST_REJECTED

    def __str__(self) -> str:
        obj = f"{self.kind} {self.name}".strip() or "document"
        where = f" field {self.field}" if self.field else ""
        return f"{self.file} (document {self.index}): {obj}:{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One file's accepted objects (with their document index) and its rejected documents; `whole`
    is set when the file as a whole could not be used (unreadable, not YAML, too large)."""

    objects: list[tuple[int, MeshObject]] = field(default_factory=list)
    errors: list[DocumentError] = field(default_factory=list)
    whole: bool = False


def with_proxy_uuid(pod: Pod, uuid: str) -> Pod:
    return replace(pod, meta=replace(pod.meta, labels={**pod.meta.labels, LABEL_PROXY_UUID: uuid}))


class ManifestError(Exception):
    """A manifest file the source will not read."""

    def __init__(self, reason: str, code: str = errcode.MANIFEST_REJECTED) -> None:
        super().__init__(reason)
        self.code = code


def read_manifest(path: Path, root: Path, limits: SourceLimits) -> bytes:
    """The bytes of one manifest file: a regular file inside `root`, at most `max_file_bytes` long.

    Opened without blocking (a FIFO cannot hang the reader) and checked on the open descriptor."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise ManifestError(f"cannot read file: {e}") from None
    if not target.is_relative_to(root):
        raise ManifestError(
            f"is a symlink to {target}, outside the manifest directory; it is not followed",
            errcode.MANIFEST_OUTSIDE,
        )
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise ManifestError(f"cannot read file: {e}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(f"is not a regular file ({_file_type(st.st_mode)})", errcode.MANIFEST_TYPE)
        if st.st_size > limits.max_file_bytes:
            raise ManifestError(
                f"is {st.st_size} bytes; manifest files are limited to {limits.max_file_bytes} bytes",
                errcode.MANIFEST_TOO_LARGE,
            )
        data = f.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise ManifestError(
            f"grew beyond {limits.max_file_bytes} bytes while it was read", errcode.MANIFEST_TOO_LARGE
        )
    return data


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def parse_manifest(data: bytes, display: str, limits: SourceLimits = DEFAULT_SOURCE_LIMITS) -> ParsedFile:
    """Every accepted object of one file's bytes, and an error for each rejected document. Pure."""
    try:
        docs = list(yaml.load_all(data, Loader=_Loader))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:
        return ParsedFile(errors=[_whole_error(display, f"invalid YAML: {e}")], whole=True)
    out = ParsedFile()
    count = 0
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        items: list[Any] = [doc]
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            raw_items = doc.get("items") or []
            if not isinstance(raw_items, list):
                out.errors.append(DocumentError(display, i, "List", "", "items", "must be a list"))
                continue
            items = raw_items
        for item in items:
            count += 1
            if count > limits.max_documents:
                return ParsedFile(
                    errors=[
                        _whole_error(
                            display,
                            f"holds more than {limits.max_documents} objects; the file is not used",
                            errcode.MANIFEST_TOO_LARGE,
                        )
                    ],
                    whole=True,
                )
            try:
                obj = decode(item)
            except ValidationError as e:
                ref = document_ref(item)
                name = f"{e.namespace}/{e.name}" if e.namespace and e.name else e.name
                out.errors.append(DocumentError(display, i, e.kind, name, e.field, e.reason, ref))
                continue
            if obj is not None:
                out.objects.append((i, obj))
    return out


def _whole_error(display: str, reason: str, code: str = errcode.MANIFEST_REJECTED) -> DocumentError:
    return DocumentError(display, 0, "", "", "", reason, None, code)


@dataclass(slots=True)
class _Definition:
    obj: MeshObject
    index: int  # the document that defined it


class ManifestSource:
    """Feeds a Store from a directory. One owner of that directory's I/O."""

    def __init__(
        self,
        root: Path,
        store: Store,
        *,
        on_error: Callable[[DocumentError], None] | None = None,
        uuids: ProxyUuids | None = None,
        limits: SourceLimits = DEFAULT_SOURCE_LIMITS,
    ) -> None:
        self.root = root.resolve()
        self.store = store
        self.on_error = on_error or _log_error
        self.uuids = uuids if uuids is not None else ProxyUuids()
        self.limits = limits
        self._owned: dict[Path, dict[ObjectKey, _Definition]] = {}
        self._live: dict[ObjectKey, Path] = {}  # the file whose definition of a key is in the store
        self.errors: dict[Path, list[DocumentError]] = {}
        self.rejected = 0  # documents and files rejected, over all loads
        self._loaded = False
        # each file's stamp, taken before it was last read: a file whose stamp moved is read again
        self._stamps: dict[Path, Stamp | None] = {}
        self._excess: list[Path] = []  # the files beyond max_files, when last listed
        self.watching = asyncio.Event()  # set once changes are being watched

    # ---- which files

    def _wanted(self, p: Path) -> bool:
        """A manifest file name: a YAML/JSON suffix, and no hidden part below the root (e.g. `..data/`)."""
        rel = p.relative_to(self.root) if p.is_relative_to(self.root) else p
        return p.suffix in YAML_SUFFIXES and not any(part.startswith(".") for part in rel.parts)

    def _walk(self) -> Iterator[Path]:
        for top, dirs, files in os.walk(self.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                p = Path(top) / name
                if self._wanted(p):
                    yield p

    def _files(self) -> tuple[list[Path], list[Path]]:
        """The manifest files to read, and those beyond `max_files` (not read; reported)."""
        found = sorted(self._walk())
        return found[: self.limits.max_files], found[self.limits.max_files :]

    # ---- loading

    def _display(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def _parse(self, path: Path) -> ParsedFile | None:
        """None when the file is gone (deleted); may run in a worker thread."""
        self._stamps[path] = _stamp(path)
        if not os.path.lexists(path):
            return None
        display = self._display(path)
        try:
            data = read_manifest(path, self.root, self.limits)
        except ManifestError as e:
            return ParsedFile(errors=[_whole_error(display, str(e), e.code)], whole=True)
        return parse_manifest(data, display, self.limits)

    def load(self) -> None:
        """(Re)read every file; apply what changed."""
        files, excess = self._files()
        self._apply_all({p: self._parse(p) for p in files}, excess)

    async def reload(self) -> None:
        """load(), with the files read and parsed in a worker thread."""
        await self._reload_listed(*await asyncio.to_thread(self._files))

    async def _reload_listed(self, files: list[Path], excess: list[Path]) -> None:
        parsed = await asyncio.to_thread(lambda: {p: self._parse(p) for p in files})
        self._apply_all(parsed, excess)

    def load_file(self, path: Path) -> None:
        self._apply(path, self._parse(path))
        self.uuids.save()

    async def reload_file(self, path: Path) -> None:
        parsed = await asyncio.to_thread(self._parse, path)
        self._apply(path, parsed)
        self.uuids.save()

    def _apply_all(self, parsed: Mapping[Path, ParsedFile | None], excess: list[Path]) -> None:
        self._excess = excess
        for path in self._stamps.keys() - parsed.keys():
            del self._stamps[path]
        for gone in sorted(set(self._owned) - set(parsed) - set(excess)):
            self._apply(gone, None)
        for path in excess:
            reason = f"more than {self.limits.max_files} manifest files; this one is not read"
            self._apply(path, ParsedFile(errors=[_whole_error(self._display(path), reason)], whole=True))
        for path, result in sorted(parsed.items()):
            self._apply(path, result)
        if not self._loaded:
            # Pods that went away while the control plane was down get no uuid back.
            self._loaded = True
            self.uuids.retain({(k.namespace, k.name) for k in self._live if k.kind == "Pod"})
        self.uuids.save()

    def _apply(self, path: Path, parsed: ParsedFile | None) -> None:
        """Bring the store to this file's new content (None: the file is gone)."""
        old = self._owned.get(path, {})
        if parsed is None:
            self._stamps.pop(path, None)
            self._owned.pop(path, None)
            self.errors.pop(path, None)
            self._drop(path, set(old))
            return
        errors = list(parsed.errors)
        new: dict[ObjectKey, _Definition] = {}
        for index, obj in parsed.objects:
            key = key_of(obj)
            first = new.get(key)
            if first is not None:
                errors.append(self._conflict(path, index, key, self._display(path), first.index))
                continue
            new[key] = _Definition(obj, index)
        # Keep the last accepted version of objects whose document was rejected this time.
        for key, d in old.items():
            if key not in new and _kept(key, d.index, parsed.whole, errors):
                new[key] = d
        for e in errors:
            self.rejected += 1
            self.on_error(e)
        self._owned[path] = new
        self.errors[path] = errors
        self._drop(path, old.keys() - new.keys())
        for key, d in new.items():
            live = self._live.get(key)
            if live is not None and live != path and key in self._owned.get(live, {}):
                if key not in old:  # a new clash: the definition already in the store stays
                    clash = self._conflict(
                        path, d.index, key, self._display(live), self._owned[live][key].index
                    )
                    self.rejected += 1
                    self.on_error(clash)
                    self.errors[path].append(clash)
                continue
            self._live[key] = path
            self.store.apply(self._admit(d.obj))

    def _conflict(
        self, path: Path, index: int, key: ObjectKey, other: str, other_index: int
    ) -> DocumentError:
        return DocumentError(
            self._display(path),
            index,
            key.kind,
            f"{key.namespace}/{key.name}" if key.namespace else key.name,
            "metadata.name",
            f"is already defined by {other} (document {other_index}); this definition is ignored "
            "while that one exists",
            (key.namespace, key.name),
            errcode.MANIFEST_CONFLICT,
        )

    def _admit(self, obj: MeshObject) -> MeshObject:
        if isinstance(obj, Pod) and not obj.proxy_uuid:
            return with_proxy_uuid(obj, self.uuids.assign(obj.meta.namespace, obj.meta.name))
        return obj

    def _drop(self, path: Path, keys: set[ObjectKey]) -> None:
        """Keys `path` no longer defines: if its definition was live, fall back to another file's, or
        delete the object."""
        for key in sorted(keys):
            if self._live.get(key) != path:
                continue
            other = next((p for p in sorted(self._owned) if key in self._owned[p]), None)
            if other is None:
                del self._live[key]
                self.store.delete(key)
                if key.kind == "Pod":
                    self.uuids.forget(key.namespace, key.name)
            else:
                log.warning(
                    "%s is now defined by %s (%s no longer defines it)",
                    key,
                    self._display(other),
                    self._display(path),
                    extra={"err_code": errcode.MANIFEST_CONFLICT},
                )
                self._live[key] = other
                self.store.apply(self._admit(self._owned[other][key].obj))

    async def watch(
        self, *, debounce_ms: int = 50, stop: asyncio.Event | None = None, resync_s: float = RESYNC_S
    ) -> None:
        """Apply changes as files are written, until cancelled (or `stop` is set). `watching` is set
        once the watch is in place and what changed before it has been applied."""
        from watchfiles import awatch

        loop = asyncio.get_running_loop()
        due = 0.0  # when to compare stamps next
        async for changes in awatch(
            self.root,
            debounce=debounce_ms,
            step=20,
            stop_event=stop,
            recursive=True,
            force_polling=False,
            rust_timeout=WAKE_MS,  # a quiet watch still wakes this often: the first wake says it is set up
            yield_on_timeout=True,
        ):
            paths = sorted({Path(p) for _, p in changes})
            if any(p.is_dir() or (not p.exists() and not self._wanted(p)) for p in paths):
                await self.reload()  # a directory appeared or disappeared
            else:
                for p in paths:
                    if self._wanted(p):
                        await self.reload_file(p)
            # the first pass (the watcher exists by now), then every resync_s: catch what no event told.
            # A large tree is compared less often, so that comparing takes at most 2% of the time.
            if loop.time() >= due:
                began = loop.time()
                await self.resync()
                due = loop.time() + max(resync_s, (loop.time() - began) * RESYNC_SHARE)
                self.watching.set()

    async def resync(self) -> None:
        """Read again the files whose stamps moved since they were read, and those that appeared or
        went away; all of them when the files beyond `max_files` changed."""
        files, excess = await asyncio.to_thread(self._files)
        if excess != self._excess:
            await self._reload_listed(files, excess)
            return
        stamps = await asyncio.to_thread(lambda: {p: _stamp(p) for p in files})
        for p in sorted(stamps.keys() | self._stamps.keys()):
            if p not in stamps or p not in self._stamps or stamps[p] != self._stamps[p]:
                await self.reload_file(p)


def _stamp(path: Path) -> Stamp | None:
    """What tells that a file changed without reading it; None when it cannot be stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _kept(key: ObjectKey, index: int, whole: bool, errors: list[DocumentError]) -> bool:
    """Whether an object the file no longer defines stays, because a rejected document may be its new
    version: the file could not be used at all, a rejected document names the object's namespace and
    name (whatever its kind: it may be the kind that is misspelt), or one that names nothing stands
    where the object's document stood."""
    if whole:
        return True
    for e in errors:
        if e.code == errcode.MANIFEST_CONFLICT:
            continue
        if e.ref is not None:
            if e.ref == (key.namespace, key.name) or (not key.namespace and e.ref[1] == key.name):
                return True
        elif e.index == index:
            return True
    return False


def _log_error(e: DocumentError) -> None:
    log.error("rejected: %s", e, extra={"err_code": e.code})
