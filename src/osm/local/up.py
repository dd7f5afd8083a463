"""`osm local up/down/status/logs/exec`: the host side of the local mesh.

`up` checks the machine, removes leftovers of an earlier run, creates the node namespace and starts the
node process (control plane + runtime) inside it, in the foreground or detached. Everything it makes is
named with a prefix derived from the state directory, so `down` (or the next `up`) can remove it all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from osm.local import hostports, netops, preflight
from osm.local.netplan import netns_prefix, node_netns, state_id

DEFAULT_STATE_DIR = Path("/var/lib/osm-local")
READY_TIMEOUT = 120.0


class LocalError(Exception):
    pass


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((state_dir / "status.json").read_text())
        return data
    except (OSError, ValueError):
        return None


def node_pid(state_dir: Path) -> int | None:
    try:
        pid = int((state_dir / "node.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return None if _zombie(pid) else pid


def _zombie(pid: int) -> bool:
    """A process that exited but was not reaped by its parent (e.g. a node killed with -9)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def cleanup(state_dir: Path) -> list[str]:
    """Remove the namespaces (with their links, rules and processes) of this state dir's mesh."""
    removed = netops.cleanup(netns_prefix(state_id(str(state_dir.resolve()))))
    for name in ("status.json", "node.pid"):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
    return removed


def up(
    manifests: Path,
    state_dir: Path,
    *,
    detach: bool,
    xds: str = "sotw",
    log_file: Path | None = None,
    prometheus: bool = False,
) -> int:
    if not manifests.is_dir():
        raise LocalError(f"{manifests} is not a directory")
    preflight.check(state_dir)
    if prometheus and shutil.which("prometheus") is None:
        raise LocalError("--prometheus: no `prometheus` on PATH (Debian: apt-get install prometheus)")
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o755)
    if node_pid(state_dir) is not None:
        raise LocalError(f"a local mesh is already running on {state_dir}; stop it with `osm local down`")
    cleanup(state_dir)
    sid = state_id(str(state_dir.resolve()))
    node = node_netns(sid)
    netops.create_node(node)
    # the endpoints' listening sockets, made here in the host's namespace (see hostports)
    listening = hostports.listen(["metrics", "debug", *(["prometheus"] if prometheus else [])])
    # nsenter switches only the network namespace: the pod namespaces the node process creates must be
    # mounted under /run/netns in this mount namespace too, which `ip netns exec` (a private one) prevents.
    argv = [
        "nsenter",
        f"--net=/run/netns/{node}",
        "--",
        sys.executable,
        "-m",
        "osm.cmd.node",
        "--local",
        str(manifests.resolve()),
        "--state-dir",
        str(state_dir.resolve()),
        "--xds",
        xds,
        *(["--prometheus"] if prometheus else []),
        "--host-listen",
        hostports.encode(listening),
    ]
    fds = tuple(s.fileno() for s in listening.values())
    if detach:
        out = open(log_file or state_dir / "node.log", "ab")  # noqa: SIM115 (handed to the child)
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=fds,
        )
        out.close()
        for sock in listening.values():
            sock.close()
        try:
            wait_ready(state_dir, proc)
        except LocalError:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            cleanup(state_dir)
            raise
        return 0
    proc = subprocess.Popen(argv, pass_fds=fds)
    for sock in listening.values():
        sock.close()
    previous = {
        s: signal.signal(s, lambda n, f: proc.send_signal(signal.SIGTERM))
        for s in (signal.SIGTERM, signal.SIGHUP)
    }
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C reaches the child directly
    try:
        return proc.wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        cleanup(state_dir)


def wait_ready(
    state_dir: Path, proc: subprocess.Popen[bytes] | None = None, timeout: float = READY_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(state_dir)
        if status and status.get("ready"):
            return
        if proc is not None and proc.poll() is not None:
            raise LocalError(f"the local mesh exited with {proc.returncode}; see {state_dir / 'node.log'}")
        time.sleep(0.1)
    raise LocalError(f"the local mesh was not ready within {timeout:.0f} s; see {state_dir / 'node.log'}")


def down(state_dir: Path, timeout: float = 60.0) -> list[str]:
    pid = node_pid(state_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while node_pid(state_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if node_pid(state_dir) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return cleanup(state_dir)


def find_pod(state_dir: Path, namespace: str, name: str) -> dict[str, Any]:
    status = read_status(state_dir)
    if status is None:
        raise LocalError(f"no local mesh is running on {state_dir}")
    for p in status["pods"]:
        if p["namespace"] == namespace and p["name"] == name:
            pod: dict[str, Any] = p
            return pod
    raise LocalError(f"no pod {namespace}/{name} in the local mesh")


def exec_argv(state_dir: Path, namespace: str, name: str, command: list[str]) -> list[str]:
    if not command:
        raise LocalError("no command given: osm local exec POD -n NS -- CMD...")
    return ["ip", "netns", "exec", find_pod(state_dir, namespace, name)["netns"], *command]


def log_path(state_dir: Path, namespace: str, name: str, container: str | None) -> Path:
    pod = find_pod(state_dir, namespace, name)
    containers = {c["name"]: c for c in pod["containers"]}
    if container is None:
        apps = [c for c in containers if c != "envoy"]
        if len(apps) != 1:
            raise LocalError(
                f"pod {namespace}/{name} has containers {', '.join(sorted(containers))}; choose one with -c"
            )
        container = apps[0]
    if container not in containers:
        raise LocalError(
            f"pod {namespace}/{name} has no container {container!r} (it has {', '.join(sorted(containers))})"
        )
    return Path(containers[container]["log"])
