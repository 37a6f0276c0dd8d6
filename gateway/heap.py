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
the old one stops; tests start many), so freezing is counted: when one
stops, everything is unfrozen so its cycles can be collected, and while
others still serve, the heap is collected once and frozen again.
"""

from __future__ import annotations

import gc

_serving = 0


def started() -> None:
    """A gateway finished starting: freeze what the process holds now."""
    global _serving
    _serving += 1
    gc.collect()  # startup's garbage first: a frozen cycle is never freed
    gc.freeze()


def stopped() -> None:
    """A gateway stopped: its objects become collectable again."""
    global _serving
    _serving = max(0, _serving - 1)
    gc.unfreeze()
    if _serving:
        gc.collect()
        gc.freeze()
