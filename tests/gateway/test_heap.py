"""The startup heap is frozen while a gateway serves and collectable once it stops."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway import heap
from resolvers.heap import long_lived_frozen


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    assert gc.get_freeze_count() == 0
    yield
    assert gc.get_freeze_count() == 0


def test_objects_alive_at_startup_are_frozen_while_serving() -> None:
    with heap.serving():
        assert gc.get_freeze_count() > 0


def test_a_stopped_gateways_cycles_are_collected_while_another_serves() -> None:
    old_heap = Node()
    old = heap.serving()
    old.__enter__()
    new = heap.serving()  # a reload: the new gateway starts before the old one stops
    new.__enter__()
    gone = weakref.ref(old_heap)
    del old_heap
    gc.collect()
    assert gone() is not None  # frozen: the collector skips it
    old.__exit__(None, None, None)  # the old one stops; the new one still serves
    assert gone() is None
    assert gc.get_freeze_count() > 0
    new.__exit__(None, None, None)


def test_garbage_left_by_startup_is_collected_not_frozen() -> None:
    leftover = Node()  # a cycle nothing refers to any more when the gateway starts
    gone = weakref.ref(leftover)
    del leftover
    with heap.serving():
        assert gone() is None


def test_an_export_while_serving_keeps_no_request_garbage_for_the_gateways_life() -> None:
    with heap.serving():
        request = Node()  # alive when the export starts, garbage while it runs
        gone = weakref.ref(request)
        with long_lived_frozen():
            del request
        gc.collect()
        assert gone() is None
        assert gc.get_freeze_count() > 0  # the gateway still serves


def test_the_young_generation_is_collected_less_often_while_any_gateway_serves() -> None:
    before = gc.get_threshold()
    old = heap.serving()
    old.__enter__()
    with heap.serving():  # a reload: the new gateway starts before the old one stops
        assert gc.get_threshold() == heap.SERVING_THRESHOLDS
        old.__exit__(None, None, None)
        assert gc.get_threshold() == heap.SERVING_THRESHOLDS
    assert gc.get_threshold() == before


@pytest.mark.parametrize(
    ("own", "serving"),
    [
        ((0, 10, 10), (0, 10, 10)),
        ((90_000, 5, 5), (90_000, 20, 10)),
        ((700, 50, 40), (50_000, 50, 40)),  # rarer middle and old collections are kept
    ],
)
def test_a_process_without_collection_or_with_rarer_collection_keeps_it(
    own: tuple[int, int, int], serving: tuple[int, int, int]
) -> None:
    before = gc.get_threshold()
    gc.set_threshold(*own)
    try:
        with heap.serving():
            assert gc.get_threshold() == serving
        assert gc.get_threshold() == own
    finally:
        gc.set_threshold(*before)


def test_the_thresholds_come_back_when_the_last_holder_of_the_freeze_leaves() -> None:
    before = gc.get_threshold()
    gateway = heap.serving()
    gateway.__enter__()
    with long_lived_frozen():  # an export still walking when the gateway stops
        gateway.__exit__(None, None, None)
        assert gc.get_threshold() == heap.SERVING_THRESHOLDS  # one count: it still holds
    assert gc.get_threshold() == before


def test_cycles_made_while_serving_are_still_collected() -> None:
    with heap.serving():
        made = [Node() for _ in range(10)]
        gone = [weakref.ref(n) for n in made]
        del made
        assert all(ref() is not None for ref in gone)  # not yet: no collection ran
        # allocations drive it; twice the threshold, since the young generation's
        # count is net of what any thread frees meanwhile (under xdist, its channel's
        # thread): one past it left a margin of ~20 objects, and failed
        alive = [[] for _ in range(2 * heap.SERVING_THRESHOLDS[0])]
        assert all(ref() is None for ref in gone)
        del alive
