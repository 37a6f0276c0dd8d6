"""The startup heap is frozen while a gateway serves and collectable once it stops."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    heap._serving = 0
    gc.unfreeze()


def test_objects_alive_at_startup_are_frozen_while_serving() -> None:
    heap.started()
    assert gc.get_freeze_count() > 0
    heap.stopped()
    assert gc.get_freeze_count() == 0


def test_a_stopped_gateways_cycles_are_collected_while_another_serves() -> None:
    old = Node()
    heap.started()  # the old gateway
    heap.started()  # the new one (a reload)
    gone = weakref.ref(old)
    del old
    gc.collect()
    assert gone() is not None  # frozen: the collector skips it
    heap.stopped()  # the old one stops; the new one still serves
    assert gone() is None
    assert gc.get_freeze_count() > 0
    heap.stopped()
    assert gc.get_freeze_count() == 0


def test_garbage_left_by_startup_is_collected_not_frozen() -> None:
    leftover = Node()  # a cycle nothing refers to any more when the gateway starts
    gone = weakref.ref(leftover)
    del leftover
    heap.started()
    assert gone() is None
