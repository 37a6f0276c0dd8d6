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
timeout (:mod:`connectors.sql.locks`; the direct path tries again on the
connection's thread): a timeout, the request's deadline or a cancel ends the
wait at once. The tries again pass the read-only guard but are not counted again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import await_only

from connectors.sql.direct import ABANDON_STEPS
from connectors.sql.engine import retrying
from connectors.sql.locks import lock_waits, locked

T = TypeVar("T")
_WATCH = "custview.watch"
"""The key of a connection's :class:`Watch` in its pool entry's ``info``."""
_BUSY_WAIT = "custview.busy_wait"
"""The key of a connection's own busy timeout (seconds) in its pool entry's ``info``."""


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
            # A statement SQLite runs as one step (a whole-table count(*)) never
            # reaches the progress handler; interrupt() stops it (a no-op when
            # none runs), so the close behind it does not hold the caller.
            driver = context.connection.connection.driver_connection
            if driver is not None:
                await_only(driver.interrupt())


def ready_watch(conn: AsyncConnection) -> Watch | None:
    """``conn``'s watch, or None when :func:`new_watch` must set one up first."""
    watch: Watch | None = conn.info.get(_WATCH)
    return None if watch is None or watch.left else watch


async def new_watch(conn: AsyncConnection) -> Watch:
    """A watch for ``conn``, on its first use or after a caller left (the new handler
    is queued after the abandoned statement, which still sees its own).

    The connection's own busy timeout is kept in its pool entry before SQLite's is
    set to 0, so a setup cut short by a cancel (the hops run all the same) leaves
    the next one knowing how long to wait for a writer's lock."""
    driver = (await conn.get_raw_connection()).driver_connection  # aiosqlite's
    if driver is None:
        raise RuntimeError("the SQLite connection is closed")
    busy_wait: float | None = conn.info.get(_BUSY_WAIT)
    if busy_wait is None:
        ((busy_ms,),) = await driver.execute_fetchall("PRAGMA busy_timeout")
        busy_wait = conn.info[_BUSY_WAIT] = busy_ms / 1000
        await driver.execute_fetchall("PRAGMA busy_timeout = 0")
    watch = Watch(busy_wait)
    await driver.set_progress_handler(watch.abandoned, ABANDON_STEPS)
    conn.info[_WATCH] = watch
    return watch


async def waiting_for_locks(start: Callable[[], Awaitable[T]], busy_wait: float) -> T:
    """``start()``, tried again while the file is locked, for at most ``busy_wait``
    seconds of sleeps on the loop (:mod:`connectors.sql.locks`); the tries again are
    counted as the first one's (:func:`~connectors.sql.engine.retrying`)."""
    waits: Iterator[float] | None = None
    with ExitStack() as tries_again:
        while True:
            try:
                return await start()
            except OperationalError as exc:
                if not locked(exc):
                    raise
                if waits is None:
                    waits = lock_waits(busy_wait)
                    tries_again.enter_context(retrying())
                delay = next(waits, None)
                if delay is None:
                    raise
            await asyncio.sleep(delay)
