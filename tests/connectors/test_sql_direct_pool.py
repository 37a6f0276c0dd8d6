"""The SQLite direct pool lends its connections first come, first served: a
caller waiting for one is never overtaken by one that asked later, however the
connection (or the place to open one) comes free, and every turn a caller
cannot use goes to the next. Once the connector is closed it opens none."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors import SourceUnavailable
from connectors.sql import SQLConnector, SQLOptions
from connectors.sql.direct import DirectSession, DirectSQLite
from tests.connectors.sql_fixtures import create_people_database

Pool = tuple[SQLConnector, DirectSQLite]


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("direct_pool") / "people.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(create_people_database(url))
    return url


def one_connection(url: str) -> SQLConnector:
    return SQLConnector("people_db", SQLOptions(url=url, timeout=5, pool_size=1, max_overflow=0))


@pytest.fixture()
async def pool(sqlite_url: str) -> AsyncIterator[Pool]:
    """A source whose pool holds one connection."""
    connector = one_connection(sqlite_url)
    assert connector._direct is not None
    yield connector, connector._direct
    await connector.aclose()


async def settle() -> None:
    """Let every task that can go on, go on: lending a connection that is open
    needs no thread, only turns of the loop."""
    for _ in range(10):
        await asyncio.sleep(0)


def assert_at_rest(direct: DirectSQLite, opened: int = 1) -> None:
    assert direct.usage() == (0, 1)
    assert (direct._open, len(direct._idle), len(direct._waiters)) == (opened, opened, 0)


async def _two_waiting(
    direct: DirectSQLite,
) -> tuple[DirectSession, asyncio.Task[DirectSession], asyncio.Task[DirectSession]]:
    """The pool's one connection lent, and two callers waiting for it in turn."""
    held = await direct.acquire()
    head = asyncio.create_task(direct.acquire())
    await settle()
    second = asyncio.create_task(direct.acquire())
    await settle()
    return held, head, second


async def _served_first(
    direct: DirectSQLite,
    waiter: asyncio.Task[DirectSession],
    held: DirectSession,
    later: asyncio.Task[DirectSession],
    why: str,
) -> None:
    """``waiter`` got the connection ``held`` gave back, ``later`` (who asked after
    it) still waits; both give theirs back and the pool is at rest."""
    assert waiter.done(), why
    session = waiter.result()
    assert session.worker is held.worker
    assert not later.done()
    assert direct.usage() == (1, 1)
    direct.release(session)
    direct.release(await later)
    assert_at_rest(direct)


@pytest.mark.parametrize("newcomer", ["idle", "acquire"])
async def test_a_released_connection_goes_to_the_caller_waiting_for_it(
    pool: Pool, newcomer: str
) -> None:
    """Neither the fast path's ``idle()`` nor an ``acquire()`` that runs before
    the waiting caller does may take the connection the waiter was promised."""
    _, direct = pool
    held = await direct.acquire()
    waiting = asyncio.create_task(direct.acquire())
    await settle()
    assert len(direct._waiters) == 1
    later = asyncio.create_task(direct.acquire())  # runs before the waiter, were it woken
    direct.release(held)
    if newcomer == "idle":
        assert direct.idle() is None, "the connection is the waiting caller's"
    await settle()
    await _served_first(direct, waiting, held, later, "the waiting caller was overtaken")


async def test_waiting_callers_are_served_in_order_though_others_keep_arriving(
    pool: Pool,
) -> None:
    """Each time the connection comes back a new caller asks just before: the
    callers already waiting are served first, in the order they came (they used
    to be sent to the back of the line each time, and waited on)."""
    _, direct = pool
    order: list[str] = []

    async def take(name: str) -> DirectSession:
        session = await direct.acquire()
        order.append(name)
        return session

    held = await direct.acquire()
    tasks = {name: asyncio.create_task(take(name)) for name in ("a", "b", "c")}
    await settle()
    for round_ in range(6):
        if round_ < 3:
            name = f"new{round_}"
            tasks[name] = asyncio.create_task(take(name))
        direct.release(held)
        await settle()
        held = tasks[order[-1]].result()
    direct.release(held)
    assert order == ["a", "b", "c", "new0", "new1", "new2"]
    assert_at_rest(direct)


@pytest.mark.parametrize("cancelled", ["before its turn", "after its turn came"])
async def test_a_cancelled_waiter_passes_its_turn_to_the_next(pool: Pool, cancelled: str) -> None:
    """The first waiter is cancelled, before the connection comes back or after it
    was handed the connection but before it ran: the next waiter gets it, not a
    caller that asked later, and no connection is lost or counted twice."""
    _, direct = pool
    held, head, second = await _two_waiting(direct)
    if cancelled == "before its turn":
        head.cancel()
    later = asyncio.create_task(direct.acquire())
    direct.release(held)
    if cancelled == "after its turn came":
        head.cancel()
    await settle()
    with pytest.raises(asyncio.CancelledError):
        await head
    await _served_first(direct, second, held, later, "the turn went to a caller that asked later")


@pytest.mark.parametrize("closed_by", ["a driver error", "dispose"])
async def test_the_place_of_a_closed_connection_goes_to_the_caller_waiting(
    pool: Pool, closed_by: str
) -> None:
    """A connection that closes on its return (unusable after a driver error, or
    from before ``engine.dispose()``) leaves a place to open one: the waiting
    caller opens it, not a caller that asked later."""
    connector, direct = pool
    held = await direct.acquire()
    waiting = asyncio.create_task(direct.acquire())
    await settle()
    later = asyncio.create_task(direct.acquire())
    if closed_by == "dispose":
        await connector.engine.dispose()
    direct.release(held, reusable=closed_by != "a driver error")
    assert direct.idle() is None
    done, _ = await asyncio.wait({waiting, later}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {waiting}, "the waiting caller was overtaken"
    session = waiting.result()
    assert session.worker is not held.worker
    assert direct.usage() == (1, 1) and direct._open == 1
    direct.release(session)
    direct.release(await later)
    assert_at_rest(direct)


async def test_a_waiter_cancelled_after_it_was_handed_a_place_passes_it_on(
    pool: Pool,
) -> None:
    """The connection given back closes (a driver error), so the first waiter is
    handed the place to open one, and is cancelled before it runs: the place goes
    to the next waiter (were it dropped, the pool of one would stay full for good)."""
    _, direct = pool
    held, head, second = await _two_waiting(direct)
    direct.release(held, reusable=False)
    head.cancel()
    with pytest.raises(asyncio.CancelledError):
        await head
    async with asyncio.timeout(10):
        session = await second
    assert session.worker is not held.worker
    assert direct.usage() == (1, 1) and direct._open == 1
    direct.release(session)
    assert_at_rest(direct)


async def test_waiters_whose_connection_cannot_open_pass_their_place_on(
    tmp_path: Path,
) -> None:
    """The waiting callers' connections fail to open (the file is gone): each
    fails, passes its place to the next, and the pool ends empty, not full of
    places nobody holds; once the file is back the pool opens again."""
    path = tmp_path / "people.db"
    await create_people_database(f"sqlite+aiosqlite:///{path}")
    connector = one_connection(f"sqlite+aiosqlite:///{path}")
    direct = connector._direct
    assert direct is not None
    try:
        held = await direct.acquire()
        waiting = [asyncio.create_task(direct.acquire()) for _ in range(3)]
        await settle()
        path.rename(tmp_path / "away.db")
        direct.release(held, reusable=False)
        for task in waiting:
            with pytest.raises(sqlite3.OperationalError):
                await task
        assert_at_rest(direct, opened=0)
        (tmp_path / "away.db").rename(path)
        direct.release(await direct.acquire())
        assert_at_rest(direct)
    finally:
        await connector.aclose()


async def test_a_lookup_waiting_for_the_connection_is_answered_before_a_later_one(
    pool: Pool,
) -> None:
    """Through the connector: a lookup that arrives as the connection comes back
    finds it taken (its fast path's ``idle()`` finds none) and waits its turn on
    the path that waits; the lookup that waited is answered first."""
    connector, direct = pool
    await connector.lookup_many("people", "id", [1], ["id"])  # the one connection, open
    answered: list[int] = []

    async def lookup(key: int) -> None:
        rows = await connector.lookup_many("people", "id", [key], ["id"])
        assert rows == [[{"id": key}]]
        answered.append(key)

    async with connector._connection("people", ["id"]):
        waiting = asyncio.create_task(lookup(1))
        await settle()
        later = asyncio.create_task(lookup(2))
    await asyncio.gather(waiting, later)
    assert answered == [1, 2]
    assert_at_rest(direct)


def count_opens(direct: DirectSQLite) -> list[str]:
    """Every connection ``direct`` opens from now on (each on its own thread)."""
    opened: list[str] = []
    connect = direct._connect

    def counted() -> sqlite3.Connection:
        opened.append("opened")
        return connect()

    direct._connect = counted  # type: ignore[assignment]
    return opened


@pytest.mark.parametrize(
    "when", ["still waiting", "handed the place to open one", "handed the connection"]
)
async def test_a_closed_pool_opens_no_connection_for_its_waiters(
    sqlite_url: str, when: str
) -> None:
    """``aclose()`` while a caller waits for the one connection: whether it still
    waits, or was handed the connection (or the place to open one) and has not
    run yet, it gets a clear error instead of a connection; the connection given
    back after the close is closed, and nothing opens a new one (a waiter handed
    the place of the closed connection used to open one after ``aclose()``)."""
    connector = one_connection(sqlite_url)
    direct = connector._direct
    assert direct is not None
    held = await direct.acquire()
    opened = count_opens(direct)
    waiting = asyncio.create_task(direct.acquire())
    await settle()
    if when == "handed the place to open one":
        direct.release(held, reusable=False)
    elif when == "handed the connection":
        direct.release(held)
    await connector.aclose()
    if when == "still waiting":
        direct.release(held)  # given back after the close
    with pytest.raises(SourceUnavailable, match="the connector is closed"):
        await waiting
    with pytest.raises(SourceUnavailable, match="the connector is closed"):
        await direct.acquire()
    with pytest.raises(SourceUnavailable, match="the connector is closed"):
        await connector.lookup_many("people", "id", [1], ["id"])
    assert opened == [], "a connection was opened after aclose()"
    assert direct.usage() == (0, 1)
    assert (direct._open, len(direct._idle), len(direct._waiters)) == (0, 0, 0)
    await asyncio.to_thread(held.worker.join)
    assert held.worker.connection is not None
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        held.worker.connection.execute("SELECT 1")
