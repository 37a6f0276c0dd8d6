"""The heap a gateway builds at startup, kept out of the collector's full passes.

A started gateway holds ~175,000 long-lived container objects (the schema,
the model, SQLAlchemy's and phonenumbers' metadata, compiled plans) that
never become garbage while it serves. Python's cyclic collector traverses
all of them in every full collection, which requests trigger as they
allocate: at 100,000 demo customers one full pass every ~30 pages of 50,
~100 ms each, 3.3 ms of a page's 15 ms of CPU (``gc.callbacks``,
2026-11-30). :func:`gc.freeze` moves what exists at startup into the
permanent generation, which the collector skips; reference counting still
frees those objects, only cycles among them wait.

Several gateways may share a process (a reload starts the new one before
the old one stops; tests start many), and exports walk while one serves, so
the freeze is the one counted freeze of :mod:`resolvers.heap`: when a gateway
stops while others still hold, everything is thawed, its cycles collected and
the rest frozen again; when the last leaves, everything is thawed.

While a gateway serves, the young generation is also collected less often
(:data:`SERVING_THRESHOLDS`). CPython collects it every 700 net container
allocations; a page of 50 makes thousands, and at 10 requests in flight
each collection promotes the objects of the requests still running, which
the older generations then traverse again until they die by reference
counting anyway. Over HTTP at concurrency 10 (100,000 demo customers) that
was 5.5 young, 0.5 middle and 0.05 full collections a page, ~2 ms of its
CPU; at 50,000 allocations between young collections a whole 440-page run
made ~6 young and 1 full collection (``gc.callbacks`` with
``time.thread_time``, 2026-12-01). Cycles are still collected, ~50,000
container objects later. The thresholds count in the freeze's one count
(:func:`resolvers.heap.long_lived_frozen`, ``thresholds``): raised when a
gateway starts, the process's own back when the last holder of the freeze (a
gateway or an export's walk) leaves; a threshold the process set higher is
kept, and a process that turned collection off keeps it off.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from resolvers.heap import long_lived_frozen

SERVING_THRESHOLDS = (50_000, 20, 10)
"""``gc.set_threshold`` while a gateway serves: young, middle, old."""


def serving() -> AbstractContextManager[None]:
    """While a started gateway serves: what the process holds now is frozen, and
    the young generation is collected every :data:`SERVING_THRESHOLDS` allocations."""
    return long_lived_frozen(lasting=True, thresholds=SERVING_THRESHOLDS)
