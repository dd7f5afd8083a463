"""`python -m osm.testing.fakekube --port N --kubeconfig-out FILE [--service NS/NAME=HOST:PORT ...]`"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from osm.testing.fakekube import FakeKube


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fakekube", description="An in-memory Kubernetes API server for tests.")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--kubeconfig-out", type=Path, help="write a kubeconfig for the server here")
    p.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NS/NAME[:PORT]=HOST:PORT",
        help="where a Service (or one port of it) is reachable, for webhooks and the service proxy",
    )
    p.add_argument("--bookmark-interval", type=float, default=30.0)
    args = p.parse_args(argv)
    services = {}
    for item in args.service:
        key, sep, where = item.partition("=")
        if not sep or "/" not in key or ":" not in where:
            p.error(f"--service {item!r}: expected NS/NAME[:PORT]=HOST:PORT")
        services[key] = where

    async def run() -> None:
        fk = FakeKube(port=args.port, services=services, bookmark_interval=args.bookmark_interval)
        await fk.serve()
        if args.kubeconfig_out:
            fk.write_kubeconfig(args.kubeconfig_out)
        print(f"fakekube listening on {fk.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await fk.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
