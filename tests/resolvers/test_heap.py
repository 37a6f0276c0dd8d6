"""A whole export's walk leaves the long-lived objects out of garbage collection
while it runs, and only then."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from resolvers.heap import long_lived_frozen


class _Cycle:
    def __init__(self) -> None:
        self.me: Any = self


def test_objects_are_frozen_while_any_walk_runs_and_thawed_after() -> None:
    assert gc.get_freeze_count() == 0
    with long_lived_frozen():
        assert gc.get_freeze_count() > 0
        with long_lived_frozen():  # a second export at the same time
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0  # the first still runs
    assert gc.get_freeze_count() == 0


def test_garbage_from_before_the_walk_is_collected_after_it() -> None:
    gc.collect()
    before = _Cycle()
    alive = weakref.ref(before)
    del before  # a cycle: only the collector frees it
    with long_lived_frozen():
        gc.collect()
        assert alive() is not None  # frozen: left alone
    gc.collect()
    assert alive() is None


def test_a_process_that_froze_its_own_objects_keeps_them_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        garbage = [_Cycle() for _ in range(1000)]  # would be frozen by a second freeze
        with long_lived_frozen():
            pass
        # neither thawed nor frozen again (a frozen object that another thread
        # releases meanwhile, e.g. a server thread's closed connection, leaves)
        assert frozen - 100 < gc.get_freeze_count() <= frozen
        del garbage
    finally:
        gc.unfreeze()
