"""Drive a local mesh (`osm local up`) from tests: wait for pods, run commands in them, read app stats."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from osm.local import netops, up
from osm.local.netplan import netns_prefix, node_netns, state_id
from osm.local.workloads import secret_dir
from osm.testing.envoy import parse_stats
from osm.testing.wait import wait_until


class LocalMesh:
    def __init__(
        self, manifests: Path, state_dir: Path | None = None, *, xds: str = "sotw", prometheus: bool = False
    ) -> None:
        self.manifests = manifests
        # A directory uid 1500 (Envoy) can traverse: pytest's tmp_path is private to root.
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="osm-local-"))
        os.chmod(self.state_dir, 0o755)
        self.xds = xds
        self.prometheus = prometheus
        self.sid = state_id(str(self.state_dir.resolve()))

    @property
    def node(self) -> str:
        return node_netns(self.sid)

    def up(self) -> LocalMesh:
        up.up(self.manifests, self.state_dir, detach=True, xds=self.xds, prometheus=self.prometheus)
        return self

    def down(self) -> list[str]:
        return up.down(self.state_dir)

    def leftovers(self) -> list[str]:
        """Namespaces, /etc/netns entries and processes of this mesh still present."""
        prefix = netns_prefix(self.sid)
        found = [f"netns {n}" for n in netops.list_netns() if n.startswith(prefix)]
        if netops.NETNS_ETC.is_dir():
            found += [f"/etc/netns/{p.name}" for p in netops.NETNS_ETC.iterdir() if p.name.startswith(prefix)]
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout
        found += [f"process {line.strip()}" for line in ps.splitlines() if str(self.state_dir) in line]
        return found

    def cleanup(self) -> None:
        self.down()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        return up.read_status(self.state_dir) or {"pods": []}

    def pods(self, namespace: str, prefix: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.status()["pods"]
            if p["namespace"] == namespace and p["name"].startswith(prefix) and p["phase"] != "stopping"
        ]

    def pod(self, namespace: str, prefix: str) -> dict[str, Any]:
        found = self.pods(namespace, prefix)
        if not found:
            raise LookupError(f"no pod {namespace}/{prefix}*")
        return found[0]

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll until check() holds (a status or stats file being rewritten counts as not yet); returns
        the seconds it took. TimeoutError carries the node's log tail."""
        return wait_until(
            check,
            timeout,
            what,
            interval=0.1,
            tolerate=(LookupError, KeyError, OSError, ValueError),
            detail=lambda: f"node log: {self.node_log_tail()}",
        )

    def wait_repeated(
        self, check: Callable[[], bool], what: str, times: int = 5, timeout: float = 60
    ) -> float:
        """Poll until check() holds `times` times in a row (upstream e2e's WaitForRepeatedSuccess)."""
        run = [0]

        def in_a_row() -> bool:
            run[0] = run[0] + 1 if check() else 0
            return run[0] >= times

        return self.wait(in_a_row, timeout, f"{times} in a row: {what}")

    def wait_steady(self, check: Callable[[], bool], what: str, times: int = 10, timeout: float = 90) -> None:
        """Poll until check() first holds, then require it `times` times in a row; a failure after the first
        success fails at once (upstream e2e's WaitForSuccessAfterInitialFailure)."""
        self.wait(check, timeout, what)
        for i in range(1, times):
            if not check():
                raise AssertionError(f"{what}: failed after {i} successes in a row")

    def node_log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.state_dir / "node.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, pods: list[tuple[str, str]], timeout: float = 90) -> None:
        def unready() -> list[str]:
            return [
                f"{ns}/{prefix}*" for ns, prefix in pods if not any(p["ready"] for p in self.pods(ns, prefix))
            ]

        try:
            self.wait(lambda: not unready(), timeout, f"pods {pods} ready")
        except TimeoutError as e:
            events = "; ".join(self.status().get("events", [])[-15:])
            raise TimeoutError(f"{e}; not ready: {', '.join(unready())}; events: {events}") from None

    def exec(
        self, namespace: str, prefix: str, *cmd: str, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        netns = self.pod(namespace, prefix)["netns"]
        return subprocess.run(
            ["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, timeout=timeout, check=False
        )

    def curl(self, namespace: str, prefix: str, url: str, *args: str) -> int:
        """HTTP status from inside a pod; 0 when the request failed (refused, reset, timed out)."""
        return self.request(namespace, prefix, url, *args)[1]

    def request(self, namespace: str, prefix: str, url: str, *args: str) -> tuple[int, int]:
        """(curl's exit code, the HTTP status) of a request from inside a pod, as upstream's e2e checks
        both (exit 7: could not connect; 56: the connection was reset)."""
        cp = self.exec(
            namespace,
            prefix,
            "curl",
            "-s",
            "-k",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            *args,
            url,
        )
        return cp.returncode, int(cp.stdout) if cp.stdout.strip().isdigit() else 0

    def secret_dir(self, namespace: str, name: str) -> Path:
        """The files of a Secret the mesh issued (local mode keeps them under the state dir)."""
        return secret_dir(self.state_dir, namespace, name)

    def stats(self, namespace: str, prefix: str) -> dict[str, Any]:
        return self.stats_of(self.pod(namespace, prefix))

    @staticmethod
    def stats_of(pod: dict[str, Any]) -> dict[str, Any]:
        """The app's counters (its stats.json); empty until the app has written them."""
        try:
            data: dict[str, Any] = json.loads((Path(pod["dir"]) / "stats.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def controller(self) -> dict[str, Any]:
        """The control plane process as the runtime reports it (pid, running, restarts, log)."""
        ctrl: dict[str, Any] = self.status().get("controller") or {}
        return ctrl

    def container(self, namespace: str, prefix: str, name: str) -> dict[str, Any]:
        for c in self.pod(namespace, prefix)["containers"]:
            if c["name"] == name:
                found: dict[str, Any] = c
                return found
        raise LookupError(f"no container {name} in {namespace}/{prefix}*")

    def envoy_stats(self, namespace: str, prefix: str, regex: str) -> dict[str, int]:
        """The pod's sidecar's integer stats whose names match `regex` (Envoy's `/stats?filter=`)."""
        cp = self.exec(
            namespace, prefix, "curl", "-s", "--max-time", "5", f"http://127.0.0.1:15000/stats?filter={regex}"
        )
        return parse_stats(cp.stdout)

    def envoy_stat(self, namespace: str, prefix: str, name: str) -> int:
        return self.envoy_stats(namespace, prefix, f"^{name}$").get(name, 0)

    def edit(self, file: str, old: str, new: str) -> None:
        path = self.manifests / file
        text = path.read_text()
        if old not in text:
            raise ValueError(f"{old!r} not in {path}")
        path.write_text(text.replace(old, new))
