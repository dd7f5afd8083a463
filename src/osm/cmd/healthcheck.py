"""osm-healthcheck: the TCP-probe shim the injector adds to a meshed pod that has TCP probes."""

from __future__ import annotations

import argparse
import asyncio
import logging

from osm import logging_setup
from osm.cmd.process import run, until_signalled
from osm.health.tcpcheck import TcpHealthcheck
from osm.models.k8s import HEALTHCHECK_PORT as PORT

log = logging.getLogger("osm.healthcheck")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="osm-healthcheck",
        description="Answers the kubelet's rewritten TCP probes: GET /osm-healthcheck with header "
        "Original-Tcp-Port dials that port on localhost.",
    )
    p.add_argument("--http-address", default=f"0.0.0.0:{PORT}")
    p.add_argument("--verbosity", "-v", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


async def serve(address: str) -> None:
    server = TcpHealthcheck(address)
    await server.start()
    log.info("serving TCP health checks on %s:%d", server.host, server.port)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging_setup.setup(args.verbosity)
    return run(until_signalled(serve(args.http_address)), log)


if __name__ == "__main__":
    raise SystemExit(main())
