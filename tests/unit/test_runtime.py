"""What start-up leaves is frozen out of the garbage collector's walks, what comes later is
still collected, and the young generation is collected less often."""

import gc
import weakref

from modelhub_runtime.runtime import YOUNG_THRESHOLD, tune_gc


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_start_up_objects_are_frozen_and_later_garbage_is_still_collected():
    before, threshold = Cycle(), gc.get_threshold()
    gc.unfreeze()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert not any(o is before for o in gc.get_objects())  # frozen: no collection walks it
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *threshold[1:])
        later = Cycle()
        assert any(o is later for o in gc.get_objects(generation=0))
        collected: list = []
        ref = weakref.ref(later, collected.append)
        del later
        gc.collect()
        assert ref() is None and collected  # a cycle made after start-up is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
