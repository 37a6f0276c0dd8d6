"""The direct SQLite path answers exactly as SQLAlchemy's async engine does,
behind the same guards, and keeps its pool healthy."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update

from connectors import (
    Aggregate,
    Filter,
    KeyLookup,
    QueryError,
    ReadOnlyViolation,
    ScanRequest,
    Sort,
)
from connectors.deadline import deadline_scope
from connectors.errors import DeadlineExceeded, SourceTimeout
from connectors.request_id import request_id_scope
from connectors.sql import SQLConnector, SQLOptions, inline, statements
from connectors.sql import direct as direct_module
from connectors.sql.compiled import bucket
from tests.connectors.sql_fixtures import ROWS, create_people_database, people
from tests.support.loop import loop_gaps

COLUMNS = ["id", "email", "phone", "name", "country", "score", "created_at"]


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("direct") / "people.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(create_people_database(url))
    return url


@pytest.fixture()
async def pair(sqlite_url: str) -> AsyncIterator[tuple[SQLConnector, SQLConnector]]:
    """The same source through the direct path and through SQLAlchemy's engine."""
    direct = SQLConnector("people_db", SQLOptions(url=sqlite_url, timeout=5))
    engine = SQLConnector("people_db", SQLOptions(url=sqlite_url, timeout=5, sqlite_direct=False))
    yield direct, engine
    await direct.aclose()
    await engine.aclose()


def pooled_by_sqlalchemy(connector: SQLConnector) -> int:
    return int(connector.engine.sync_engine.pool.checkedin())


async def test_sqlite_sources_take_the_direct_path_by_default(
    pair: tuple[SQLConnector, SQLConnector], sqlite_url: str
) -> None:
    direct, engine = pair
    echoing = SQLConnector("people_db", SQLOptions(url=sqlite_url, echo=True))
    try:
        for connector in (direct, engine, echoing):
            await connector.lookup_many("people", "id", [1], ["id"])
        assert pooled_by_sqlalchemy(direct) == 0, "SQLAlchemy's pool is never used"
        assert pooled_by_sqlalchemy(engine) == 1
        assert pooled_by_sqlalchemy(echoing) == 1, "echo logs through SQLAlchemy's engine"
    finally:
        await echoing.aclose()


@pytest.mark.parametrize("count", [1, 5, 9, 13, 40])
@pytest.mark.parametrize(
    ("column", "transform", "key"),
    [
        ("id", "exact", lambda i: i),
        ("email", "casefold", lambda i: f"user{i}@example.com"),
        ("phone", "digits", lambda i: f"1555010{i:04d}"),
    ],
)
async def test_lookups_answer_as_through_the_engine(
    pair: tuple[SQLConnector, SQLConnector], count: int, column: str, transform: Any, key: Any
) -> None:
    direct, engine = pair
    keys = [key(i) for i in range(count)] + [key(1), None, key(99)]  # a repeat, a null, a miss
    args = ("people", column, keys, COLUMNS, transform)
    answer = await direct.lookup_many(*args)
    assert answer == await engine.lookup_many(*args)
    assert sum(map(len, answer)) >= min(count, 3)


async def test_lookups_of_several_columns_answer_as_through_the_engine(
    pair: tuple[SQLConnector, SQLConnector],
) -> None:
    direct, engine = pair
    lookups = [
        KeyLookup("email", [f"USER{i}@example.com" for i in range(1, 12)], "casefold"),
        KeyLookup("phone", ["15550100003", "15550100004"], "digits"),
        KeyLookup("id", [40, 41, 3], "exact"),
    ]
    answer = await direct.lookup_many_columns("people", lookups, COLUMNS)
    assert answer == await engine.lookup_many_columns("people", lookups, COLUMNS)
    assert direct.statements == engine.statements == 1


SCANS = [
    ScanRequest("people", COLUMNS, [Filter("score", "ge", Decimal("30"))], [Sort("id")]),
    ScanRequest(
        "people",
        COLUMNS,
        [Filter("created_at", "gt", dt.datetime(2024, 1, 1, 10))],
        [Sort("created_at", descending=True), Sort("id")],
        limit=7,
    ),
    ScanRequest(
        "people",
        ["id", "name"],
        [Filter("name", "contains", "% real_"), Filter("country", "is_null", False)],
    ),
    ScanRequest("people", ["id"], [Filter("id", "in", list(range(3, 30)))], [Sort("id")]),
    ScanRequest(
        "people", ["id", "country"], [], [Sort("country"), Sort("id")], after=("DE", 12), limit=9
    ),
]


@pytest.mark.parametrize("request_", SCANS)
async def test_scans_answer_as_through_the_engine(
    pair: tuple[SQLConnector, SQLConnector], request_: ScanRequest
) -> None:
    direct, engine = pair
    rows = [r async for r in direct.scan(request_)]
    assert rows == [r async for r in engine.scan(request_)]
    assert rows


async def test_keyset_pages_bind_their_values_into_one_statement(
    pair: tuple[SQLConnector, SQLConnector],
) -> None:
    """Consecutive pages (new cursor, new limit, new filter value) answer as through
    the engine, and the direct path sends them as one SQL text: the statement is
    built once per shape and each page only binds its values."""
    direct, engine = pair
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append(statement)

    event.listen(direct.engine.sync_engine, "after_cursor_execute", record)
    after: tuple[Any, ...] | None = None
    seen: list[Any] = []
    for page, limit in enumerate((5, 7, 6)):
        request = ScanRequest(
            "people",
            ["id", "country", "score"],
            [Filter("score", "ge", Decimal(str(10 + page)))],
            [Sort("score", descending=True), Sort("id")],
            limit=limit,
            after=after,
        )
        rows = [r async for r in direct.scan(request)]
        assert rows == [r async for r in engine.scan(request)]
        assert len(rows) == limit
        seen += [r["id"] for r in rows]
        after = (rows[-1]["score"], rows[-1]["id"])
    assert len(set(seen)) == len(seen), "each page continues after the last"
    assert len(sent) == 3
    assert sent[1] == sent[2], "the second and third pages share the first cursor page's SQL"


async def test_aggregates_answer_as_through_the_engine(
    pair: tuple[SQLConnector, SQLConnector],
) -> None:
    direct, engine = pair
    args: Any = (
        "people",
        ["country"],
        [Aggregate("count"), Aggregate("sum", "score"), Aggregate("max", "created_at")],
        [Filter("id", "in", list(range(1, 40)))],
    )
    answer = await direct.aggregate(*args)
    assert answer == await engine.aggregate(*args)
    assert sum(r["count"] for r in answer) == 39


async def test_grouped_aggregates_bind_their_keys_into_one_statement(
    pair: tuple[SQLConnector, SQLConnector],
) -> None:
    """A metric's grouped aggregate over other keys (and other filter values) answers
    as through the engine, and the direct path sends one SQL text per key bucket:
    the statement is built once per shape and each call only binds its values."""
    direct, engine = pair
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append(statement)

    event.listen(direct.engine.sync_engine, "after_cursor_execute", record)
    built: list[Any] = []
    for start, since in ((1, 2023), (11, 2024), (21, 2025)):
        args: Any = (
            "people",
            ["id"],
            [Aggregate("count", alias="n"), Aggregate("sum", "score", alias="s")],
            [
                Filter("id", "in", list(range(start, start + 10))),
                Filter("country", "in", ["DE", "FR", "US"]),
                Filter("created_at", "ge", dt.datetime(since, 1, 1)),
                Filter("score", "is_null", False),
            ],
        )
        built.append(args)
        answer = await direct.aggregate(*args)
        assert answer == await engine.aggregate(*args)
    assert len(sent) == 3
    assert len(set(sent)) == 1, "one SQL text for every call of the shape"
    shapes = [statements.bound_aggregate(*args[:1], None, *args[1:]) for args in built]
    assert shapes[0] is not None and shapes[1] is not None
    assert shapes[0][0] is shapes[1][0], "the statement is built once per shape"
    assert shapes[0][2] != shapes[1][2], "each call binds its own values"
    odd: Any = ("people", [], [Aggregate("count", alias="n")], [Filter("name", "contains", "a")])
    assert await direct.aggregate(*odd) == await engine.aggregate(*odd)
    with pytest.raises(QueryError, match="needs a list"):
        await direct.aggregate("people", [], [Aggregate("count")], [Filter("id", "in", "1")])


async def test_key_counts_share_a_statement_per_bucket(
    pair: tuple[SQLConnector, SQLConnector],
) -> None:
    """9 to 12 keys send one SQL text (the IN list padded with the last key), so the
    driver's prepared statements and the read-only guard's verdicts are reused."""
    direct, _ = pair
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append(statement)

    event.listen(direct.engine.sync_engine, "after_cursor_execute", record)
    for count in (9, 10, 12, 13):
        groups = await direct.lookup_many("people", "id", list(range(1, count + 1)), ["id"])
        assert [g[0]["id"] for g in groups] == list(range(1, count + 1))
    assert len(set(sent[:3])) == 1
    assert sent[3] != sent[0]
    assert [bucket(n, 30_000) for n in (8, 9, 13, 17, 25, 33, 49)] == [8, 12, 16, 24, 32, 48, 64]
    assert bucket(29_000, 30_000) == 29_000, "never padded past the engine's limit"


async def test_a_write_never_reaches_the_driver_on_the_direct_path(
    pair: tuple[SQLConnector, SQLConnector],
) -> None:
    direct, _ = pair
    assert direct._direct is not None
    session = await direct._direct.acquire()
    try:
        with pytest.raises(ReadOnlyViolation):
            await session.all(update(people).values(name="x").where(people.c.id == 1))
    finally:
        direct._direct.release(session)
    assert direct.statements == 0
    assert (await direct.lookup_many("people", "id", [1], ["name"]))[0] == [
        {"name": ROWS[0]["name"]}
    ]


async def test_an_abandoned_statement_is_interrupted(sqlite_url: str) -> None:
    """A cancelled call's statement is stopped, so the next caller of its
    connection (the only one here) does not wait for it to finish."""
    connector = SQLConnector(
        "people_db", SQLOptions(url=sqlite_url, timeout=30, pool_size=1, max_overflow=0)
    )
    try:
        slow = asyncio.create_task(connector.lookup_many("slow", "x", [1], ["x"]))
        await asyncio.sleep(0.3)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        started = time.perf_counter()
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        assert time.perf_counter() - started < 2
        assert connector.pool_usage() == (0, 1)
    finally:
        await connector.aclose()


async def test_a_slow_lookup_times_out_and_its_statement_is_interrupted(
    sqlite_url: str,
) -> None:
    """The direct path bounds a lookup by the source's ``timeout`` (one timer for the
    pool's statements in flight): the caller gets SOURCE_TIMEOUT, the statement
    is stopped, and its connection serves the next caller at once."""
    connector = SQLConnector(
        "people_db", SQLOptions(url=sqlite_url, timeout=0.3, pool_size=1, max_overflow=0)
    )
    try:
        started = time.perf_counter()
        with pytest.raises(SourceTimeout) as info:
            await connector.lookup_many("slow", "x", [1], ["x"])
        assert not isinstance(info.value, DeadlineExceeded)
        assert info.value.source == "people_db"
        assert 0.25 < time.perf_counter() - started < 1.5
        # lookups that end in time are not cut by the timer set for the slow one
        for i in range(1, 4):
            assert await connector.lookup_many("people", "id", [i], ["id"]) == [[{"id": i}]]
        await asyncio.sleep(0.4)
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        assert time.perf_counter() - started < 2.5
        assert connector.pool_usage() == (0, 1)
    finally:
        await connector.aclose()


async def test_the_request_deadline_cuts_a_direct_lookup(sqlite_url: str) -> None:
    """Inside a deadline shorter than the timeout, a slow lookup ends at the
    deadline with DeadlineExceeded (not counted against the source); one asked
    once the deadline has passed is not sent at all."""
    connector = SQLConnector("people_db", SQLOptions(url=sqlite_url, timeout=30, pool_size=1))
    try:
        with deadline_scope(0.3):
            started = time.perf_counter()
            with pytest.raises(DeadlineExceeded) as info:
                await connector.lookup_many("slow", "x", [1], ["x"])
            assert "deadline" in info.value.message
            assert time.perf_counter() - started < 1.5
            sent = connector.statements
            with pytest.raises(DeadlineExceeded, match="not asked"):
                await connector.lookup_many("people", "id", [1], ["id"])
            assert connector.statements == sent
        assert await connector.lookup_many("people", "id", [3], ["id"]) == [[{"id": 3}]]
    finally:
        await connector.aclose()


async def test_callers_wait_for_a_connection_and_streams_give_theirs_back(
    sqlite_url: str,
) -> None:
    connector = SQLConnector(
        "people_db", SQLOptions(url=sqlite_url, timeout=5, pool_size=1, max_overflow=1)
    )
    try:
        stream = connector.scan(ScanRequest("numbers", ["n"]))
        first = [await anext(stream) for _ in range(1200)]  # past a chunk of 500
        assert [r["n"] for r in first[-2:]] == [1199, 1200]
        assert connector.pool_usage() == (1, 2)
        answers = await asyncio.gather(
            *(connector.lookup_many("people", "id", [i], ["id"]) for i in range(1, 6))
        )
        assert [a[0][0]["id"] for a in answers] == [1, 2, 3, 4, 5]
        await stream.aclose()
        assert connector.pool_usage() == (0, 2)
    finally:
        await connector.aclose()


async def test_a_caller_cancelled_while_waiting_for_a_connection_is_cancelled(
    sqlite_url: str,
) -> None:
    """Cancelled while it waits for the pool's one connection, which comes back
    before the caller runs again: the caller ends cancelled (not a ValueError that
    the circuit breaker would count against the source) and leaves no waiter."""
    connector = SQLConnector(
        "people_db", SQLOptions(url=sqlite_url, timeout=5, pool_size=1, max_overflow=0)
    )
    try:
        await connector.lookup_many("people", "id", [1], ["id"])  # the one connection
        async with connector._connection("people", ["id"]):  # held
            waiting = asyncio.create_task(connector.lookup_many("people", "id", [2], ["id"]))
            for _ in range(3):
                await asyncio.sleep(0)
            waiting.cancel()
        # released before the cancelled caller ran again: its waiter was passed over
        with pytest.raises(asyncio.CancelledError):
            await waiting
        direct = connector._direct
        assert direct is not None
        assert (direct._lent, len(direct._waiters)) == (0, 0)
        found = await connector.lookup_many("people", "id", [2], ["id"])
        assert found[0][0]["id"] == 2
    finally:
        await connector.aclose()


async def test_overflow_connections_are_reused_while_crowded_then_closed(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``pool_size`` a returned connection stays open for the next caller
    (no thread and connection per statement under steady load) and closes once
    the pool has not been crowded for OVERFLOW_LINGER seconds."""
    connector = SQLConnector(
        "people_db", SQLOptions(url=sqlite_url, timeout=5, pool_size=1, max_overflow=2)
    )
    pool = connector._direct
    assert pool is not None
    try:
        sessions = [await pool.acquire() for _ in range(3)]
        workers = {s.worker for s in sessions}
        for session in sessions:
            pool.release(session)
        assert pool._open == 3  # the two overflow connections wait for the next crowd
        again = [await pool.acquire() for _ in range(3)]
        assert {s.worker for s in again} == workers  # reused, none opened
        for session in again:
            pool.release(session)
        monkeypatch.setattr(direct_module, "OVERFLOW_LINGER", 0.0)
        pool._trim_overflow()
        assert pool._open == 1 and len(pool._idle) == 1
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
    finally:
        await connector.aclose()


async def test_a_statement_abandoned_before_it_started_never_runs(sqlite_url: str) -> None:
    """An interrupt stops only a running statement: one whose caller gave up while it
    still waited for the connection's thread is dropped, not run for nobody."""
    connector = SQLConnector(
        "people_db", SQLOptions(url=sqlite_url, timeout=30, pool_size=1, max_overflow=0)
    )
    try:
        assert connector._direct is not None
        session = await connector._direct.acquire()
        ran: list[int] = []
        connection = session.worker.connection
        assert connection is not None
        connection.create_function("mark", 1, lambda n: ran.append(n) or n)
        session.worker.post(lambda: time.sleep(0.5))  # the thread is busy meanwhile
        waiting = asyncio.create_task(session._call(lambda: connection.execute("SELECT mark(1)")))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        connector._direct.release(session)
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        assert ran == [], "the abandoned statement was never run"
        assert connector.pool_usage() == (0, 1)
    finally:
        await connector.aclose()


@pytest.mark.parametrize("inline_first", [False, True])
async def test_a_statement_abandoned_as_its_thread_picked_it_up_is_stopped(
    sqlite_url: str, inline_first: bool
) -> None:
    """``interrupt()`` does nothing while no statement runs: a caller that gives up
    after the thread took its job but before SQLite started the statement must
    still stop it (an export's scan must not run on for nobody), also right after
    the loop ran a statement inline on the connection, and the connection answers
    the next caller."""
    budget = 0.002 if inline_first else 0.0
    connector = SQLConnector(
        "people_db",
        SQLOptions(
            url=sqlite_url, timeout=30, pool_size=1, max_overflow=0, sqlite_inline_budget=budget
        ),
    )
    try:
        assert connector._direct is not None
        if inline_first:  # the inline budget's progress handler, then the thread's job
            assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
            assert not connector._direct._idle[0].watched
        session = await connector._direct.acquire()
        worker, connection = session.worker, session.worker.connection
        assert connection is not None
        read = [0]
        connection.create_function("counted", 1, lambda n: read.__setitem__(0, n) or n)
        picked, go = threading.Event(), threading.Event()
        before = worker._before

        def held() -> None:  # between the thread's pickup of the job and its execute
            before()
            picked.set()
            go.wait(10)

        worker._before = held  # type: ignore[method-assign]
        failed: list[str] = []
        sql = (
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
            "WHERE n < 1000000) SELECT max(counted(n)) FROM c"
        )

        def scan() -> list[Any]:
            try:
                return inline.fetch_all(connection, sql, ())
            except sqlite3.OperationalError as exc:
                failed.append(str(exc))
                raise

        caller = asyncio.create_task(session._call(scan))
        assert await asyncio.to_thread(picked.wait, 10)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        connector._direct.release(session)  # interrupts: no statement is running yet
        del worker._before
        go.set()
        await thread_idle(connector)
        assert failed == ["interrupted"]
        assert read[0] < 1_000_000, "the statement stopped before its end"
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        assert connector.pool_usage() == (0, 1)
    finally:
        await connector.aclose()


async def thread_idle(connector: SQLConnector) -> None:
    """Until the pooled connections' threads have nothing queued or running."""
    assert connector._direct is not None
    for _ in range(500):
        if all(worker.idle() for worker in connector._direct._idle):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a connection's thread stayed busy")


@pytest.fixture()
def ran_on(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread that ran each statement of the direct path, in order."""
    ran: list[int] = []
    original = inline.fetch_all

    def fetch(connection: Any, sql: str, args: Any) -> list[Any]:
        ran.append(threading.get_ident())
        return original(connection, sql, args)

    monkeypatch.setattr(inline, "fetch_all", fetch)
    return ran


async def test_short_statements_run_on_the_loops_thread(
    pair: tuple[SQLConnector, SQLConnector], ran_on: list[int]
) -> None:
    """No thread hop for a statement that ends within the inline budget; the same
    answer, and the engine's listeners still count it."""
    direct, engine = pair
    args: Any = ("people", "email", ["USER3@example.com", "user4@example.com"], COLUMNS, "casefold")
    assert await direct.lookup_many(*args) == await engine.lookup_many(*args)
    assert ran_on == [threading.get_ident()]
    assert direct.statements == 1


async def test_an_inline_budget_of_zero_sends_every_statement_to_the_thread(
    sqlite_url: str, ran_on: list[int]
) -> None:
    connector = SQLConnector("people_db", SQLOptions(url=sqlite_url, sqlite_inline_budget=0))
    try:
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        assert len(ran_on) == 1 and ran_on[0] != threading.get_ident()
    finally:
        await connector.aclose()


async def test_a_statement_past_the_inline_budget_moves_to_the_thread(
    sqlite_url: str, ran_on: list[int]
) -> None:
    """A long statement holds the loop for about the budget only: it is stopped,
    run on its connection's thread (still bounded by the timeout and
    interrupted), and its next runs go to the thread directly."""
    connector = SQLConnector(
        "people_db", SQLOptions(url=sqlite_url, timeout=0.3, pool_size=1, max_overflow=0)
    )
    me = threading.get_ident()
    assert connector._direct is not None
    try:
        async with loop_gaps(0.002) as gaps:
            # a run the machine paused (under half the budget of CPU) is not marked:
            # on a busy machine the first runs may be such
            for _ in range(5):
                with pytest.raises(SourceTimeout):
                    await connector.lookup_many("slow", "x", [1], ["x"])
                assert ran_on[-1] != me
                await thread_idle(connector)  # so only the slow mark keeps it off the loop
                if connector._direct.slow:
                    break
            tried = len(ran_on)
            with pytest.raises(SourceTimeout):
                await connector.lookup_many("slow", "x", [1], ["x"])
            await thread_idle(connector)
        assert ran_on[0] == me, "the first run was tried inline"
        assert len(ran_on) == tried + 1 and ran_on[-1] != me, "the next went to the thread"
        assert max(gaps) < 0.1, "the loop was never held for the statement"
        await asyncio.sleep(0.1)  # the interrupted statement's thread is idle again
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        assert ran_on[-1] == me, "a short statement still runs inline"
        assert connector.pool_usage() == (0, 1)
    finally:
        await connector.aclose()


def stopped_after(cpu_seconds: float) -> Any:
    """``inline.fetch_within`` stopped after ``cpu_seconds`` of CPU."""

    def stopped(*args: Any) -> Any:
        until = time.thread_time() + cpu_seconds
        while time.thread_time() < until:
            pass
        return None, True

    return stopped


async def test_a_statement_the_machine_paused_is_not_marked_slow(
    sqlite_url: str, ran_on: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped by the clock with under its budget used in CPU time, the process was
    descheduled (or the GIL was with other threads), not the statement long: this
    run goes to the thread, and the next is tried on the loop again."""
    connector = SQLConnector("people_db", SQLOptions(url=sqlite_url, pool_size=1))
    assert connector._direct is not None
    fetch_within = inline.fetch_within
    try:
        monkeypatch.setattr(inline, "fetch_within", stopped_after(0))
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        assert ran_on[-1] != threading.get_ident()
        assert not connector._direct.slow
        await thread_idle(connector)
        monkeypatch.setattr(inline, "fetch_within", fetch_within)
        assert await connector.lookup_many("people", "id", [3], ["id"]) == [[{"id": 3}]]
        assert ran_on[-1] == threading.get_ident(), "tried inline again"
    finally:
        await connector.aclose()


@pytest.mark.parametrize(("cpu_seconds", "marked"), [(0.002, False), (0.004, True)])
async def test_a_statement_stopped_is_marked_slow_once_it_used_its_budget_of_cpu(
    sqlite_url: str,
    ran_on: list[int],
    monkeypatch: pytest.MonkeyPatch,
    cpu_seconds: float,
    marked: bool,
) -> None:
    """Half the budget of CPU is not enough: a page's stitching lookups use about
    that on a slow machine, and were marked when the GIL's hand-offs at 10 requests
    in flight stretched them past the budget by the clock."""
    connector = SQLConnector(
        "people_db", SQLOptions(url=sqlite_url, pool_size=1, sqlite_inline_budget=0.004)
    )
    assert connector._direct is not None
    try:
        monkeypatch.setattr(inline, "fetch_within", stopped_after(cpu_seconds))
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        assert len(connector._direct.slow) == (1 if marked else 0)
    finally:
        await connector.aclose()


def _napping(tmp_path: Path) -> sqlite3.Connection:
    """A connection with ``nap(s)``, which sleeps ``s`` seconds (clock time, little
    CPU) and returns 1, and ``spin(n)``, which counts to ``n`` in Python (CPU)."""
    connection = sqlite3.connect(tmp_path / "nap.db", isolation_level=None)
    connection.create_function("nap", 1, lambda s: time.sleep(s) or 1)
    connection.create_function("spin", 1, lambda n: sum(range(n)) * 0 + 1)
    return connection


_COUNTED = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) "
    "SELECT count(*) FROM c WHERE {}"
)


def test_fetch_within_does_not_stop_a_statement_the_clock_alone_says_is_long(
    tmp_path: Path,
) -> None:
    """A statement that spends its clock time waiting, not running (here: 20 sleeps
    of 10 ms), is not stopped at the budget by the clock: only at the limit."""
    connection = _napping(tmp_path)
    try:
        sql = _COUNTED.format("x % 1000 = 0 AND nap(0.01)")
        assert inline.fetch_within(connection, sql, (), 0.05, 10.0) == ([(20,)], False)
        assert inline.fetch_within(connection, sql, (), 0.05, 0.06) == (None, True)
        assert connection.execute("SELECT 1").fetchall() == [(1,)], "still usable"
    finally:
        connection.close()


def test_fetch_within_stops_a_statement_once_it_used_its_budget_of_cpu(
    tmp_path: Path,
) -> None:
    connection = _napping(tmp_path)
    try:
        sql = _COUNTED.format("spin(20000)")  # ~0.2 s of CPU or more
        assert inline.fetch_within(connection, sql, (), 0.005, 10.0) == (None, True)
        cheap = _COUNTED.format("x % 2 = 0")
        assert inline.fetch_within(connection, cheap, (), 0.5, 10.0) == ([(10000,)], False)
    finally:
        connection.close()


async def test_the_loop_never_shares_a_connection_with_its_thread(
    sqlite_url: str, ran_on: list[int]
) -> None:
    """While the connection's thread still has work (a cursor to close, an
    interrupted statement finishing), a statement waits its turn there."""
    connector = SQLConnector("people_db", SQLOptions(url=sqlite_url, pool_size=1, max_overflow=0))
    try:
        assert connector._direct is not None
        session = await connector._direct.acquire()
        session.worker.post(lambda: time.sleep(0.2))
        started = time.perf_counter()
        rows = await session.all(select(people.c.id).where(people.c.id == 3))
        assert rows == [(3,)]
        assert time.perf_counter() - started >= 0.15, "it waited for the job before it"
        assert ran_on[0] != threading.get_ident()
        assert await session.all(select(people.c.id).where(people.c.id == 4)) == [(4,)]
        assert ran_on[1] == threading.get_ident(), "inline again once the thread is idle"
        connector._direct.release(session)
    finally:
        await connector.aclose()


async def test_the_inline_budget_is_cut_to_the_time_left(
    sqlite_url: str, ran_on: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a deadline shorter than the inline budget, a long statement run inline
    stops at the deadline (DeadlineExceeded, at once on the thread) and is not
    remembered as slow: it was the deadline that ran out, not the budget."""
    budgets: list[float] = []
    fetch_within = inline.fetch_within

    def spied(connection: Any, sql: str, args: Any, budget: float, limit: float, cpu: float) -> Any:
        budgets.append(limit)
        return fetch_within(connection, sql, args, budget, limit, cpu)

    monkeypatch.setattr(inline, "fetch_within", spied)
    connector = SQLConnector(
        "people_db",
        SQLOptions(url=sqlite_url, timeout=30, pool_size=1, sqlite_inline_budget=0.1),
    )
    assert connector._direct is not None
    # past the option's cap, so that the deadline below can be well over what a loaded
    # machine may take before the statement runs; and the connection opened first (a
    # thread hop), so that the deadline's time goes to the statement alone
    connector._direct.inline_budget = 5.0
    try:
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        budgets.clear()
        ran_on.clear()
        with deadline_scope(0.5), pytest.raises(DeadlineExceeded):
            await connector.lookup_many("slow", "x", [1], ["x"])
        assert len(budgets) == 1 and 0 < budgets[0] <= 0.5, "the limit was cut to the deadline"
        assert ran_on[0] == threading.get_ident()
        assert not connector._direct.slow
        await thread_idle(connector)  # the thread's interrupted statement ends
        assert await connector.lookup_many("people", "id", [3], ["id"]) == [[{"id": 3}]]
    finally:
        await connector.aclose()


def nine_people(path: Path) -> Path:
    """A file of its own (its lock is the test's to take): people 0 to 8."""
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        setup.executemany("INSERT INTO people VALUES (?, ?)", [(i, f"n{i}") for i in range(9)])
    return path


async def test_a_locked_file_never_holds_the_loop(tmp_path: Path, ran_on: list[int]) -> None:
    """sqlite3's busy wait does not call the progress handler: a statement run inline
    while a writer holds the file's lock fails at once and goes to the thread,
    which waits for the lock within the source's timeout, off the loop."""
    path = nine_people(tmp_path / "locked.db")
    connector = SQLConnector(
        "people_db", SQLOptions(url=f"sqlite+aiosqlite:///{path}", timeout=0.3, pool_size=1)
    )
    writer = sqlite3.connect(path, isolation_level=None)
    me = threading.get_ident()
    try:
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
        assert ran_on == [me]
        writer.execute("BEGIN EXCLUSIVE")
        started = time.perf_counter()
        async with loop_gaps() as gaps:
            with pytest.raises(SourceTimeout):
                await connector.lookup_many("people", "id", [2], ["id"])
        assert time.perf_counter() - started < 1.0, "the timeout, not the 5 s busy wait"
        assert ran_on[1] == me and ran_on[2] != me, "tried inline, then waited on the thread"
        assert max(gaps) < 1.0, "the loop was never held for the lock (5 s busy wait)"
        writer.execute("ROLLBACK")
        await thread_idle(connector)
        # the thread's next statement waits for a lock again, the loop's does not
        waiting = asyncio.create_task(connector.lookup_many("people", "id", [3], ["id"]))
        assert await waiting == [[{"id": 3}]]
        assert connector._direct is not None and not connector._direct.slow
    finally:
        writer.close()
        await connector.aclose()


async def test_the_thread_waits_for_a_lock_the_loop_gave_up_on(
    tmp_path: Path, ran_on: list[int]
) -> None:
    """A lock released within the source's timeout: the statement's answer comes
    from the thread, which waited for the lock with the connection's busy timeout."""
    path = nine_people(tmp_path / "briefly_locked.db")
    connector = SQLConnector(
        "people_db", SQLOptions(url=f"sqlite+aiosqlite:///{path}", timeout=5, pool_size=1)
    )
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
        writer.execute("BEGIN EXCLUSIVE")
        asyncio.get_running_loop().call_later(0.2, writer.execute, "ROLLBACK")
        started = time.perf_counter()
        assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
        assert time.perf_counter() - started >= 0.15, "it waited for the writer"
        assert ran_on[-1] != threading.get_ident()
    finally:
        writer.close()
        await connector.aclose()


async def test_a_shared_cache_table_lock_is_waited_for_as_a_file_lock(tmp_path: Path) -> None:
    """With ``cache=shared``, a writer of this process locks the table, not the file:
    SQLite answers SQLITE_LOCKED, not SQLITE_BUSY. Released within the source's
    timeout, it is waited for the same way (it failed the lookup at once)."""
    path = nine_people(tmp_path / "shared.db")
    # the writer opens the shared cache first: read-only connections joining it later
    # keep it writable for the writer
    writer = sqlite3.connect(
        f"file:{path}?cache=shared", uri=True, isolation_level=None, check_same_thread=False
    )
    connector = SQLConnector(
        "people_db",
        SQLOptions(url=f"sqlite+aiosqlite:///file:{path}?cache=shared&uri=true", timeout=5),
    )
    try:
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
        writer.execute("BEGIN")
        writer.execute("UPDATE people SET name = 'changed' WHERE id = 2")
        asyncio.get_running_loop().call_later(0.2, writer.execute, "ROLLBACK")
        found = await connector.lookup_many("people", "id", [2], ["id", "name"])
        assert found == [[{"id": 2, "name": "n2"}]]
    finally:
        writer.close()
        await connector.aclose()


async def tries_past(ran_on: list[int], count: int) -> None:
    """Until more than ``count`` statements were tried (the caller's hang guard
    bounds the wait)."""
    while True:
        if len(ran_on) > count:
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("leaves", ["deadline", "cancel"])
async def test_a_lookup_that_left_frees_its_connection_though_the_file_stays_locked(
    tmp_path: Path, ran_on: list[int], leaves: str
) -> None:
    """sqlite3's busy wait stops for neither the progress handler nor ``interrupt()``:
    a lookup whose caller left (its deadline, a cancel) held its connection's thread
    for the whole busy timeout (30 s here), and the next lookup waited behind it. The
    thread waits for a lock between tries of its own, which end once the caller left:
    the next lookup is tried at once, while the writer still holds the lock, and
    answers once the writer is gone."""
    path = nine_people(tmp_path / "held.db")
    url = f"sqlite+aiosqlite:///{path}?timeout=30"
    connector = SQLConnector(
        "people_db", SQLOptions(url=url, timeout=30, pool_size=1, max_overflow=0)
    )
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
        writer.execute("BEGIN EXCLUSIVE")
        async with asyncio.timeout(10):  # a hang guard: the busy wait took 30
            if leaves == "deadline":
                with deadline_scope(0.3), pytest.raises(DeadlineExceeded):
                    await connector.lookup_many("people", "id", [2], ["id"])
            else:
                tried = len(ran_on)
                left = asyncio.create_task(connector.lookup_many("people", "id", [2], ["id"]))
                await tries_past(ran_on, tried + 1)  # tried inline, then on the thread
                left.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await left
            tried = len(ran_on)
            following = asyncio.create_task(connector.lookup_many("people", "id", [3], ["id"]))
            await tries_past(ran_on, tried)  # not queued behind the abandoned lookup's wait
            writer.execute("ROLLBACK")
            assert await following == [[{"id": 3}]]
        assert connector.pool_usage() == (0, 1)
    finally:
        writer.close()
        await connector.aclose()


@pytest.mark.parametrize("how", ["lookup", "scan"])
async def test_a_lock_released_within_the_timeout_is_waited_for_and_counted_once(
    tmp_path: Path, ran_on: list[int], how: str
) -> None:
    """The connection's thread tries again while a writer holds the lock (its own busy
    timeout is 0), within the connection's busy timeout; the statement passed the
    engine's listeners once, so it is counted once."""
    path = nine_people(tmp_path / "briefly_held.db")
    connector = SQLConnector(
        "people_db",
        SQLOptions(url=f"sqlite+aiosqlite:///{path}", timeout=5, pool_size=1, max_overflow=0),
    )
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
        writer.execute("BEGIN EXCLUSIVE")
        sent, tried = connector.statements, len(ran_on)
        asyncio.get_running_loop().call_later(0.2, writer.execute, "ROLLBACK")
        if how == "lookup":
            assert await connector.lookup_many("people", "id", [2], ["id"]) == [[{"id": 2}]]
            assert len(ran_on) > tried + 2, "inline, on the thread, and again there"
        else:
            rows = [row async for row in connector.scan(ScanRequest("people", ["id"]))]
            assert len(rows) == 9
        assert connector.statements == sent + 1, "counted once"
        assert connector._direct is not None
        connection = connector._direct._idle[0].connection
        assert connection is not None
        assert connection.execute("PRAGMA busy_timeout").fetchone() == (0,)
    finally:
        writer.close()
        await connector.aclose()


async def test_a_step_sqlite_cannot_stop_marks_the_statement_slow(
    tmp_path: Path, ran_on: list[int]
) -> None:
    """Counting a whole table is one virtual-machine step: the progress handler never
    runs, so it is the CPU time past the budget that sends its next runs to the thread."""
    path = tmp_path / "counted.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, pad TEXT)")
        setup.executemany("INSERT INTO big VALUES (?, ?)", ((i, "x" * 40) for i in range(300_000)))
    connector = SQLConnector(
        "big_db",
        SQLOptions(url=f"sqlite+aiosqlite:///{path}", pool_size=1, sqlite_inline_budget=0.0002),
    )
    me = threading.get_ident()
    try:
        counts = []
        for _ in range(2):
            counts.append(await connector.aggregate("big", [], [Aggregate("count", alias="n")]))
            await thread_idle(connector)
        assert counts == [[{"n": 300_000}]] * 2
        assert ran_on == [me, ran_on[1]] and ran_on[1] != me, "inline once, then the thread"
        assert connector._direct is not None and len(connector._direct.slow) == 1
    finally:
        await connector.aclose()


async def test_a_slow_statement_is_remembered_by_its_shape_not_its_request_tag(
    sqlite_url: str, ran_on: list[int]
) -> None:
    """With the request id in every statement's text, a slow statement is still known
    on the next request: its mark is its text before the engine's listeners."""
    connector = SQLConnector(
        "people_db",
        SQLOptions(url=sqlite_url, timeout=0.2, pool_size=1, request_id_comment=True),
    )
    me = threading.get_ident()
    assert connector._direct is not None
    try:
        for attempt in range(5):  # a run the busy machine paused is not marked
            with request_id_scope(f"req-1-{attempt}"), pytest.raises(SourceTimeout):
                await connector.lookup_many("slow", "x", [1], ["x"])
            await thread_idle(connector)
            if connector._direct.slow:
                break
        tried = len(ran_on)
        with request_id_scope("req-2"), pytest.raises(SourceTimeout):
            await connector.lookup_many("slow", "x", [1], ["x"])
        await thread_idle(connector)
        assert ran_on[0] == me and ran_on[tried:] == [ran_on[-1]] and ran_on[-1] != me, (
            "the second request's run was not inline"
        )
        assert len(connector._direct.slow) == 1
    finally:
        await connector.aclose()


async def test_a_subclass_that_changes_the_capabilities_is_asked_for_every_table(
    sqlite_url: str,
) -> None:
    class Narrow(SQLConnector):
        @property
        def capabilities(self) -> Any:
            return replace(super().capabilities, max_batch_size=3)

    connector = Narrow("people_db", SQLOptions(url=sqlite_url))
    try:
        assert connector.capabilities_for("people").max_batch_size == 3
    finally:
        await connector.aclose()
