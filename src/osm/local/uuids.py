"""Proxy UUIDs of the local mesh's pods: random per pod creation, as the injector assigns them.

A pod keeps its UUID while it exists; a pod of the same name created later gets a new one, so a
sidecar certificate issued for the earlier pod (its CN carries the UUID) is refused. With a file, the
assignments survive a restart of the control plane (its sidecars keep working), written atomically.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import uuid
from pathlib import Path

from osm import errcode

log = logging.getLogger(__name__)

FILE_NAME = "proxy-uuids.json"
MAX_FILE_BYTES = 16 * 1024 * 1024


class ProxyUuids:
    """namespace/name -> UUID. One owner (the source that creates the pods)."""

    def __init__(self, path: Path | None = None, *, readonly: bool = False) -> None:
        """`readonly`: only read the file (another process owns it); pods it does not know get none."""
        self.path = path
        self.readonly = readonly
        self._uuids: dict[str, str] = self._read() if path is not None else {}
        self._dirty = False

    @staticmethod
    def in_dir(state_dir: Path) -> ProxyUuids:
        return ProxyUuids(state_dir / FILE_NAME)

    def _read(self) -> dict[str, str]:
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as e:
            log.error("cannot read %s: %s; pods get new proxy UUIDs", self.path, e)
            return {}
        try:
            if len(raw) > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            data = json.loads(raw)
            if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and _is_uuid(v) for k, v in data.items()
            ):
                raise ValueError("not a map of pod to UUID")
        except ValueError as e:
            log.error(
                "%s is unusable (%s); pods get new proxy UUIDs and their sidecars need new bootstraps",
                self.path,
                e,
                extra={"err_code": errcode.STATE_FILE_CORRUPT},
            )
            return {}
        return dict(data)

    def get(self, namespace: str, name: str) -> str | None:
        return self._uuids.get(f"{namespace}/{name}")

    def assign(self, namespace: str, name: str) -> str:
        """The pod's UUID: the one it has, or a new random one ("" when read-only)."""
        key = f"{namespace}/{name}"
        found = self._uuids.get(key)
        if found is None and self.readonly:
            return ""
        if found is None:
            found = self._uuids[key] = str(uuid.uuid4())
            self._dirty = True
        return found

    def forget(self, namespace: str, name: str) -> None:
        """The pod is gone: a pod of that name created later is another pod."""
        if not self.readonly and self._uuids.pop(f"{namespace}/{name}", None) is not None:
            self._dirty = True

    def retain(self, pods: set[tuple[str, str]]) -> None:
        """Forget every pod but these (those that went away while nobody watched)."""
        keep = {f"{ns}/{name}" for ns, name in pods}
        gone = [k for k in self._uuids if k not in keep and not self.readonly]
        for k in gone:
            del self._uuids[k]
        self._dirty |= bool(gone)

    def save(self) -> None:
        if not self._dirty or self.path is None or self.readonly:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE_NAME}.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self._uuids, f, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._dirty = False


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
