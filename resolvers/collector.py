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
it off for longer than :data:`MAX_PAUSE`, the event loop's timer (or a
section that starts or ends) collects once and the clock starts again, so
sustained load, or one section that never ends, cannot pile cycles up
without end. Collections run outside the lock (a finalizer may pause too).
"""

from __future__ import annotations

import asyncio
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
_timer: asyncio.TimerHandle | None = None
"""Collects once :data:`MAX_PAUSE` has passed, even when no section starts or ends."""
MAX_PAUSE = 30.0
"""Seconds the collector may stay off across overlapping sections before one collects."""


def _overdue() -> bool:
    """Whether a pause of ours has lasted past :data:`MAX_PAUSE` (restarts its clock)."""
    global _since
    if _depth and _ours and time.monotonic() - _since >= MAX_PAUSE:
        _since = time.monotonic()
        return True
    return False


def _on_timer() -> None:
    global _timer
    with _lock:
        _timer = None
        due = _overdue()
        if _depth and _ours:
            _timer = _schedule()
    if due:
        gc.collect()  # outside the lock: a finalizer may pause again


def _schedule() -> asyncio.TimerHandle | None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None  # no loop (a thread, a test): sections that end still check
    return loop.call_later(max(MAX_PAUSE, 0.001), _on_timer)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block (and any block overlapping it)."""
    global _depth, _ours, _since, _timer
    with _lock:
        if _depth == 0:
            _ours = gc.isenabled()
            _since = time.monotonic()
            gc.disable()
            if _ours and _timer is None:
                _timer = _schedule()
        _depth += 1
        due = _overdue()
    if due:
        gc.collect()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            timer = None
            if _depth == 0:
                timer, _timer = _timer, None
                if _ours:
                    _ours = False
                    gc.enable()
            due = _overdue()
        if timer is not None:
            timer.cancel()
        if due:
            gc.collect()
