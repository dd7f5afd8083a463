"""`osm support bug-report` for the local mesh: one archive of what a person debugging it needs.

The archive holds the runtime's status, the control plane's and the runtime's logs, every container's
log, every sidecar's config dump (Envoy redacts private keys in it) and stats, the MeshConfig and the
policies in effect. Nothing else of the state directory goes in (it holds the mesh CA's key), every
log contributes at most its last MAX_LOG_BYTES, and every file is checked for private keys before it
is added.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from osm.debugger import plain, redact_private_keys
from osm.local.view import LocalView

MAX_LOG_BYTES = 1024 * 1024


def _tail(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - MAX_LOG_BYTES))
            return f.read()
    except OSError as e:
        return f"(unreadable: {e.strerror})\n".encode()


def _safe(data: bytes) -> bytes:
    return b"(left out: it holds a private key)\n" if b"PRIVATE KEY-----" in data else data


def collect(
    view: LocalView, out: Path, *, admin: Callable[[str, str, str], tuple[int, bytes]] | None = None
) -> list[str]:
    """Write the archive to `out`; the names it holds."""
    fetch = admin or view.admin
    names: list[str] = []
    with tarfile.open(out, "w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"osm-bug-report/{name}")
            data = _safe(data)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
            names.append(name)

        add("status.json", json.dumps(view.status, indent=1).encode())
        state_dir = view.state_dir
        add("logs/node.log", _tail(state_dir / "node.log"))
        add("logs/controller.log", _tail(state_dir / "controller.log"))
        try:
            state = view.state()
            policies: dict[str, Any] = {
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
            add(
                "policies.json",
                json.dumps(redact_private_keys(plain(policies)), indent=1, default=str).encode(),
            )
        except Exception as e:  # a report is still worth having without them
            add("policies.json", json.dumps({"error": str(e)}).encode())
        for pod in view.status.get("pods", []):
            where = f"pods/{pod['namespace']}/{pod['name']}"
            for c in pod.get("containers", []):
                add(f"{where}/{c['name']}.log", _tail(Path(c["log"])))
            if not pod.get("meshed"):
                continue
            for name, path in (
                ("config_dump.json", "/config_dump"),
                ("stats.txt", "/stats"),
                ("clusters.txt", "/clusters"),
            ):
                try:
                    status, body = fetch(pod["namespace"], pod["name"], path)
                    add(f"{where}/{name}", body if status == 200 else f"HTTP {status}\n".encode())
                except Exception as e:  # a sidecar that does not answer: said in the report
                    add(f"{where}/{name}", f"(unavailable: {e})\n".encode())
    return names
