"""Bounded waits: the one way tests (and test kits) wait for something to become true.

`poll` and `eventually` return True as soon as the check holds and False when the time is up;
`wait_until` and `wait_for` raise TimeoutError naming what was awaited instead. A check that raises
one of `tolerate` counts as not yet true (e.g. a status file that is still being written).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

Tolerated = tuple[type[BaseException], ...]


def poll(
    check: Callable[[], object], timeout: float = 5.0, interval: float = 0.02, tolerate: Tolerated = ()
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except tolerate:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_until(
    check: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.05,
    tolerate: Tolerated = (),
    detail: Callable[[], str] | None = None,
) -> float:
    """Wait until check() holds; the seconds it took. TimeoutError names `what` (and `detail()`)."""
    start = time.monotonic()
    if poll(check, timeout, interval, tolerate):
        return time.monotonic() - start
    raise TimeoutError(f"{what}: not within {timeout} s" + (f"; {detail()}" if detail else ""))


async def eventually(
    check: Callable[[], object], within: float = 5.0, interval: float = 0.01, tolerate: Tolerated = ()
) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            if check():
                return True
        except tolerate:
            pass
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)


async def wait_for(
    check: Callable[[], object], within: float, what: str, interval: float = 0.01, tolerate: Tolerated = ()
) -> None:
    if not await eventually(check, within, interval, tolerate):
        raise TimeoutError(f"{what}: not within {within} s")
