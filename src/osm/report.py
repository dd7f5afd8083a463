"""The `osm support bug-report` archive, in either place the mesh runs: a gzipped tar whose every file
is checked for private keys before it goes in, and the mesh's policies as one JSON document."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from osm.debugger import plain, redact_private_keys
from osm.state.snapshot import MeshState

MAX_LOG_BYTES = 1024 * 1024  # of each log, the last this many bytes
ROOT = "osm-bug-report"
# what the report holds of each sidecar: its file, and the admin interface's path
SIDECAR_FILES = (("config_dump.json", "/config_dump"), ("stats.txt", "/stats"), ("clusters.txt", "/clusters"))


def safe(data: bytes) -> bytes:
    return b"(left out: it holds a private key)\n" if b"PRIVATE KEY-----" in data else data


class Archive:
    """Files added one by one under osm-bug-report/; `names` lists them."""

    def __init__(self, out: Path) -> None:
        self._tar = tarfile.open(out, "w:gz")  # noqa: SIM115 (closed by __exit__)
        self.names: list[str] = []

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"{ROOT}/{name}")
        data = safe(data)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        self._tar.addfile(info, io.BytesIO(data))
        self.names.append(name)

    def add_json(self, name: str, value: Any) -> None:
        self.add(name, json.dumps(value, indent=1, default=str).encode())

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._tar.close()


def policies(state: MeshState) -> Any:
    """The MeshConfig and every policy the mesh acts on, JSON-able, private keys redacted."""
    doc: dict[str, Any] = {
        "MeshConfig": {"spec": state.mesh_config, "problem": state.mesh_config_problem},
        "TrafficTarget": state.traffic_targets,
        "HTTPRouteGroup": state.http_route_groups,
        "TCPRoute": state.tcp_routes,
        "TrafficSplit": state.traffic_splits,
        "Retry": state.retries,
        "UpstreamTrafficSetting": state.upstream_traffic_settings,
        "IngressBackend": state.ingress_backends,
        "Egress": state.egresses,
    }
    return redact_private_keys(plain(doc))
