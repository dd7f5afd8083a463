"""Container processes of the local runtime: started in a pod's namespace, restarted with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
RESET_AFTER = 60.0  # a run this long resets the backoff
STOP_GRACE = 5.0


@dataclass
class ContainerProcess:
    name: str
    argv: Sequence[str]  # the full command, including `ip netns exec ...`
    env: dict[str, str]
    log_path: Path
    restart: bool = True
    on_start: Callable[[int], None] | None = None
    pid: int | None = None
    starts: int = 0  # how many times it was started (a probe's run ends when this moves)
    restarts: int = 0
    last_exit: int | None = None
    running: bool = False
    _stopping: bool = field(default=False, repr=False)
    _proc: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _change: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def changed(self) -> None:
        """Until the process next starts or ends."""
        await self._change.wait()

    def _notify(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    async def run(self) -> None:
        """Run until stop(): restart on exit with exponential backoff (1 s .. 30 s)."""
        backoff = BACKOFF_START
        while not self._stopping:
            started = time.monotonic()
            try:
                with open(self.log_path, "ab") as out:  # noqa: ASYNC230 (append-open of a local file)
                    self._proc = await asyncio.create_subprocess_exec(
                        *self.argv,
                        env=self.env,
                        stdout=out,
                        stderr=asyncio.subprocess.STDOUT,
                        stdin=asyncio.subprocess.DEVNULL,
                        start_new_session=True,
                    )
            except OSError as e:
                log.error("container %s: cannot start %s: %s", self.name, self.argv[-1], e)
                self.last_exit = -1
            else:
                self.pid, self.running = self._proc.pid, True
                self.starts += 1
                self._notify()
                if self.on_start is not None:
                    self.on_start(self._proc.pid)
                self.last_exit = await self._proc.wait()
                self.running = False
                self._notify()
            if self._stopping or not self.restart:
                return
            if time.monotonic() - started > RESET_AFTER:
                backoff = BACKOFF_START
            self.restarts += 1
            log.warning(
                "container %s exited with %s; restart %d in %.0f s",
                self.name,
                self.last_exit,
                self.restarts,
                backoff,
            )
            with open(self.log_path, "ab") as out:  # noqa: ASYNC230
                out.write(f"--- exited with {self.last_exit}; restarting in {backoff:.0f} s\n".encode())
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def stop(self) -> None:
        self._stopping = True
        await self.kill()

    async def kill(self) -> None:
        """End the running process (SIGTERM, SIGKILL after the grace period); run() restarts it unless
        stopped."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
