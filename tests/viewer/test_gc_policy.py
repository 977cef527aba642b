"""The viewer's GC policy once the fleet is loaded: short young passes only, yet cycles are still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from viewer.cli import GC_THRESHOLDS, freeze_gc


class Cyclic:
    """An object that refers to itself: only the cyclic GC can free it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Put the interpreter's GC back as it was (thresholds, frozen objects) after the test."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class TestFreezeGc:
    @pytest.mark.usefixtures("restored_gc")
    def test_garbage_cycles_made_later_are_still_freed(self) -> None:
        """After the fleet loads, garbage cycles made later are still freed by the young passes (bounded memory)."""
        freeze_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        cycle = Cyclic()
        gone = weakref.ref(cycle)
        del cycle
        kept: list[list[int]] = [[] for _ in range(GC_THRESHOLDS[0] + 1_000)]  # more than a gen-0 pass allows
        assert gone() is None, "a generation-0 pass should have run and freed the cycle"
        assert len(kept) > GC_THRESHOLDS[0]

    @pytest.mark.usefixtures("restored_gc")
    def test_survivors_are_never_rescanned(self) -> None:
        """Rows that outlive a young pass are never scanned again: every pass is a short generation-0 one."""
        freeze_gc()
        generations: list[int] = []

        def record(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                generations.append(info["generation"])

        gc.callbacks.append(record)
        try:
            kept = [[index] for index in range(GC_THRESHOLDS[0] * 30)]  # survivors, as a fleet's new entries
        finally:
            gc.callbacks.remove(record)
        assert len(kept) == GC_THRESHOLDS[0] * 30
        assert len(generations) >= 20  # a pass per ~700 new objects: each one short
        assert set(generations) == {0}

    @pytest.mark.usefixtures("restored_gc")
    def test_the_loaded_fleet_is_frozen(self) -> None:
        """What is alive when the fleet has loaded is never scanned again by the cyclic GC."""
        loaded = [{"node": index} for index in range(100)]
        freeze_gc()
        assert gc.get_freeze_count() >= len(loaded)
