"""The local mesh as the CLI sees it: the runtime's status (pods, their network namespaces) and its
objects as the control plane sees them (the manifests plus pod IPs, readiness, proxy UUIDs, ClusterIPs
and the pods of Deployments and StatefulSets), from the state directory.

The objects are written by the runtime (root, into its own state directory, which also holds the
mesh's CA key) as a pickle, read back only from a regular file of that directory owned by root.
"""

from __future__ import annotations

import os
import pickle
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osm.local import netops
from osm.local.up import read_status
from osm.state.decode import MeshObject
from osm.state.snapshot import MeshState

OBJECTS_FILE = "objects.pickle"
MAX_OBJECTS_BYTES = 256 * 1024 * 1024


class ViewError(Exception):
    pass


def write_objects(state_dir: Path, objects: Iterable[MeshObject]) -> None:
    path = state_dir / OBJECTS_FILE
    tmp = state_dir / f".{OBJECTS_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(list(objects), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def read_objects(state_dir: Path) -> list[MeshObject]:
    path = state_dir / OBJECTS_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise ViewError(f"cannot read the local mesh's objects ({path}): {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise ViewError(f"{path} is not a regular file written by the local runtime (root, 0600)")
        if st.st_size > MAX_OBJECTS_BYTES:
            raise ViewError(f"{path} is over {MAX_OBJECTS_BYTES} bytes")
        objects = pickle.load(f)
    if not isinstance(objects, list):
        raise ViewError(f"{path} does not hold the mesh's objects")
    return objects


@dataclass
class LocalView:
    state_dir: Path
    status: dict[str, Any]

    @staticmethod
    def open(state_dir: Path) -> LocalView:
        status = read_status(state_dir)
        if status is None:
            raise ViewError(f"no local mesh is running on {state_dir} (`osm local up` first)")
        return LocalView(state_dir, status)

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        for p in self.status.get("pods", []):
            if p["namespace"] == namespace and p["name"] == name and p["phase"] != "stopping":
                return dict(p)
        raise ViewError(f"no pod {namespace}/{name} in the local mesh")

    def state(self) -> MeshState:
        return MeshState.build(read_objects(self.state_dir))

    def admin(self, namespace: str, name: str, path: str) -> tuple[int, bytes]:
        """GET `path` of the pod's sidecar's admin interface (127.0.0.1:15000 in its namespace)."""
        p = self.pod(namespace, name)
        if not p["meshed"]:
            raise ViewError(f"pod {namespace}/{name} has no sidecar")
        return netops.http_fetch_in_netns(p["netns"], 15000, path)
