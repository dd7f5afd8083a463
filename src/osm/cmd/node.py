"""The local mesh's node process: the control plane and the runtime, inside the node namespace.

Started by `osm local up` as `ip netns exec <node> python -m osm.local.node ...`; every socket it
opens (the ADS server, probes) lives in that namespace, next to the pods' bridge.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from osm import logging_setup
from osm.cmd.controller import Controller, Settings
from osm.local.netplan import NODE_IP, node_netns, state_id
from osm.local.runtime import Runtime

log = logging.getLogger("osm.local.node")
ADS_PORT = 15128


async def serve(local_dir: Path, state_dir: Path, xds: str) -> None:
    sid = state_id(str(state_dir))
    controller = Controller(
        Settings(local_dir=local_dir, state_dir=state_dir, ads_address=f"{NODE_IP}:{ADS_PORT}", tune_gc=True)
    )

    def known(uuid: str) -> bool:
        return controller.state is not None and uuid in controller.state.pods_by_uuid

    runtime = Runtime(
        controller.store,
        state_dir=state_dir,
        sid=sid,
        node_ns=node_netns(sid),
        ads_port=ADS_PORT,
        proxy_known=known,
        xds=xds,
    )
    (state_dir / "node.pid").write_text(str(os.getpid()))
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(controller.run())
            await asyncio.wait_for(controller.ready.wait(), 30)
            tg.create_task(runtime.run())
    finally:
        with contextlib.suppress(FileNotFoundError):
            (state_dir / "node.pid").unlink()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="osm-local-node")
    p.add_argument("--local", type=Path, required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--xds", choices=["sotw", "delta"], default="sotw")
    p.add_argument("--verbosity", default="info")
    args = p.parse_args(argv)
    logging_setup.setup(args.verbosity)

    async def run() -> None:
        task = asyncio.create_task(serve(args.local.resolve(), args.state_dir.resolve(), args.xds))
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
