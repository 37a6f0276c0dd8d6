"""A whole export's walk leaves the long-lived objects out of garbage collection
while it runs, and only then; every holder of the freeze (walks, serving
gateways) counts in one count, so it ends only when the last one leaves."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from resolvers.heap import long_lived_frozen


class _Cycle:
    def __init__(self) -> None:
        self.me: Any = self


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    assert gc.get_freeze_count() == 0
    yield
    assert gc.get_freeze_count() == 0


def test_objects_are_frozen_while_any_walk_runs_and_thawed_after() -> None:
    with long_lived_frozen():
        assert gc.get_freeze_count() > 0
        with long_lived_frozen():  # a second export at the same time
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0  # the first still runs


def test_overlapping_walks_thaw_when_the_last_ends_whichever_it_is() -> None:
    first, second = long_lived_frozen(), long_lived_frozen()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first export ends before the second
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0


def test_a_walk_that_leaves_before_a_lasting_holder_has_its_garbage_collected() -> None:
    walk, gateway = long_lived_frozen(), long_lived_frozen(lasting=True)
    walk.__enter__()
    during = _Cycle()  # frozen by the walk, garbage before it ends
    gone = weakref.ref(during)
    gateway.__enter__()  # a gateway started while the walk runs
    del during
    gc.collect()
    assert gone() is not None  # frozen
    walk.__exit__(None, None, None)
    assert gone() is None  # collected, though the gateway still holds
    assert gc.get_freeze_count() > 0
    gateway.__exit__(None, None, None)
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


def test_a_walk_finalized_by_a_holders_collection_leaves_the_count_right() -> None:
    def walking(box: _Cycle) -> Iterator[None]:
        with long_lived_frozen():
            yield

    box = _Cycle()
    box.me = walking(box)  # a walk under way in a cycle: only a collection ends it
    next(box.me)
    del box
    # the walk's own freeze keeps its generator from the lasting holder's entry
    # collection; the collection on leaving finalizes it, inside the count's lock
    with long_lived_frozen(lasting=True):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_its_own_objects_keeps_them_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        garbage = [_Cycle() for _ in range(1000)]  # would be frozen by a second freeze
        with long_lived_frozen(), long_lived_frozen(lasting=True):
            pass
        # neither thawed nor frozen again (a frozen object that another thread
        # releases meanwhile, e.g. a server thread's connection, leaves)
        assert frozen - 100 < gc.get_freeze_count() <= frozen
        del garbage
    finally:
        gc.unfreeze()
