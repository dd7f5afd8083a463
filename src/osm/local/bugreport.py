"""`osm support bug-report` for the local mesh: one archive of what a person debugging it needs.

The archive holds the runtime's status, the control plane's and the runtime's logs, every container's
log, every sidecar's config dump (Envoy redacts private keys in it) and stats, the MeshConfig and the
policies in effect. Nothing else of the state directory goes in (it holds the mesh CA's key), every
log contributes at most its last MAX_LOG_BYTES, and every file is checked for private keys before it
is added.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from osm.local.view import LocalView
from osm.report import MAX_LOG_BYTES, SIDECAR_FILES, Archive, policies


def _tail(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - MAX_LOG_BYTES))
            return f.read()
    except OSError as e:
        return f"(unreadable: {e.strerror})\n".encode()


def collect(
    view: LocalView, out: Path, *, admin: Callable[[str, str, str], tuple[int, bytes]] | None = None
) -> list[str]:
    """Write the archive to `out`; the names it holds."""
    fetch = admin or view.admin
    with Archive(out) as archive:
        add = archive.add
        add("status.json", json.dumps(view.status, indent=1).encode())
        state_dir = view.state_dir
        add("logs/node.log", _tail(state_dir / "node.log"))
        add("logs/controller.log", _tail(state_dir / "controller.log"))
        try:
            archive.add_json("policies.json", policies(view.state()))
        except Exception as e:  # a report is still worth having without them
            add("policies.json", json.dumps({"error": str(e)}).encode())
        for pod in view.status.get("pods", []):
            where = f"pods/{pod['namespace']}/{pod['name']}"
            for c in pod.get("containers", []):
                add(f"{where}/{c['name']}.log", _tail(Path(c["log"])))
            if not pod.get("meshed"):
                continue
            for name, path in SIDECAR_FILES:
                try:
                    status, body = fetch(pod["namespace"], pod["name"], path)
                    add(f"{where}/{name}", body if status == 200 else f"HTTP {status}\n".encode())
                except Exception as e:  # a sidecar that does not answer: said in the report
                    add(f"{where}/{name}", f"(unavailable: {e})\n".encode())
    return archive.names
