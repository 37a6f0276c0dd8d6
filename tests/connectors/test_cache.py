"""The per-source call cache, against a real SQLite file, a real PostgreSQL behind a
fault proxy and a real Redis: hits, partial batches, TTL, single-flight,
serve-stale-on-error, scope isolation, invalidation and cross-replica sharing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from connectors import Aggregate, CircuitOpen, Filter, ScanRequest, SourceUnavailable
from connectors.cache import CacheOptions, CachingConnector, cache_scope, freshness_scope
from connectors.cache_store import RowSerializer, create_cache, dumps, loads
from connectors.resilience import ResilienceOptions, ResilientConnector
from connectors.sql import SQLConnector, SQLOptions
from tests.support.proxy import FaultProxy

COLUMNS = ["id", "name", "email"]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


# --- sources and caches ------------------------------------------------------------------


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "crm.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
    db.executemany(
        "INSERT INTO items VALUES (?, ?, ?)",
        [(i, f"item {i}", f"user{i}@example.com") for i in range(1, 21)],
    )
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INTEGER, total INTEGER)")
    db.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)", [(i, i % 3 + 1, i * 10) for i in range(1, 13)]
    )
    db.commit()
    db.close()
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture()
async def memory_cache() -> AsyncIterator[Any]:
    cache = create_cache("memory", DEFAULT_REDIS_URL, "custview-test")
    yield cache
    await cache.clear()


@pytest.fixture()
def redis_namespace(redis_url: str) -> Iterator[str]:
    """A namespace of this test's own on the shared Redis, removed afterwards."""
    namespace = f"custview-test-{uuid.uuid4().hex[:12]}"
    yield namespace

    async def clean() -> None:
        cache = create_cache("redis", redis_url, namespace)
        await cache.clear(namespace=namespace)
        await cache.client.aclose()

    asyncio.run(clean())


def cached(url: str, cache: Any, name: str = "crm", **options: Any) -> CachingConnector:
    settings = {"ttl": 60.0, **options}
    return CachingConnector(
        SQLConnector(name, SQLOptions(url=url)), CacheOptions(**settings), cache
    )


def sent_keys(connector: CachingConnector) -> list[list[Any]]:
    """The key parameters of every statement the SQL connector sends from now on."""
    seen: list[list[Any]] = []

    @event.listens_for(connector.inner.engine.sync_engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append(list(params) if isinstance(params, tuple | list) else list(params.values()))

    return seen


async def lookup(connector: CachingConnector, *keys: Any) -> list[list[dict[str, Any]]]:
    return await connector.lookup_many("items", "id", list(keys), COLUMNS)


# --- memory backend over SQLite ----------------------------------------------------------


async def test_a_hit_sends_no_statement_and_answers_the_same(
    sqlite_url: str, memory_cache: Any
) -> None:
    connector = cached(sqlite_url, memory_cache)
    first = await lookup(connector, 1, 2, 99)
    assert connector.statements == 1
    with freshness_scope() as report:
        again = await lookup(connector, 1, 2, 99)
    assert again == first
    assert first[2] == [], "a key without rows is cached as empty"
    assert connector.statements == 1, "every key came from the cache"
    assert report["crm"]["cached"] == 3
    assert report["crm"]["live"] == 0
    await connector.aclose()


async def test_a_partial_batch_fetches_only_the_missing_keys_in_one_statement(
    sqlite_url: str, memory_cache: Any
) -> None:
    connector = cached(sqlite_url, memory_cache)
    await lookup(connector, 1, 2, 3)
    seen = sent_keys(connector)
    with freshness_scope() as report:
        rows = await lookup(connector, 2, 4, 3, 5, 4)
    assert [r[0]["id"] if r else None for r in rows] == [2, 4, 3, 5, 4]
    assert len(seen) == 1, "one statement for every missing key"
    assert sorted(seen[0]) == [4, 5]
    assert report["crm"] == {
        "live": 2,
        "cached": 2,
        "stale": 0,
        "max_age_s": report["crm"]["max_age_s"],
    }
    rows[1][0]["name"] = "changed by a caller"
    assert rows[4][0]["name"] == "item 4", "repeated keys get their own row objects"
    await connector.aclose()


async def test_entries_expire_after_their_ttl_and_tables_have_their_own(
    sqlite_url: str, memory_cache: Any
) -> None:
    connector = cached(sqlite_url, memory_cache, ttl=0.2, tables={"orders": 0})
    await lookup(connector, 1)
    await lookup(connector, 1)
    assert connector.statements == 1
    await asyncio.sleep(0.3)
    await lookup(connector, 1)
    assert connector.statements == 2, "expired: read live again"
    await connector.lookup_many("orders", "id", [1], ["id"])
    await connector.lookup_many("orders", "id", [1], ["id"])
    assert connector.statements == 4, "ttl 0 for a table: never cached"
    await connector.aclose()


async def test_concurrent_identical_lookups_reach_the_source_once(
    sqlite_url: str, memory_cache: Any
) -> None:
    connector = cached(sqlite_url, memory_cache)
    with freshness_scope() as report:
        results = await asyncio.gather(*(lookup(connector, 7, 8) for _ in range(10)))
    assert connector.statements == 1
    assert all(r == results[0] for r in results)
    assert results[0][0] == [{"id": 7, "name": "item 7", "email": "user7@example.com"}]
    assert report["crm"]["live"] == 20
    results[0][0][0]["name"] = "mine"
    assert results[1][0][0]["name"] == "item 7", "each waiter gets its own rows"
    await connector.aclose()


async def test_a_joiner_cancelled_with_the_call_it_joined_does_not_call_anew(
    sqlite_url: str, memory_cache: Any
) -> None:
    """A joiner whose flight was cancelled calls the source itself, unless it was
    cancelled too (one request's two lookups, a client gone): then nobody waits."""
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite+aiosqlite:///"))
    db.execute(  # a lookup here reads three million rows: time to join it
        "CREATE VIEW slow AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL "
        "SELECT n + 1 FROM c WHERE n < 3000000) SELECT n AS x FROM c"
    )
    db.close()
    # the follower below reads the whole view: on a loaded machine that takes longer
    # than the default 10 s timeout
    source = SQLConnector("crm", SQLOptions(url=sqlite_url, sqlite_direct=False, timeout=300))
    connector = CachingConnector(source, CacheOptions(ttl=60.0), memory_cache)

    async def slow(key: int) -> list[list[dict[str, Any]]]:
        return await connector.lookup_many("slow", "x", [key], ["x"])

    async def joined(owner: asyncio.Task[Any]) -> asyncio.Task[Any]:
        sent = connector.statements
        # the owner's flight is claimed after the cache's look, and its statement sent
        # after that (on a loaded machine, well after): the joiner joins a flight
        # whose statement is under way, so that the counts below are the joiner's
        for _ in range(5000):
            if connector._flights and connector.statements > sent:
                break
            await asyncio.sleep(0.001)
        joiner = asyncio.create_task(slow(0))
        await asyncio.sleep(0.01)
        assert not owner.done() and not joiner.done()
        return joiner

    owner = asyncio.create_task(slow(0))
    joiner = await joined(owner)
    # as settled() cancels a request: the owner first, then (its flight cancelled)
    # the joiner, before the joiner has run again
    (flight,) = connector._flights.values()
    flight.add_done_callback(lambda _: joiner.cancel())
    owner.cancel()
    for task in (owner, joiner):
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.sleep(0.1)
    assert connector.statements == 1, "no statement sent anew for a cancelled joiner"
    assert connector._flights == {}

    owner = asyncio.create_task(slow(0))
    follower = await joined(owner)
    owner.cancel()
    assert await follower == [[]], "the follower alone still waits: it asks anew"
    assert connector.statements == 3
    await connector.aclose()


async def test_aggregates_are_cached_per_call_and_scans_are_not(
    sqlite_url: str, memory_cache: Any
) -> None:
    connector = cached(sqlite_url, memory_cache)
    args = (
        "orders",
        ["item_id"],
        [Aggregate("sum", "total", "spent")],
        [Filter("total", "gt", 20)],
    )
    first = await connector.aggregate(*args)
    assert await connector.aggregate(*args) == first
    assert connector.statements == 1
    await connector.aggregate("orders", ["item_id"], [Aggregate("count", None, "n")])
    assert connector.statements == 2, "another call is another entry"
    big = await connector.aggregate(
        "orders", ["item_id"], [Aggregate("count", None, "n", where=[Filter("total", "gt", 20)])]
    )
    assert connector.statements == 3, "an aggregate's own where is part of its entry"
    small = await connector.aggregate(
        "orders", ["item_id"], [Aggregate("count", None, "n", where=[Filter("total", "le", 20)])]
    )
    assert connector.statements == 4 and small != big
    with freshness_scope() as report:
        rows = [r async for r in connector.scan(ScanRequest("items", ["id"], limit=3))]
        rows += [r async for r in connector.scan(ScanRequest("items", ["id"], limit=3))]
    assert len(rows) == 6
    assert connector.statements == 6
    assert report["crm"]["live"] == 2
    await connector.aclose()


async def test_one_scope_never_sees_another_scopes_entries(
    sqlite_url: str, memory_cache: Any
) -> None:
    connector = cached(sqlite_url, memory_cache)
    assert cache_scope.get() == "public"
    token = cache_scope.set("role:support-agent")
    try:
        await lookup(connector, 1)
        await lookup(connector, 1)
        assert connector.statements == 1
    finally:
        cache_scope.reset(token)
    token = cache_scope.set("role:anonymous")
    try:
        await lookup(connector, 1)
        assert connector.statements == 2, "another scope: not served from the first one's entry"
    finally:
        cache_scope.reset(token)
    await lookup(connector, 1)
    assert connector.statements == 3, "nor to the default scope"
    await connector.aclose()


async def test_invalidation_by_table_and_by_source(sqlite_url: str, memory_cache: Any) -> None:
    connector = cached(sqlite_url, memory_cache)
    other = cached(sqlite_url, memory_cache, name="sales")
    orders = ("orders", ["item_id"], [Aggregate("count", None, "n")])

    async def warm() -> None:
        await lookup(connector, 1)
        await connector.aggregate(*orders)
        await lookup(other, 1)

    await warm()
    assert (connector.statements, other.statements) == (2, 1)
    await connector.invalidate("items")
    await warm()
    assert (connector.statements, other.statements) == (3, 1), "only crm's items were dropped"
    await connector.invalidate()
    await warm()
    assert (connector.statements, other.statements) == (5, 1), "all of crm, none of sales"
    await warm()
    assert (connector.statements, other.statements) == (5, 1), "and cached again"
    await other.aclose()
    await connector.aclose()


async def test_forgetting_keys_drops_their_entries_in_every_scope(
    sqlite_url: str, memory_cache: Any
) -> None:
    connector = cached(sqlite_url, memory_cache)
    orders = ("orders", ["item_id"], [Aggregate("count", None, "n")])
    mine = [Filter("item_id", "in", [1, 2])]
    theirs = [Filter("item_id", "eq", 3)]
    token = cache_scope.set("role:support")
    try:
        await lookup(connector, 1, 2)
    finally:
        cache_scope.reset(token)
    await lookup(connector, 1, 2)
    await connector.aggregate(*orders, mine)
    await connector.aggregate(*orders, theirs)
    assert connector.statements == 4
    assert await connector.forget("items", "id", [1, 1, 99]) == 2
    await connector.forget("orders", "item_id", [2])
    seen = sent_keys(connector)
    with freshness_scope() as report:
        rows = await lookup(connector, 1, 2)
    assert [r[0]["id"] for r in rows] == [1, 2]
    assert seen == [[1]], "only the forgotten key is read again"
    assert report["crm"]["live"] == 1 and report["crm"]["cached"] == 1
    await connector.aggregate(*orders, mine)
    await connector.aggregate(*orders, theirs)
    assert connector.statements == 6, "the aggregate filtered by a forgotten key, only"
    token = cache_scope.set("role:support")
    try:
        await lookup(connector, 1, 2)
    finally:
        cache_scope.reset(token)
    assert seen[-1] == [1], "the other scope's entry of the key was dropped too"
    await lookup(connector, 1, 2)
    assert connector.statements == 7, "and cached again"
    await connector.aclose()


async def test_a_stopped_source_answers_stale_from_recent_entries(
    sqlite_url: str, memory_cache: Any
) -> None:
    path = Path(make_url(sqlite_url).database or "")
    connector = cached(sqlite_url, memory_cache, ttl=0.1, stale_ttl=30)
    live = await lookup(connector, 1, 2)
    await asyncio.sleep(0.15)
    await asyncio.to_thread(path.rename, path.with_suffix(".gone"))
    await connector.inner.engine.dispose()  # the file is gone: no connection can open it
    with freshness_scope() as report:
        assert await lookup(connector, 2, 1) == [live[1], live[0]]
    assert report["crm"]["stale"] == 2
    assert report["crm"]["max_age_s"] >= 0.1
    with pytest.raises(SourceUnavailable):
        await lookup(connector, 1, 3)  # key 3 was never cached: no stale answer for it
    await connector.aclose()


async def test_an_entry_older_than_stale_ttl_does_not_answer(
    sqlite_url: str, memory_cache: Any
) -> None:
    path = Path(make_url(sqlite_url).database or "")
    connector = cached(sqlite_url, memory_cache, ttl=0.05, stale_ttl=0.05)
    await lookup(connector, 1)
    await asyncio.sleep(0.15)
    await asyncio.to_thread(path.unlink)
    await connector.inner.engine.dispose()
    with pytest.raises(SourceUnavailable):
        await lookup(connector, 1)
    await connector.aclose()


async def test_stale_while_revalidate_answers_at_once_and_refreshes_in_the_background(
    sqlite_url: str, memory_cache: Any
) -> None:
    connector = cached(sqlite_url, memory_cache, ttl=0.1, revalidate=30)
    first = await lookup(connector, 1, 2)
    await asyncio.sleep(0.15)
    with freshness_scope() as report:
        answers = await asyncio.gather(*(lookup(connector, 1, 2) for _ in range(10)))
    assert all(a == first for a in answers)
    assert report["crm"]["stale"] == 20 and report["crm"]["live"] == 0, "nobody waited"
    await connector.settle()
    assert connector.statements == 2, "one refresh for every caller in the window"
    with freshness_scope() as report:
        assert await lookup(connector, 1, 2) == first
    assert report["crm"] == {
        "live": 0,
        "cached": 2,
        "stale": 0,
        "max_age_s": report["crm"]["max_age_s"],
    }, "the refreshed entries are fresh"
    assert connector.statements == 2
    await connector.aclose()


async def test_a_failed_refresh_leaves_the_stale_entry_answering(
    sqlite_url: str, memory_cache: Any
) -> None:
    path = Path(make_url(sqlite_url).database or "")
    connector = cached(sqlite_url, memory_cache, ttl=0.05, revalidate=30, stale_ttl=0)
    first = await lookup(connector, 3)
    await asyncio.sleep(0.1)
    await asyncio.to_thread(path.rename, path.with_suffix(".gone"))
    await connector.inner.engine.dispose()
    assert await lookup(connector, 3) == first
    await connector.settle()  # the refresh failed, quietly
    with freshness_scope() as report:
        assert await lookup(connector, 3) == first
    assert report["crm"]["stale"] == 1
    await connector.settle()
    assert connector._flights == {}, "no call is left waiting"
    await connector.aclose()


def test_the_serializer_keeps_types_exact() -> None:
    row = {
        "at": datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC),
        "naive": datetime(2024, 1, 1, 8, 0),
        "day": date(1990, 5, 6),
        "price": Decimal("12345678901234567890.0100"),
        "wait": timedelta(seconds=90.5),
        "id": uuid.UUID(int=7),
        "blob": b"\x00\xff",
        "nested": {"$cv": "dt", "v": "not a tag: three keys", "x": 1},
        "plain": [1, "two", None, 3.5, True],
    }
    back = loads(dumps([row]))[0]
    assert back == row
    assert type(back["price"]) is Decimal and str(back["price"]) == "12345678901234567890.0100"
    assert back["at"].tzinfo == UTC
    assert RowSerializer().loads(None) is None
    assert RowSerializer().loads(3) == 3


# --- PostgreSQL behind a fault proxy: stale answers through the breaker -----------------


@pytest.fixture(scope="module")
def pg_items_url(postgres_db_url: str) -> str:
    async def load() -> None:
        engine = create_async_engine(postgres_db_url)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE items (id int primary key, name text, "
                    "price numeric(30, 4), seen_at timestamptz, born date)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO items SELECT g, 'item ' || g, 12345678901234567.0100 + g, "
                    "timestamptz '2024-02-29 23:59:58.123456+00' + g * interval '1 hour', "
                    "date '1990-05-06' + g FROM generate_series(1, 20) g"
                )
            )
        await engine.dispose()

    asyncio.run(load())
    return postgres_db_url


@pytest.fixture()
async def proxy(pg_items_url: str) -> AsyncIterator[FaultProxy]:
    url = make_url(pg_items_url)
    running = await FaultProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield running
    await running.stop()


def through_proxy(pg_items_url: str, proxy: FaultProxy, cache: Any, **options: Any) -> Any:
    url = make_url(pg_items_url).set(host="127.0.0.1", port=proxy.port)
    inner = SQLConnector("pg", SQLOptions(url=url.render_as_string(hide_password=False)))
    policy = ResilienceOptions(retries=0, breaker_threshold=1, breaker_recovery=30)
    return CachingConnector(ResilientConnector(inner, policy), CacheOptions(**options), cache)


async def test_a_refusing_source_and_its_open_circuit_are_answered_stale(
    pg_items_url: str, proxy: FaultProxy, memory_cache: Any
) -> None:
    connector = through_proxy(pg_items_url, proxy, memory_cache, ttl=0.1, stale_ttl=30)
    live = await connector.lookup_many("items", "id", [1, 2], ["id", "name", "price"])
    await asyncio.sleep(0.15)
    proxy.mode = "refuse"
    proxy.cut()
    await asyncio.sleep(0.05)
    with freshness_scope() as report:
        first = await connector.lookup_many("items", "id", [1, 2], ["id", "name", "price"])
        assert connector.breaker_state == "opened"
        accepted = proxy.accepted
        second = await connector.lookup_many("items", "id", [1, 2], ["id", "name", "price"])
    assert first == second == live
    assert proxy.accepted == accepted, "the open circuit kept the source untouched"
    assert report["pg"]["stale"] == 4
    with pytest.raises(CircuitOpen):
        await connector.lookup_many("items", "id", [3], ["id", "name", "price"])
    await connector.aclose()


async def test_a_long_outage_holds_no_growing_state(
    pg_items_url: str, proxy: FaultProxy, memory_cache: Any
) -> None:
    """A thousand calls to a refusing source, answered stale or CIRCUIT_OPEN:
    nothing is kept per call (single-flight table, background refreshes), and the
    memory traced after the first calls does not grow with the next ones."""
    connector = through_proxy(pg_items_url, proxy, memory_cache, ttl=0.05, stale_ttl=60)
    columns = ["id", "name"]
    await connector.lookup_many("items", "id", list(range(1, 11)), columns)
    await asyncio.sleep(0.1)
    proxy.mode = "refuse"
    proxy.cut()

    async def outage(calls: int) -> None:
        for i in range(calls):
            keys = [i % 10 + 1] if i % 2 else [i % 10 + 1, 15]  # stale, or a key never cached
            with contextlib.suppress(SourceUnavailable, CircuitOpen):
                await connector.lookup_many("items", "id", keys, columns)

    # the test harness keeps every log record it captures: that is not ours
    harness = [tracemalloc.Filter(False, f"*/{name}/*") for name in ("logging", "_pytest")]

    def traced() -> int:
        # what is still reachable: garbage waiting for a collection is not kept state
        # (and waits longer where an earlier test's gateway left the thresholds raised)
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(harness)
        return sum(stat.size for stat in snapshot.statistics("filename"))

    await outage(300)
    tracemalloc.start()
    try:
        await outage(100)
        before = traced()
        await outage(600)
        grown = traced() - before
    finally:
        tracemalloc.stop()
    assert connector._flights == {} and not connector._refreshing
    # before the fix in ResilientConnector._guard, ~1.3 KB per call (purgatory's state
    # object kept every skipped call's traceback)
    assert grown < 256 * 1024, f"{grown} bytes more after 600 more calls"
    await connector.aclose()


# --- Redis: exact types, shared between replicas ------------------------------------------


async def test_redis_round_trips_datetimes_and_decimals_exactly(
    pg_items_url: str, redis_url: str, redis_namespace: str
) -> None:
    columns = ["id", "name", "price", "seen_at", "born"]
    writer = CachingConnector(
        SQLConnector("pg", SQLOptions(url=pg_items_url)),
        CacheOptions(ttl=60),
        create_cache("redis", redis_url, redis_namespace),
    )
    reader = CachingConnector(
        SQLConnector("pg", SQLOptions(url=pg_items_url)),
        CacheOptions(ttl=60),
        create_cache("redis", redis_url, redis_namespace),
    )
    live = await writer.lookup_many("items", "id", [1, 2, 3], columns)
    from_redis = await reader.lookup_many("items", "id", [1, 2, 3], columns)
    assert reader.statements == 0
    assert from_redis == live
    row = from_redis[0][0]
    assert row["price"] == Decimal("12345678901234568.0100")
    assert isinstance(row["price"], Decimal) and str(row["price"]) == str(live[0][0]["price"])
    assert row["seen_at"] == datetime(2024, 3, 1, 0, 59, 58, 123456, tzinfo=UTC)
    assert row["born"] == date(1990, 5, 7) and type(row["born"]) is date
    await writer.aclose()
    await reader.aclose()


async def test_two_replicas_share_entries_and_invalidation_through_redis(
    sqlite_url: str, redis_url: str, redis_namespace: str
) -> None:
    one = cached(sqlite_url, create_cache("redis", redis_url, redis_namespace))
    two = cached(sqlite_url, create_cache("redis", redis_url, redis_namespace))
    first = await lookup(one, 1, 2)
    with freshness_scope() as report:
        assert await lookup(two, 1, 2) == first
    assert (one.statements, two.statements) == (1, 0), "a cross-replica hit"
    assert report["crm"]["cached"] == 2
    seen = sent_keys(two)
    await lookup(two, 2, 3)
    assert seen == [[3]]
    await one.invalidate()
    await lookup(two, 1)
    assert two.statements == 2, "one replica's invalidation holds for the other"
    await one.invalidate("items")
    await lookup(two, 1)
    assert two.statements == 3
    await one.aclose()
    await two.aclose()


async def test_a_shared_cache_closes_with_its_last_connector(
    sqlite_url: str, redis_url: str, redis_namespace: str
) -> None:
    cache = create_cache("redis", redis_url, redis_namespace)
    one, two = cached(sqlite_url, cache), cached(sqlite_url, cache, name="sales")
    await lookup(one, 1)
    await one.aclose()
    await lookup(two, 1)
    assert two.statements == 1, "the cache still answers for the connector left"
    await two.aclose()
