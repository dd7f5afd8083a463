"""Time a process spends in CPython's cyclic garbage collector, per collection."""

from __future__ import annotations

import gc
import time
from typing import Any


class GcClock:
    """Records every collection from construction on: (generation, seconds) in `pauses`, their sum in
    `seconds`."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self.seconds = 0.0
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            pause = time.perf_counter() - self._start
            self.pauses.append((info["generation"], pause))
            self.seconds += pause
