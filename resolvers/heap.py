"""Garbage collection and the long-lived objects: set aside while they stay long-lived.

CPython's full collection walks every object the collector tracks, and it runs
whenever the objects promoted to the oldest generation since the last one reach a
quarter of those already there. An export promotes each chunk's records, values
and rows (they outlive the younger collections while the chunk is built), so at
100,000 customers a full collection ran every ~0.35 s, each walking the ~110,000
objects of the imported modules and settings (~45 ms each; ~1 of ~9 CPU s) to
free almost nothing. While a whole export walks, the objects that exist when it
starts are frozen (``gc.freeze``: left out of every collection) and thawed when
the last walk ends (``gc.unfreeze``), so nothing is kept from collection for good.
A serving gateway freezes its startup heap the same way (``gateway/heap.py``).

``gc.freeze`` and ``gc.unfreeze`` act on the whole process and all at once, so
every holder (walks, gateways, overlapping or nested in any order) counts in one
count here: everything is thawed only when the last holder leaves. A process that
froze its own objects (e.g. before forking workers) keeps them frozen and is left
alone until the holders are gone.

A holder may also ask for rarer collections while it holds (``thresholds``, the
young, middle and old thresholds of ``gc.set_threshold``: a serving gateway's,
``gateway/heap.py``). They count in the same count under the same lock: the first
holder that asks saves the process's own thresholds and raises them, and they come
back when the last holder of any kind leaves (a change made to them meanwhile is
overwritten then). A threshold is only ever raised, never lowered (a process whose
own is higher keeps it), and a process that turned automatic collection off
(young threshold 0) keeps it off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

WALK_THRESHOLDS = (50_000, 20, 10)
"""``gc.set_threshold`` while a whole export walks: young, middle, old. CPython
collects the young generation every 700 net container allocations; a chunk of
500 customers makes hundreds of thousands (records, values, rows), so the young
and middle collections ran ~3,300 and ~300 times at 100,000 customers, each
traversing the chunk's objects that were still alive and promoting them, for
them to die by reference counting anyway: ~2.3 of ~25 CPU s in collections
(``gc.callbacks``, 2026-12-01). At 50,000 allocations between young collections
the same export makes ~55 young, 5 middle and 1 full collection (~0.15 CPU s),
at the same peak RSS. Cycles are still collected, ~50,000 container objects later."""

_lock = threading.RLock()
"""Reentrant: a collection run here may finalize a suspended walk, which leaves."""
_holders = 0
_ours = False
"""Whether the objects frozen now were frozen by these holders."""
_own_thresholds: tuple[int, ...] | None = None
"""The process's thresholds before a holder raised them (None: not raised)."""


@contextmanager
def long_lived_frozen(
    *, lasting: bool = False, thresholds: tuple[int, int, int] | None = None
) -> Iterator[None]:
    """The block runs with the objects that exist when it starts left out of garbage
    collection; when the last such block ends, they are collected as before.

    A walk (the default) freezes only when nothing is frozen yet: inside a serving
    gateway it just counts itself in, so the requests' objects alive when it starts
    are not kept from collection for as long as the gateway serves. A ``lasting``
    block (a gateway: what exists when it starts lives as long as it serves) collects
    the garbage first, since a frozen cycle is freed only once thawed, and freezes
    even inside another block (a reload's new gateway). A block that froze and ends
    while others still run thaws, collects and freezes again, so its garbage does
    not wait for the last one. ``thresholds``: the collection thresholds the
    process keeps at least until the last holder leaves (module docstring)."""
    froze = _hold(lasting, thresholds)
    try:
        yield
    finally:
        _leave(froze)


def _hold(lasting: bool, thresholds: tuple[int, int, int] | None) -> bool:
    global _holders, _ours
    with _lock:
        if _holders == 0:
            _ours = gc.get_freeze_count() == 0
        _holders += 1
        if thresholds is not None:
            _raise_thresholds(thresholds)
        froze = _ours and (lasting or _holders == 1)
        if froze:
            if lasting:
                gc.collect()
            gc.freeze()
        return froze


def _leave(froze: bool) -> None:
    global _holders, _ours
    with _lock:
        _holders -= 1
        if _holders == 0:
            _restore_thresholds()
        if not _ours:
            return
        if _holders == 0:
            _ours = False
            gc.unfreeze()
        elif froze:
            gc.unfreeze()
            gc.collect()
            if _ours:  # still: a finalizer run by the collection may have left last
                gc.freeze()


def _raise_thresholds(thresholds: tuple[int, int, int]) -> None:
    global _own_thresholds
    current = gc.get_threshold()
    if _own_thresholds is None:
        _own_thresholds = current
    if current[0] != 0:  # a process that turned collection off keeps it off
        gc.set_threshold(*(max(now, asked) for now, asked in zip(current, thresholds, strict=True)))


def _restore_thresholds() -> None:
    global _own_thresholds
    if _own_thresholds is not None:
        gc.set_threshold(*_own_thresholds)
        _own_thresholds = None
