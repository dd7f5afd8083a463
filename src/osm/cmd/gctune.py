"""Garbage-collector settings for a control-plane process.

The controller keeps millions of long-lived objects (snapshots, indexes, serialized resources), and
CPython's cyclic collector rescans all of them on every full collection: over 200 ms at 2,000 proxies,
and 40% of the CPU under endpoint churn. Those collections find nothing, since churn produces no cyclic
garbage (bench/cp.py reports `gc_collected`; refcounting frees the old snapshots). So after each adopted
snapshot the live objects move to the permanent generation (`gc.freeze`, O(1)), where collections no
longer scan them, and young collections run less often. Once every `rescan_s` the permanent generation
is released and collected, so cyclic garbage from elsewhere (broken streams, exceptions) is still
reclaimed.

A snapshot is frozen without a young collection first. During a push to 2,000 proxies the young
generation holds 50,000-90,000 live objects (queued responses, the streams' suspended writes, the new
per-stream state), so each young collection took 20-40 ms and found nothing: a collection at every
snapshot, and one every 20,000 allocations (the threshold before), cost 60-80 ms of CPU per full push;
with neither, a push rarely reaches the threshold (one collection in five pushes). At a snapshot the young
generation held no cyclic garbage in the benchmarks (a DEBUG_SAVEALL collection there found none);
whatever a snapshot freezes that later becomes garbage waits for the rescan.

Only process entry points install it: it changes the collector for the whole process.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

GEN0_THRESHOLD = 100_000  # CPython's default is 700 allocations


class GcTuner:
    def __init__(self, *, rescan_s: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rescan_s = rescan_s
        self.clock = clock
        self.rescans = 0
        self._last_rescan = clock()

    def install(self) -> None:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
        gc.freeze()

    def settled(self) -> None:
        """Call after a snapshot was adopted: what is live now is long-lived."""
        now = self.clock()
        if now - self._last_rescan >= self.rescan_s:
            gc.unfreeze()
            gc.collect()
            self._last_rescan = now
            self.rescans += 1
        gc.freeze()
