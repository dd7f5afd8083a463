"""The kubelet's probes, for one container of the local runtime (as the kubelet runs them).

A startup probe runs first, every period, until it succeeds; `failureThreshold` failures in a row
restart the container. Then liveness and readiness run side by side: `failureThreshold` liveness
failures in a row restart the container; readiness turns the container ready on a success and not ready
after `failureThreshold` failures in a row. A container without a readiness probe is ready once started
(and past its startup probe). Whenever the container (re)starts, all of this begins again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from osm.local.supervisor import ContainerProcess
from osm.models.k8s import Probe

UNREADY_PERIOD = 0.5  # seconds between readiness checks of a container not yet ready

Check = Callable[[Probe], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ContainerProbes:
    startup: Probe | None = None
    liveness: Probe | None = None
    readiness: Probe | None = None


class Prober:
    def __init__(
        self,
        cp: ContainerProcess,
        probes: ContainerProbes,
        check: Check,
        *,
        set_ready: Callable[[bool], None],
        event: Callable[[str], None],
    ) -> None:
        self.cp = cp
        self.probes = probes
        self.check = check
        self.set_ready = set_ready
        self.event = event

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            self.set_ready(False)
            run = await self._started()
            failed = await self._startup(run)
            if failed is None:
                failed = await self._running(run)
            self.set_ready(False)
            if failed:
                self.event(f"container {self.cp.name}: {failed}; restarting it")
                await self.cp.kill()
            while self.cp.starts == run:  # until the supervisor has started it again
                await self.cp.changed()

    async def _started(self) -> int:
        while not self.cp.running:
            await self.cp.changed()
        return self.cp.starts

    def _alive(self, run: int) -> bool:
        return self.cp.running and self.cp.starts == run

    async def _startup(self, run: int) -> str | None:
        """None once the startup probe passed (or there is none), else why the container restarts ("" if
        it restarted by itself)."""
        p = self.probes.startup
        if p is None:
            return None
        await asyncio.sleep(p.initial_delay_seconds)
        failures = 0
        while self._alive(run):
            if await self.check(p):
                return None
            failures += 1
            if failures >= p.failure_threshold:
                return f"startup probe failed {failures} times"
            await asyncio.sleep(p.period_seconds)
        return ""

    async def _running(self, run: int) -> str:
        """Liveness and readiness until the liveness probe fails (why) or the container ends ("")."""
        readiness = asyncio.create_task(self._readiness(run))
        try:
            return await self._liveness(run)
        finally:
            readiness.cancel()
            await asyncio.gather(readiness, return_exceptions=True)

    async def _liveness(self, run: int) -> str:
        p = self.probes.liveness
        if p is None:
            while self._alive(run):
                await self.cp.changed()
            return ""
        await asyncio.sleep(p.initial_delay_seconds)
        failures = 0
        while self._alive(run):
            failures = 0 if await self.check(p) else failures + 1
            if failures >= p.failure_threshold:
                return f"liveness probe failed {failures} times"
            await asyncio.sleep(p.period_seconds)
        return ""

    async def _readiness(self, run: int) -> None:
        p = self.probes.readiness
        if p is None:
            self.set_ready(True)
            return
        await asyncio.sleep(p.initial_delay_seconds)
        ready, failures = False, 0
        while self._alive(run):
            ok = await self.check(p)
            failures = 0 if ok else failures + 1
            if ok:
                ready = True
            elif failures >= p.failure_threshold:
                ready = False
            self.set_ready(ready)
            await asyncio.sleep(p.period_seconds if ready else min(p.period_seconds, UNREADY_PERIOD))
