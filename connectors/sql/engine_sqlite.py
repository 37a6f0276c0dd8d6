"""SQLite through SQLAlchemy's engine (aiosqlite, ``sqlite_direct: false``): a
statement stops once its caller leaves, and a locked file is waited for on the loop.

aiosqlite runs every job of a connection on the connection's own thread, in
order, and runs a job whose caller was cancelled all the same; SQLAlchemy's
cursor, execute and fetch are such jobs. ``interrupt()`` stops only a statement
that SQLite is running, so a caller that timed out or was cancelled while its
statement still waited for the thread (or for the step before it) left it to run
for nobody. Each connection here has a progress handler (installed through
aiosqlite's own ``set_progress_handler``) that stops the statement once its
caller left, whenever it starts; the direct path does the same on its threads
(:meth:`connectors.sql.direct._Worker.watch`). The caller's leaving is marked in
the engine's ``handle_error`` event, which SQLAlchemy dispatches for the
cancellation before it invalidates the connection: its graceful close waits on
aiosqlite's thread behind the statement, so the mark must come first.

sqlite3's busy wait for a writer's lock on the file calls neither the progress
handler nor honours ``interrupt()``: a statement that met the lock held the
connection's thread, and its caller's timeout, for the whole busy timeout (5 s by
default; a lookup with a 0.3 s timeout answered after 5 s). Python's ``sqlite3``
has no busy-handler hook, so these connections run with a busy timeout of 0 and
a statement that finds the file locked is tried again from the loop, after
sleeps like SQLite's own busy handler's, within the connection's own busy
timeout: a timeout, the request's deadline or a cancel ends the wait at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connectors.sql.direct import ABANDON_STEPS

T = TypeVar("T")
_WATCH = "custview.watch"
"""The key of a connection's :class:`Watch` in its pool entry's ``info``."""
LOCK_RETRY_DELAYS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05)
"""Seconds between tries while the file is locked (then 0.1 s each), as SQLite's
own busy handler sleeps."""


class Watch:
    """One connection's: whether the caller of the statement it runs left."""

    __slots__ = ("busy_wait", "left")

    def __init__(self, busy_wait: float) -> None:
        self.busy_wait = busy_wait
        """The connection's own busy timeout (seconds): how long a statement waits
        for a writer's lock on the file."""
        self.left = False

    def abandoned(self) -> bool:
        """The progress handler: a true answer stops the running statement."""
        return self.left


def stop_when_abandoned(engine: AsyncEngine) -> None:
    """A statement of ``engine`` whose caller is cancelled (its timeout, the
    request's deadline, a cancel) is stopped by its connection's watch."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _left(context: ExceptionContext) -> None:
        if context.connection is None:
            return
        if isinstance(context.original_exception, asyncio.CancelledError):
            watch: Watch | None = context.connection.info.get(_WATCH)
            if watch is not None:
                watch.left = True


def ready_watch(conn: AsyncConnection) -> Watch | None:
    """``conn``'s watch, or None when :func:`new_watch` must set one up first."""
    watch: Watch | None = conn.info.get(_WATCH)
    return None if watch is None or watch.left else watch


async def new_watch(conn: AsyncConnection) -> Watch:
    """A watch for ``conn``, on its first use or after a caller left (the new handler
    is queued after the abandoned statement, which still sees its own)."""
    watch: Watch | None = conn.info.get(_WATCH)
    driver = (await conn.get_raw_connection()).driver_connection  # aiosqlite's
    assert driver is not None
    if watch is None:
        ((busy_ms,),) = await driver.execute_fetchall("PRAGMA busy_timeout")
        await driver.execute_fetchall("PRAGMA busy_timeout = 0")
        watch = Watch(busy_ms / 1000)
    else:
        watch = Watch(watch.busy_wait)
    await driver.set_progress_handler(watch.abandoned, ABANDON_STEPS)
    conn.info[_WATCH] = watch
    return watch


async def waiting_for_locks(start: Callable[[], Awaitable[T]], busy_wait: float) -> T:
    """``start()``, tried again while the file is locked, for at most ``busy_wait``
    seconds of sleeps on the loop."""
    waited = 0.0
    tries = 0
    while True:
        try:
            return await start()
        except OperationalError as exc:
            if not _locked(exc) or waited >= busy_wait:
                raise
        delay = LOCK_RETRY_DELAYS[tries] if tries < len(LOCK_RETRY_DELAYS) else 0.1
        delay = min(delay, busy_wait - waited)
        tries += 1
        await asyncio.sleep(delay)
        waited += delay


def _locked(exc: OperationalError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    return (
        isinstance(orig, sqlite3.OperationalError)
        and code is not None
        and (code & 0xFF == sqlite3.SQLITE_BUSY)
    )
