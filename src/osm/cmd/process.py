"""What every entry point does the same way: run until SIGINT/SIGTERM, report startup errors in one line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from osm.certificate.types import CertificateError
from osm.k8s.client import ConfigError, KubeClient


class StartupError(Exception):
    """A process cannot start (its configuration is unusable); the message says why."""


# What stops a process before it serves, said in one line (exit status 1) rather than a traceback
STARTUP_ERRORS: tuple[type[Exception], ...] = (ConfigError, CertificateError, StartupError)


async def until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` until it returns or SIGINT/SIGTERM cancels it."""
    task = asyncio.create_task(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def with_cluster(kubeconfig: str | None, serve: Callable[[KubeClient], Awaitable[None]]) -> None:
    """Connect to the API server (kubeconfig, else in-cluster) and run `serve` until signalled."""
    async with await KubeClient.connect(kubeconfig) as kube:

        async def main() -> None:
            await serve(kube)

        await until_signalled(main())


def run(main: Coroutine[Any, Any, None], log: logging.Logger) -> int:
    """asyncio.run(main); a startup error is logged in one line and exits 1."""
    try:
        asyncio.run(main)
    except STARTUP_ERRORS as e:
        log.error("%s", e)
        return 1
    return 0
