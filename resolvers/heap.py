"""Garbage collection while a whole export walks: the long-lived objects set aside.

CPython's full collection walks every object the collector tracks, and it runs
whenever the objects promoted to the oldest generation since the last one reach a
quarter of those already there. An export promotes each chunk's records, values
and rows (they outlive the younger collections while the chunk is built), so at
100,000 customers a full collection ran every ~0.35 s, each walking the ~110,000
objects of the imported modules and settings (~45 ms each; ~1 of ~9 CPU s) to
free almost nothing. While a whole export walks, the objects that exist when it
starts are frozen (``gc.freeze``: left out of every collection) and thawed when
the last walk ends (``gc.unfreeze``), so nothing is kept from collection for good.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_walks = 0
_froze = False
"""Whether the objects frozen now were frozen by these walks (a process that froze
its own, e.g. before forking workers, keeps them frozen and is left alone)."""


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """The block runs with the objects that exist when it starts left out of garbage
    collection; when the last such block ends, they are collected as before."""
    global _walks, _froze
    if _walks == 0:
        _froze = gc.get_freeze_count() == 0
    if _froze:
        gc.freeze()
    _walks += 1
    try:
        yield
    finally:
        _walks -= 1
        if _walks == 0 and _froze:
            gc.unfreeze()
            _froze = False
