"""The local mesh's node process: the runtime (pods, services, the manifest store) and, beside it, the
control plane as a supervised child process fed from the runtime's store.

Started by `osm local up` inside the node network namespace; every socket it and the controller open
(the ADS server, probes) lives in that namespace, next to the pods' bridge. The controller is its own
process, as it is its own pod in a cluster: when it dies, the sidecars keep their configuration and
the runtime keeps its pods; it is restarted (with backoff) and lists the store again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from osm import logging_setup
from osm.local import hostports, prometheus
from osm.local.feed import FeedServer
from osm.local.netplan import NODE_IP, node_netns, state_id
from osm.local.runtime import Runtime
from osm.local.source import ManifestSource
from osm.local.supervisor import ContainerProcess
from osm.local.uuids import ProxyUuids
from osm.state.store import Store

log = logging.getLogger("osm.local.node")
ADS_PORT = 15128
RESTART_BACKOFF = (1.0, 30.0)  # the controller's restart delay: first, and at most (doubling)
HTTP_PORT, DEBUG_PORT = 9091, 9092  # upstream's osm-controller ports
RESET_AFTER = 60.0  # a controller that ran this long restarts without delay growth
STOP_GRACE = 5.0


class ControllerSupervisor:
    """Runs `osm-controller` on the runtime's feed, restarting it whenever it exits."""

    def __init__(self, feed: FeedServer, state_dir: Path, *, xds_address: str, verbosity: str) -> None:
        self.feed = feed
        self.state_dir = state_dir
        self.xds_address = xds_address
        self.verbosity = verbosity
        self.log_path = state_dir / "controller.log"
        self.pid: int | None = None
        self.restarts = 0
        self.started = 0.0
        self.last_exit: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.on_change: Callable[[], None] = lambda: None  # the status changed (started, exited)

    def status(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "running": self._proc is not None and self._proc.returncode is None,
            "restarts": self.restarts,
            "started": self.started,
            "last_exit": self.last_exit,
            "log": str(self.log_path),
            "ads": self.xds_address,
            "http": f"{self.xds_address.rpartition(':')[0]}:{HTTP_PORT}",
        }

    async def run(self) -> None:
        delay = RESTART_BACKOFF[0]
        try:
            while True:
                ran_from = time.monotonic()
                await self._run_once()
                if time.monotonic() - ran_from > RESET_AFTER:
                    delay = RESTART_BACKOFF[0]
                self.restarts += 1
                log.warning(
                    "the controller exited with %s; restart %d in %.0f s",
                    self.last_exit,
                    self.restarts,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_BACKOFF[1])
        finally:
            await self._stop()

    async def _run_once(self) -> None:
        ours, theirs = socket.socketpair()
        host = self.xds_address.rpartition(":")[0]
        argv = [
            sys.executable,
            "-m",
            "osm.cmd.controller",
            "--feed-fd",
            str(theirs.fileno()),
            "--state-dir",
            str(self.state_dir),
            "--ads-address",
            self.xds_address,
            # the control plane's HTTP ports, on the node's address as on its pod: 9091 (health,
            # /metrics) and 9092 (the debug server, while MeshConfig observability.enableDebugServer)
            "--http-address",
            f"{host}:{HTTP_PORT}",
            "--debug-address",
            f"{host}:{DEBUG_PORT}",
            "--verbosity",
            self.verbosity,
        ]
        with open(self.log_path, "ab") as out:  # noqa: ASYNC230 (append-open of a local file)
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
            )
        theirs.close()
        self.pid, self.started = self._proc.pid, time.time()
        log.info("controller started (pid %d)", self.pid)
        self.on_change()
        serving = asyncio.create_task(self.feed.serve(ours))
        try:
            self.last_exit = await self._proc.wait()
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            ours.close()
            self.on_change()

    async def _stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


# Each endpoint the node serves: its address in the node's namespace and its path.
NODE_ENDPOINTS = {
    "metrics": (HTTP_PORT, "/metrics"),
    "debug": (DEBUG_PORT, "/debug"),
    "prometheus": (prometheus.PORT, ""),
}


async def serve(
    local_dir: Path,
    state_dir: Path,
    xds: str,
    verbosity: str = "info",
    *,
    with_prometheus: bool = False,
    host_sockets: Mapping[str, socket.socket] | None = None,
) -> None:
    """`host_sockets`: listening sockets in the host's namespace (by endpoint name), forwarded to the
    node's endpoints so that they are reachable from the host."""
    host_sockets = host_sockets or {}
    sid = state_id(str(state_dir))
    store = Store()
    source = ManifestSource(local_dir, store, uuids=ProxyUuids.in_dir(state_dir))
    feed = FeedServer(store)
    supervisor = ControllerSupervisor(
        feed, state_dir, xds_address=f"{NODE_IP}:{ADS_PORT}", verbosity=verbosity
    )
    runtime = Runtime(
        store,
        state_dir=state_dir,
        sid=sid,
        node_ns=node_netns(sid),
        ads_port=ADS_PORT,
        proxy_known=feed.knows,
        xds=xds,
        extra_status=lambda: {
            "controller": supervisor.status(),
            "endpoints": endpoints,
            "node_endpoints": node_endpoints,
            "manifests": str(local_dir),
        },
        prometheus_targets=state_dir / "prometheus" / prometheus.TARGETS_FILE if with_prometheus else None,
        watching=source.watching.is_set,
    )
    names = ["metrics", "debug", *(["prometheus"] if with_prometheus else [])]
    # the URLs inside the node's namespace (and the pods'), and the same endpoints from the host
    node_endpoints = {n: f"http://{NODE_IP}:{NODE_ENDPOINTS[n][0]}{NODE_ENDPOINTS[n][1]}" for n in names}
    endpoints = {n: hostports.url(host_sockets[n], NODE_ENDPOINTS[n][1]) for n in names if n in host_sockets}
    scraper: ContainerProcess | None = None
    if with_prometheus:
        scraper = ContainerProcess(
            name="prometheus",
            argv=prometheus.argv(state_dir, NODE_IP),
            env={"HOME": str(state_dir / "prometheus")},
            log_path=state_dir / "prometheus.log",
        )
    supervisor.on_change = runtime.poke
    source.load()  # after the runtime's admission (ClusterIPs) is in place
    (state_dir / "node.pid").write_text(str(os.getpid()))
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(supervisor.run())
            tg.create_task(runtime.run())
            tg.create_task(source.watch())
            tg.create_task(_poke_when_set(source.watching, runtime.poke))
            if scraper is not None:
                tg.create_task(scraper.run())
            for n in endpoints:
                tg.create_task(hostports.serve(host_sockets[n], (NODE_IP, NODE_ENDPOINTS[n][0])))
    finally:
        if scraper is not None:
            await scraper.stop()
        with contextlib.suppress(FileNotFoundError):
            (state_dir / "node.pid").unlink()


async def _poke_when_set(event: asyncio.Event, poke: Callable[[], None]) -> None:
    await event.wait()
    poke()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="osm-local-node")
    p.add_argument("--local", type=Path, required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--xds", choices=["sotw", "delta"], default="sotw")
    p.add_argument("--verbosity", default="info")
    p.add_argument("--prometheus", action="store_true", help="run Prometheus, scraping the mesh")
    p.add_argument(
        "--host-listen", default="", help="NAME=FD,...: inherited host sockets to forward to the endpoints"
    )
    args = p.parse_args(argv)
    logging_setup.setup(args.verbosity)

    async def run() -> None:
        task = asyncio.create_task(
            serve(
                args.local.resolve(),
                args.state_dir.resolve(),
                args.xds,
                args.verbosity,
                with_prometheus=args.prometheus,
                host_sockets=hostports.decode(args.host_listen),
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    log.info("local mesh stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
