"""The controller's GC settings: live objects frozen after each snapshot, a periodic full rescan."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from osm.cmd.gctune import GEN0_THRESHOLD, GcTuner


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


class Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("restore_gc")
def test_install_raises_the_young_threshold_and_freezes_what_is_live() -> None:
    gc.unfreeze()
    _, gen1, gen2 = gc.get_threshold()
    GcTuner().install()
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restore_gc")
def test_frozen_cycles_survive_until_the_periodic_rescan_collects_them() -> None:
    now = [0.0]
    tuner = GcTuner(rescan_s=600, clock=lambda: now[0])
    gc.unfreeze()
    live = Cycle()
    tuner.settled()  # frozen with everything else live now
    del live  # now garbage that only the cyclic collector can see
    gc.collect()
    assert _frozen_cycles()  # a collection does not scan the permanent generation
    now[0] = 601.0
    tuner.settled()
    assert tuner.rescans == 1
    assert not _frozen_cycles()
    assert gc.get_freeze_count() > 0  # frozen again after the rescan


def _frozen_cycles() -> list[object]:
    """Cycle objects in the permanent generation (gc.get_objects does not list it)."""
    gc.unfreeze()
    try:
        return [o for o in gc.get_objects() if type(o) is Cycle]
    finally:
        gc.freeze()


@pytest.mark.usefixtures("restore_gc")
def test_a_snapshot_is_frozen_without_a_collection_until_the_rescan_is_due() -> None:
    now = [0.0]
    tuner = GcTuner(rescan_s=600, clock=lambda: now[0])
    collections: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(on_gc)
    try:
        gc.unfreeze()
        young = [Cycle() for _ in range(100)]
        tuner.settled()
        assert collections == []  # frozen as they are: no generation was scanned
        assert gc.get_count()[0] < 100  # the young generation is empty again
        del young
        now[0] = 601.0
        tuner.settled()
        assert collections == [2]  # the rescan: one full collection
    finally:
        gc.callbacks.remove(on_gc)
