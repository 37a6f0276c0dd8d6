"""Short SQLite statements on the event loop's own thread.

The direct path (:mod:`connectors.sql.direct`) gives each pooled ``sqlite3``
connection a thread. Sending a statement there costs more than a short
statement itself: the caller's future, the queue, waking the thread, and
waking the loop again through its self-pipe (``call_soon_threadsafe``),
~25 µs of CPU against ~10 µs for an indexed lookup in ``sqlite3``. So a
statement is first run on the loop's thread while its connection's thread
has nothing to do, within a budget of CPU time: SQLite's progress handler
looks at the clock every :data:`PROGRESS_STEPS` steps and, once the budget
has passed by the clock, at the thread's CPU time too, and stops the
statement when that has used the budget, or when :data:`WALL_LIMIT` times
the budget has passed by the clock whatever it used (the connection stays
usable). The caller then sends it to the connection's thread, and
:class:`SlowStatements` sends its shape there directly for its next
:data:`SLOW_RUNS` runs, so a long statement holds the loop for about the
budget (up to :data:`WALL_LIMIT` times it by the clock on a busy machine)
once in that many runs. A step SQLite does not stop (counting a
whole table) is marked the same way by the caller once its CPU time passed
twice the budget.

Why CPU time and not the clock alone: a statement's clock time also counts
the time the process was not running it — a machine busy with other work,
and, at several requests in flight, the GIL handed to the connection threads
of statements already sent there (``sqlite3`` lets go of it for every row).
Stopped by the clock, short statements (a page's stitching lookups, ~1 ms of
CPU) were marked slow and sent to the threads, whose hand-offs slowed the
loop's next statements past the budget in turn: at 10 requests in flight,
45% of a page's statements ran on the threads, at ~60 thread wake-ups and
~10 ms more CPU a page than running them all on the loop (2026-12-02).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

PROGRESS_STEPS = 1000
"""SQLite virtual-machine steps between two looks at a statement run inline's
clock (a look costs ~0.2 µs; 1,000 steps took 20 to 40 µs here)."""
WALL_LIMIT = 5
"""A statement run inline is stopped once this many times its budget has passed
by the clock, even if it has not used its budget of CPU time (a statement
waiting on the disk, or a machine that runs the process a fifth of the time)."""
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
    connection: sqlite3.Connection,
    sql: str,
    args: Sequence[Any],
    budget: float,
    limit: float,
    cpu: float | None = None,
) -> tuple[list[Any] | None, bool]:
    """Every row of the statement and False; or None and True when it was stopped
    having used ``budget`` seconds of the thread's CPU time, or once ``limit``
    seconds passed by the clock; None and False when a writer holds the file's
    lock (the connection stays usable either way). ``cpu``: the thread's CPU time
    (``time.thread_time()``) as the statement starts, read here if not given;
    the handler reads it again (a system call, ~2 µs) only once ``budget`` has
    passed by the clock: until then the statement cannot have used it."""
    started = time.perf_counter()
    until, last = started + min(budget, limit), started + limit
    cpu_until = (time.thread_time() if cpu is None else cpu) + budget
    stopped = False

    def over() -> bool:
        nonlocal stopped
        now = time.perf_counter()
        if now <= until:
            return False
        stopped = now > last or time.thread_time() >= cpu_until
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
