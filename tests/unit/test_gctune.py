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
def test_young_garbage_is_collected_not_frozen() -> None:
    gc.unfreeze()
    gc.collect()  # an empty youngest generation: no automatic collection before settled()
    Cycle()  # already garbage when the snapshot settles
    GcTuner(rescan_s=600).settled()
    assert not _frozen_cycles()
