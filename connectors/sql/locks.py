"""Waiting for a writer's lock on a SQLite file between tries, not in sqlite3.

sqlite3's busy wait (its ``timeout``, 5 s by default) calls neither a progress
handler nor honours ``interrupt()``: a statement that met a writer's lock held
its connection's thread until the lock went or the busy timeout passed, whether
or not its caller still waited. Python's ``sqlite3`` has no busy-handler hook,
so the connector's SQLite connections run with a busy timeout of 0 and a
statement that finds the file locked is tried again, after sleeps like SQLite's
own busy handler's, within the connection's own busy timeout — from the event
loop on SQLAlchemy's engine (:mod:`connectors.sql.engine_sqlite`), on the
connection's thread on the direct path (:mod:`connectors.sql.direct`); either
stops once the statement's caller left.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

LOCK_RETRY_DELAYS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05)
"""Seconds between tries while the file is locked (then 0.1 s each), as SQLite's
own busy handler sleeps."""


def lock_waits(busy_wait: float) -> Iterator[float]:
    """The sleeps before each new try, ``busy_wait`` seconds of them in all."""
    waited = 0.0
    tries = 0
    while waited < busy_wait:
        delay = LOCK_RETRY_DELAYS[tries] if tries < len(LOCK_RETRY_DELAYS) else 0.1
        delay = min(delay, busy_wait - waited)
        tries += 1
        yield delay
        waited += delay


def locked(exc: BaseException) -> bool:
    """Whether ``exc`` (``sqlite3``'s, or SQLAlchemy's wrapping it) is SQLite's
    ``SQLITE_BUSY`` (another connection holds a lock on the file) or
    ``SQLITE_LOCKED`` (a connection of this process sharing the cache holds a
    lock on the table, ``cache=shared``): both go once the writer is done."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    return (
        isinstance(orig, sqlite3.OperationalError)
        and code is not None
        and (code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    )
