"""Short SQLite statements on the event loop's own thread.

The direct path (:mod:`connectors.sql.direct`) gives each pooled ``sqlite3``
connection a thread. Sending a statement there costs more than a short
statement itself: the caller's future, the queue, waking the thread, and
waking the loop again through its self-pipe (``call_soon_threadsafe``),
~25 µs of CPU against ~10 µs for an indexed lookup in ``sqlite3``. So a
statement is first run on the loop's thread while its connection's thread
has nothing to do, within a budget: SQLite's progress handler looks at the
clock every :data:`PROGRESS_STEPS` steps and stops the statement once the
budget has passed (the connection stays usable). The caller then sends it
to the connection's thread, and :class:`SlowStatements` sends its shape
there directly for its next :data:`SLOW_RUNS` runs, so a long statement
holds the loop for about the budget once in that many runs. A step SQLite
does not stop (counting a whole table) is marked the same way by the caller
once its CPU time passed twice the budget.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

PROGRESS_STEPS = 1000
"""SQLite virtual-machine steps between two looks at a statement run inline's
clock (a look costs ~0.2 µs; 1,000 steps took 20 to 40 µs here)."""
SLOW_RUNS = 64
"""Runs a statement that went past the inline budget spends on its connection's
thread before it is tried inline again (it may have been slow only once: the
machine was busy, or its values matched many rows)."""
SLOW_TEXTS = 1024
"""At most this many slow statements are remembered (then forgotten together)."""


def fetch_all(connection: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[Any]:
    cursor = connection.execute(sql, args)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def fetch_within(
    connection: sqlite3.Connection, sql: str, args: Sequence[Any], budget: float
) -> tuple[list[Any] | None, bool]:
    """Every row of the statement and False; or None and True when it was stopped
    after ``budget`` seconds, None and False when a writer holds the file's lock
    (the connection stays usable either way)."""
    until = time.perf_counter() + budget
    stopped = False

    def over() -> bool:
        nonlocal stopped
        stopped = time.perf_counter() > until
        return stopped

    connection.set_progress_handler(over, PROGRESS_STEPS)
    try:
        return fetch_all(connection, sql, args), False
    except sqlite3.OperationalError as exc:
        if stopped:  # "interrupted": by the handler, not by the statement's own fault
            return None, True
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (
            sqlite3.SQLITE_BUSY,
            sqlite3.SQLITE_LOCKED,
        ):
            return None, False  # the thread waits for the lock, within the timeout
        raise
    finally:
        connection.set_progress_handler(None, 0)


class SlowStatements(dict[str, int]):
    """The statement shapes that went past the inline budget, and how many more
    runs each spends on its connection's thread (a dict: ``shape in slow`` is
    asked without a Python frame for every statement, most of them not slow)."""

    def may_inline(self, shape: str) -> bool:
        """Whether ``shape`` is tried on the loop's thread (counts a slow one's run)."""
        left = self.get(shape)
        if left is None:
            return True
        if left > 1:
            self[shape] = left - 1
        else:
            del self[shape]  # its next run is tried inline again
        return False

    def add(self, shape: str) -> None:
        if len(self) >= SLOW_TEXTS:
            self.clear()
        self[shape] = SLOW_RUNS
