from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from osm.messaging.debounce import Debouncer

TIMEOUT = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running(debouncer: Debouncer) -> AsyncIterator[None]:
    task = asyncio.create_task(debouncer.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=TIMEOUT)
        assert task.done()


async def eventually(pred: Callable[[], bool], within: float = TIMEOUT) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not pred():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def test_due_in_restarts_the_quiet_period_but_not_the_max_wait():
    clock = FakeClock()
    d: Debouncer[str] = Debouncer(lambda batch: None, quiet=0.1, max_wait=1.0, clock=clock)
    d.notify("a")
    assert d.due_in() == pytest.approx(0.1)
    clock.now += 0.08
    d.notify("b")
    assert d.due_in() == pytest.approx(0.1)  # quiet period restarted by "b"
    clock.now += 0.87  # 0.95 s after the first change
    d.notify("c")
    assert d.due_in() == pytest.approx(0.05)  # capped by max_wait
    clock.now += 1.0
    assert d.due_in() == 0
    assert d.pending == 3


@pytest.mark.asyncio
async def test_a_burst_within_the_quiet_window_flushes_once_with_the_union():
    batches: list[set[str]] = []
    d: Debouncer[str] = Debouncer(batches.append, quiet=0.05, max_wait=1.0)
    async with running(d):
        for item in ["a", "b", "a", "c"]:
            d.notify(item)
            await asyncio.sleep(0.01)
        assert await eventually(lambda: len(batches) == 1)
        await asyncio.sleep(0.15)  # three quiet windows: no second flush may follow
    assert batches == [{"a", "b", "c"}]
    assert d.flushes == 1
    assert d.pending == 0


@pytest.mark.asyncio
async def test_max_wait_flushes_while_notifies_keep_coming():
    quiet, max_wait = 0.05, 0.2
    loop = asyncio.get_running_loop()
    waited: list[float] = []  # per batch: time from its oldest change to its flush
    items: list[float] = []
    flushed: list[float] = []

    def flush(batch: set[float]) -> None:
        waited.append(loop.time() - min(batch))
        flushed.extend(batch)

    d: Debouncer[float] = Debouncer(flush, quiet=quiet, max_wait=max_wait)
    async with running(d):
        end = loop.time() + 0.5
        while loop.time() < end:
            items.append(loop.time())
            d.notify(items[-1])
            await asyncio.sleep(0.02)
        during_burst = len(waited)
        assert await eventually(lambda: len(flushed) == len(items))
    assert during_burst >= 2
    assert max(waited) < max_wait + 0.15
    assert sorted(flushed) == items  # every change flushed exactly once


@pytest.mark.asyncio
async def test_an_async_flush_is_awaited_before_the_next_batch():
    log: list[str] = []

    async def flush(batch: set[int]) -> None:
        log.append(f"start {sorted(batch)}")
        await asyncio.sleep(0.05)
        log.append("end")

    d: Debouncer[int] = Debouncer(flush, quiet=0.01, max_wait=0.5)
    async with running(d):
        d.notify(1)
        assert await eventually(lambda: log == ["start [1]"])
        d.notify(2)  # arrives while the first flush is still running
        assert await eventually(lambda: len(log) == 4)
    assert log == ["start [1]", "end", "start [2]", "end"]


@pytest.mark.asyncio
async def test_a_failing_flush_does_not_stop_later_flushes():
    batches: list[set[str]] = []

    def flush(batch: set[str]) -> None:
        batches.append(batch)
        if len(batches) == 1:
            raise RuntimeError("snapshot failed")

    d: Debouncer[str] = Debouncer(flush, quiet=0.01, max_wait=0.5)
    task = asyncio.create_task(d.run())
    try:
        d.notify("a")
        assert await eventually(lambda: len(batches) == 1)
        d.notify("b")
        assert await eventually(lambda: len(batches) == 2, within=1.0)
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=TIMEOUT)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it at garbage collection
    assert batches == [{"a"}, {"b"}]
