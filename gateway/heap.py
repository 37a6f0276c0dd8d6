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
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from resolvers.heap import long_lived_frozen


def serving() -> AbstractContextManager[None]:
    """While a started gateway serves: what the process holds now is frozen."""
    return long_lived_frozen(lasting=True)
