"""Python's cyclic garbage collector paused while the planner stitches a chunk.

Stitching and checking one chunk of candidates (up to
``planner.max_candidates`` seed records, their customers' other records,
keys, golden values and metrics) allocates millions of container objects
that live until the chunk is checked and then die by reference counting:
they hold almost no cycles (about a hundred unreachable objects a filtered
request). The collector cannot know that. Whenever the objects that
survived its young generations pass a quarter of the long-lived heap, it
traverses all of it; a chunk's objects survive long enough to trigger that
again and again. At 1,000,000 demo customers a filtered page made 32 full
collections costing 9.8 of its 21 CPU seconds; at 100,000, 6 costing 0.75
of 2 (measured with ``gc.callbacks``, 2026-11-30).

The collector has only a process-wide switch, so the pause is counted: it
ends when the last paused section ends, and it never turns on a collector
that someone else turned off. Cycles made meanwhile (by this request or
another) are collected once it is back on; while overlapping sections keep
it off for longer than :data:`MAX_PAUSE`, a section that ends collects
once, so sustained load cannot pile cycles up without end.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_ours = False
"""Whether the outermost paused section turned the collector off (and so turns it on)."""
_since = 0.0
"""When the collector was turned off, or last collected while paused (monotonic)."""
MAX_PAUSE = 30.0
"""Seconds the collector may stay off across overlapping sections before one collects."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block (and any block overlapping it)."""
    global _depth, _ours, _since
    with _lock:
        if _depth == 0:
            _ours = gc.isenabled()
            _since = time.monotonic()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _ours:
                _ours = False
                gc.enable()
            elif _ours and time.monotonic() - _since > MAX_PAUSE:
                gc.collect()
                _since = time.monotonic()
