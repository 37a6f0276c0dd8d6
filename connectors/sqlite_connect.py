"""aiosqlite connections that leave nothing behind when they fail to open.

aiosqlite (0.22) stops the thread of a failed connect with a job whose answer
goes to the event loop, and does not wait for it. When the loop closed first (a
command whose SQLite source or registry could not be opened, a test), the thread
died on "Event loop is closed" and printed its traceback, after the command's own
error. The engines of SQLite sources and of custview's own SQLite database make
their connections through :func:`connect` (:func:`open_with`), which waits for
that thread before the failure is raised.

Both also say what is wrong with a file that cannot be opened when its path says
so (:func:`unopenable`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from threading import Thread
from typing import Any
from urllib.parse import unquote

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

STOP_WAIT = 0.5
"""Seconds at most that a failed connect waits for its thread to end (the stop job
is next in the thread's queue: it ends at once)."""


def unopenable(file: Path, setting: str, *, created: bool) -> str:
    """Why the SQLite ``file`` (:func:`named_file`) cannot be opened, when its path
    alone says so, else ``""``: a folder where the file should be; a file custview
    never creates (``created`` false) that does not exist; for one it creates, a
    folder that does not exist (named: the operator's own path). ``setting`` names
    the URL for the advice."""
    try:
        if file.is_dir():
            return f"it is a folder, not a database file; set {setting} to the file"
        if not created and not file.exists():
            return "it does not exist; custview never creates it"
        folder = file.resolve().parent
        if created and not folder.is_dir():
            return f"its folder {folder} does not exist; create the folder or set {setting}"
    except OSError:  # a directory it may not search: nothing known
        pass
    return ""


def named_file(url: URL) -> Path | None:
    """The file a SQLite URL names (a ``file:`` URI's path decoded); ``None`` for
    another database or one in memory."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database.startswith("file:"):
        path, _, query = database[len("file:") :].partition("?")
        if "mode=memory" in query.split("&") or url.query.get("mode") == "memory":
            return None
        if path.startswith("//"):  # an authority: SQLite takes none but localhost
            authority, slash, rest = path[2:].partition("/")
            if authority not in ("", "localhost"):
                return None  # SQLite refuses it in words of its own
            path = slash + rest
        database = unquote(path)
    if database in ("", ":memory:"):
        return None
    return Path(database)


def open_with(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` (an aiosqlite one), its connections made by :func:`connect` with
    the file, URI and options its dialect made from its URL when it was created.
    (SQLAlchemy's ``async_creator`` leaves those out: making them again for it
    warned twice about a URL option the driver ignores.)"""
    event.listen(engine.sync_engine, "do_connect", _connect_args)
    return engine


def _connect_args(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    # how create_async_engine(async_creator=...) hands aiosqlite's adapter a creator,
    # here given the arguments instead of made without them
    cparams["async_creator_fn"] = connect


async def connect(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
    """aiosqlite's connect as SQLAlchemy's dialect makes it (a daemon thread),
    except that one that fails returns only once its thread has ended. A cancelled
    connect does not wait: the thread may still be opening the file, and a timeout
    or a deadline ends at once."""
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


async def _ended(worker: Thread) -> None:
    """Once ``worker`` has ended, or :data:`STOP_WAIT` seconds have passed; the loop
    runs meanwhile."""
    deadline = time.monotonic() + STOP_WAIT
    while worker.is_alive() and time.monotonic() < deadline:  # noqa: ASYNC110 (no event tells a thread ended)
        await asyncio.sleep(0.001)
