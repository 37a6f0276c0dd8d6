"""aiosqlite connections that leave nothing behind when they fail to open.

aiosqlite (0.22) stops the thread of a failed connect with a job whose answer
goes to the event loop, and does not wait for it. When the loop closed first (a
command whose SQLite source or registry could not be opened, a test), the thread
died on "Event loop is closed" and printed its traceback, after the command's own
error. The engines of SQLite sources and of custview's own SQLite database make
their connections through :func:`aiosqlite_creator` (SQLAlchemy's
``async_creator``), which waits for that thread before the failure is raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from threading import Thread

import aiosqlite
from sqlalchemy.engine import URL

STOP_WAIT = 0.5
"""Seconds at most that a failed connect waits for its thread to end (the stop job
is next in the thread's queue: it ends at once)."""


def aiosqlite_creator(url: URL) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """aiosqlite's connect as SQLAlchemy's dialect makes it for ``url`` (the same
    file, URI and options, a daemon thread), except that one that fails returns
    only once its thread has ended. A cancelled connect does not wait: the thread
    may still be opening the file, and a timeout or a deadline ends at once."""
    args, kwargs = url.get_dialect()().create_connect_args(url)

    async def connect() -> aiosqlite.Connection:
        connection = aiosqlite.connect(*args, **kwargs)
        # before 0.22 the connection was its own thread
        worker = connection if isinstance(connection, Thread) else connection._thread
        worker.daemon = True  # a connection nobody closed does not hold the exit
        try:
            return await connection
        except Exception:
            # The thread has answered the connect and has only its stop job left
            # (microseconds), whose answer it hands to the loop. Waited for here
            # without blocking the loop: where other threads hold the GIL, a
            # join on the loop's thread stalled every request for its whole wait.
            await _ended(worker)
            raise

    return connect


async def _ended(worker: Thread) -> None:
    """Once ``worker`` has ended, or :data:`STOP_WAIT` seconds have passed; the loop
    runs meanwhile."""
    deadline = time.monotonic() + STOP_WAIT
    while worker.is_alive() and time.monotonic() < deadline:  # noqa: ASYNC110 (no event tells a thread ended)
        await asyncio.sleep(0.001)
