"""SQLite through SQLAlchemy's engine (``sqlite_direct: false``): a statement stops
once its caller leaves, even one still waiting for aiosqlite's thread, and a
locked file is waited for on the loop, within the caller's timeout."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from connectors import Aggregate, Connector, ScanRequest
from connectors.deadline import deadline_scope
from connectors.errors import DeadlineExceeded, SourceTimeout, SourceUnavailable
from connectors.observe import ObservedConnector, observing
from connectors.sql import SQLConnector, SQLOptions
from connectors.sql.engine_sqlite import new_watch

COUNTING = 1_000_000


@pytest.fixture()
def database(tmp_path: Path) -> Path:
    path = tmp_path / "people.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        setup.executemany("INSERT INTO people VALUES (?, ?)", [(i, f"n{i}") for i in range(9)])
        setup.execute(  # every row read through counted(): how far a statement got
            "CREATE VIEW counting AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL "
            f"SELECT n + 1 FROM c WHERE n < {COUNTING}) SELECT counted(n) AS x FROM c"
        )
    return path


def engine_path(path: Path, timeout: float, query: str = "") -> SQLConnector:
    url = f"sqlite+aiosqlite:///{path}{query}"
    options = SQLOptions(url=url, timeout=timeout, pool_size=1, max_overflow=0)
    return SQLConnector("people_db", options.model_copy(update={"sqlite_direct": False}))


class Counted:
    """counted(n) on the pooled connection: the last n it read."""

    def __init__(self) -> None:
        self.read = 0
        self.running = threading.Event()

    def __call__(self, n: int) -> int:
        self.read = n
        if n == 1000:
            self.running.set()
        return n


async def counted_on_its_connection(connector: SQLConnector) -> Counted:
    assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
    counted = Counted()
    async with connector.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.create_function("counted", 1, counted)
    return counted


@pytest.fixture()
async def connector(database: Path) -> AsyncIterator[SQLConnector]:
    connector = engine_path(database, timeout=30)
    yield connector
    await connector.aclose()


async def test_a_cancelled_callers_statement_is_stopped(connector: SQLConnector) -> None:
    counted = await counted_on_its_connection(connector)
    caller = asyncio.create_task(connector.lookup_many("counting", "x", [0], ["x"]))
    assert await asyncio.to_thread(counted.running.wait, 10)  # on aiosqlite's thread
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert counted.read < COUNTING, "the statement stopped before its end"
    assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]


async def test_a_statement_abandoned_before_it_started_is_stopped(
    connector: SQLConnector,
) -> None:
    """``interrupt()`` stops only a running statement: one whose caller gave up while
    it waited behind another job on aiosqlite's thread must still stop."""
    counted = await counted_on_its_connection(connector)
    picked, go = threading.Event(), threading.Event()

    def held() -> None:  # a job ahead of the statement on the connection's thread
        picked.set()
        go.wait(10)

    def hold(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "counting" in statement:  # queued just before the statement's execute
            conn.connection.driver_connection._tx.put_nowait((None, held))

    event.listen(connector.engine.sync_engine, "before_cursor_execute", hold)
    caller = asyncio.create_task(connector.lookup_many("counting", "x", [0], ["x"]))
    assert await asyncio.to_thread(picked.wait, 10)
    await asyncio.sleep(0.05)  # the caller's execute is queued behind the held job
    caller.cancel()
    await asyncio.sleep(0.05)
    go.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    event.remove(connector.engine.sync_engine, "before_cursor_execute", hold)
    assert counted.read < COUNTING, "the statement stopped before its end"
    assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]


async def test_a_locked_file_is_waited_for_within_the_callers_timeout(database: Path) -> None:
    """sqlite3's busy wait honours neither the progress handler nor ``interrupt()``:
    with a 30 s busy timeout, a 0.3 s timeout used to answer after 30 s."""
    connector = engine_path(database, timeout=0.3, query="?timeout=30")
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
        writer.execute("BEGIN EXCLUSIVE")
        async with asyncio.timeout(10):  # a hang guard: the busy wait took 30
            with pytest.raises(SourceTimeout):
                await connector.lookup_many("people", "id", [2], ["id"])
        writer.execute("ROLLBACK")
        assert await connector.lookup_many("people", "id", [3], ["id"]) == [[{"id": 3}]]
    finally:
        writer.close()
        await connector.aclose()


async def read_people(connector: Connector, how: str) -> int:
    if how == "lookup":
        return len((await connector.lookup_many("people", "id", [2], ["id"]))[0])
    return len([row async for row in connector.scan(ScanRequest("people", ["id"]))])


@pytest.mark.parametrize(("how", "found"), [("lookup", 1), ("scan", 9)])
async def test_a_lock_released_within_the_busy_timeout_is_waited_for(
    database: Path, how: str, found: int
) -> None:
    """Tried again from the loop until the writer is gone: the tries pass through the
    engine's listeners (the read-only guard checks each), but the statement is counted,
    and shown in explain's plan, once."""
    connector = engine_path(database, timeout=5)
    writer = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    tries: list[str] = []

    def tried(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        tries.append(statement)

    try:
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
        event.listen(connector.engine.sync_engine, "before_cursor_execute", tried)
        writer.execute("BEGIN EXCLUSIVE")
        sent = connector.statements
        asyncio.get_running_loop().call_later(0.2, writer.execute, "ROLLBACK")
        with observing() as observer:
            assert await read_people(ObservedConnector(connector), how) == found
        assert len(tries) > 1, "tried again while the file was locked"
        assert connector.statements == sent + 1, "counted once"
        assert [len(call.sent) for call in observer.calls] == [1], "shown once"
    finally:
        writer.close()
        await connector.aclose()


async def test_health_waits_for_a_lock_released_within_the_busy_timeout(database: Path) -> None:
    """A pooled connection runs with SQLite's busy timeout at 0 (the loop waits):
    health's table check on it waits for a writer's lock like a lookup does,
    rather than reporting the source down."""
    connector = engine_path(database, timeout=5)
    writer = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    try:
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
        writer.execute("BEGIN EXCLUSIVE")
        asyncio.get_running_loop().call_later(0.2, writer.execute, "ROLLBACK")
        health = await connector.health(["people", "nothing"])
        assert (health.ok, health.tables) == (True, {"people": True, "nothing": False})
    finally:
        writer.close()
        await connector.aclose()


async def test_a_setup_cut_short_keeps_the_connections_busy_timeout(database: Path) -> None:
    """new_watch's hops run on aiosqlite's thread even when its caller is cancelled:
    cut short right after SQLite's busy timeout was set to 0, the next setup still
    waits for locks within the connection's own 7 s, not 0."""
    connector = engine_path(database, timeout=5, query="?timeout=7")
    loop = asyncio.get_running_loop()
    try:
        async with connector.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            setup: asyncio.Task[Any] | None = None

            def trace(statement: str) -> None:  # on aiosqlite's thread, as it starts
                if statement == "PRAGMA busy_timeout = 0" and setup is not None:
                    loop.call_soon_threadsafe(setup.cancel)

            await driver.set_trace_callback(trace)
            setup = asyncio.create_task(new_watch(conn))
            with pytest.raises(asyncio.CancelledError):
                await setup
            await driver.set_trace_callback(None)
            assert await driver.execute_fetchall("PRAGMA busy_timeout") == [(0,)]
            assert (await new_watch(conn)).busy_wait == 7
    finally:
        await connector.aclose()


async def test_a_timed_out_count_is_interrupted(tmp_path: Path) -> None:
    """A whole-table count(*) is one step of SQLite's: the progress handler never
    runs inside it, interrupt() stops it. Its caller's timeout ends the wait, not
    the count (measured against the same count run to its end, in this test)."""
    path = tmp_path / "many.db"
    with sqlite3.connect(path) as setup:  # small pages: a count visits each of them
        setup.execute("PRAGMA page_size = 512")
        setup.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, pad BLOB)")
        setup.execute(
            "INSERT INTO people (pad) SELECT zeroblob(200) FROM (WITH RECURSIVE "
            "c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 300000) SELECT n FROM c)"
        )
    counting = [Aggregate("count", alias="n")]
    connector = engine_path(path, timeout=30)
    try:
        assert await connector.aggregate("people", [], counting) == [{"n": 300_000}]
        started = time.perf_counter()
        assert await connector.aggregate("people", [], counting) == [{"n": 300_000}]
        counted = time.perf_counter() - started
        started = time.perf_counter()
        with deadline_scope(0.005), pytest.raises(DeadlineExceeded):
            await connector.aggregate("people", [], counting)
        waited = time.perf_counter() - started
        assert waited < counted / 2, f"waited {waited:.3f} s for a {counted:.3f} s count"
    finally:
        await connector.aclose()


@pytest.mark.parametrize("direct", [False, True], ids=["engine", "direct"])
async def test_a_lookup_failing_on_a_held_lock_is_not_explained_by_introspection(
    database: Path, direct: bool
) -> None:
    """A locked file is no schema error: the lookup fails after the connection's busy
    timeout, without a table introspection that waits for the same lock again."""
    url = f"sqlite+aiosqlite:///{database}?timeout=0.3"
    options = SQLOptions(url=url, timeout=30, sqlite_direct=direct)
    connector = SQLConnector("people_db", options)
    writer = sqlite3.connect(database, isolation_level=None)
    introspected: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "sqlite_master" in statement or statement.startswith("PRAGMA main.table"):
            introspected.append(statement)

    event.listen(connector.engine.sync_engine, "before_cursor_execute", seen)
    try:
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
        writer.execute("BEGIN EXCLUSIVE")
        async with asyncio.timeout(10):
            with pytest.raises(SourceUnavailable, match="locked"):
                await connector.lookup_many("people", "id", [2], ["id"])
        assert introspected == []
    finally:
        writer.close()
        await connector.aclose()
