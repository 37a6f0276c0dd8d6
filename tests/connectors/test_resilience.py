"""Resilience against real faults: a PostgreSQL reached through a TCP proxy
that refuses, slows down or cuts connections on command."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import pytest
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import Context, OpenedState
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from connectors import (
    CircuitOpen,
    DeadlineExceeded,
    LookupTransform,
    QueryError,
    Row,
    ScanRequest,
    SourceTimeout,
    SourceUnavailable,
)
from connectors.deadline import deadline_scope
from connectors.resilience import ResilienceOptions, ResilientConnector
from connectors.sql import SQLConnector, SQLOptions
from tests.support.gated import Gated
from tests.support.processes import end_custview_sessions, until
from tests.support.proxy import FaultProxy
from tests.support.timers import timers_set


@pytest.fixture(scope="module")
def items_url(postgres_db_url: str) -> str:
    async def load() -> None:
        engine = create_async_engine(postgres_db_url)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE items (id int primary key, name text)"))
            await conn.execute(
                text("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g")
            )
        await engine.dispose()

    asyncio.run(load())
    return postgres_db_url


@pytest.fixture()
async def proxy(items_url: str) -> AsyncIterator[FaultProxy]:
    url = make_url(items_url)
    running = await FaultProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield running
    await running.stop()


def connect(
    items_url: str, proxy: FaultProxy, timeout: float = 2.0, **policy: float
) -> ResilientConnector:
    url = make_url(items_url).set(host="127.0.0.1", port=proxy.port)
    inner = SQLConnector(
        "items-db", SQLOptions(url=url.render_as_string(hide_password=False), timeout=timeout)
    )
    defaults = {"retry_initial_wait": 0.01, "retry_max_wait": 0.02}
    return ResilientConnector(inner, ResilienceOptions(**{**defaults, **policy}))


async def lookup(connector: ResilientConnector, *keys: int) -> list[list[dict[str, object]]]:
    return await connector.lookup_many("items", "id", list(keys), ["id", "name"])


def item(i: int) -> list[list[dict[str, object]]]:
    return [[{"id": i, "name": f"item {i}"}]]


def held(connector: ResilientConnector) -> int:
    """Connections the source's pool has lent out and not got back."""
    return int(connector.engine.pool.checkedout())


async def reached(proxy: FaultProxy) -> None:
    """Until a call's bytes are held by the slow proxy (the call is mid-query)."""

    async def holding() -> bool:
        return proxy.delayed > 0

    await until(holding, "the call reaches the proxy")


async def test_reads_are_retried_when_the_source_is_unavailable(
    items_url: str, proxy: FaultProxy
) -> None:
    connector = connect(items_url, proxy, retries=2)
    proxy.mode = "refuse"
    with pytest.raises(SourceUnavailable) as info:
        await lookup(connector, 1)
    assert proxy.accepted == 3, "one try and two retries"
    assert info.value.source == "items-db"
    assert held(connector) == 0, "no connection is left behind by the failed attempts"
    proxy.mode = "pass"
    assert (await lookup(connector, 1, 2))[1] == [{"id": 2, "name": "item 2"}]
    await connector.aclose()


async def test_scans_are_not_retried(items_url: str, proxy: FaultProxy) -> None:
    """A stream may have handed rows on before it failed: it is never replayed."""
    connector = connect(items_url, proxy, retries=2)
    proxy.mode = "refuse"
    with pytest.raises(SourceUnavailable):
        _ = [r async for r in connector.scan(ScanRequest("items", ["id"]))]
    assert proxy.accepted == 1
    await connector.aclose()


async def test_timeouts_are_not_retried(items_url: str, proxy: FaultProxy) -> None:
    connector = connect(items_url, proxy, timeout=0.3, retries=2)
    proxy.mode, proxy.delay = "slow", 1.0
    with pytest.raises(SourceTimeout) as info:
        await lookup(connector, 1)
    assert not isinstance(info.value, DeadlineExceeded), "no deadline outside a scope"
    assert proxy.accepted == 1
    await connector.aclose()


async def test_the_breaker_opens_skips_the_source_and_recovers(
    items_url: str, proxy: FaultProxy
) -> None:
    connector = connect(items_url, proxy, retries=0, breaker_threshold=3, breaker_recovery=0.3)
    proxy.mode = "refuse"
    for _ in range(3):
        with pytest.raises(SourceUnavailable):
            await lookup(connector, 1)
    assert connector.breaker_state == "opened"
    attempts = proxy.accepted
    with pytest.raises(CircuitOpen) as info:
        await lookup(connector, 1)
    assert info.value.code == "CIRCUIT_OPEN"
    assert proxy.accepted == attempts, "an open circuit does not touch the source"
    proxy.mode = "pass"
    await asyncio.sleep(0.35)
    assert (await lookup(connector, 3)) == [[{"id": 3, "name": "item 3"}]]
    assert connector.breaker_state == "closed"
    assert held(connector) == 0
    await connector.aclose()


async def test_wrappers_sharing_breakers_share_the_circuit(
    items_url: str, proxy: FaultProxy
) -> None:
    """Each call sees the registry's circuit (a wrapper looks its breaker up once,
    and again when the registry no longer holds it)."""
    url = make_url(items_url).set(host="127.0.0.1", port=proxy.port)
    policy = ResilienceOptions(retries=0, breaker_threshold=2, breaker_recovery=30)
    breakers = AsyncCircuitBreakerFactory()

    def wrapper() -> ResilientConnector:
        inner = SQLConnector(
            "items-db", SQLOptions(url=url.render_as_string(hide_password=False), timeout=2)
        )
        return ResilientConnector(inner, policy, breakers)

    first, second = wrapper(), wrapper()
    assert await lookup(second, 1) == item(1)
    proxy.mode = "refuse"
    for _ in range(2):
        with pytest.raises(SourceUnavailable):
            await lookup(first, 1)
    with pytest.raises(CircuitOpen):
        await lookup(second, 1)  # opened by the other wrapper
    breakers.uow.contexts.breakers.clear()  # type: ignore[attr-defined]
    proxy.mode = "pass"
    assert await lookup(second, 2) == item(2), "a fresh registry starts closed"
    await first.aclose()
    await second.aclose()


@pytest.mark.parametrize("retries", [0, 1])
async def test_a_connection_cut_mid_query(items_url: str, proxy: FaultProxy, retries: int) -> None:
    """Cut while the statement is on its way: a source failure, retried on a fresh
    connection when retries are allowed; the cut connection never returns to use."""
    connector = connect(items_url, proxy, timeout=10, retries=retries)
    assert await lookup(connector, 1) == item(1), "a warm pool: the statement is what is cut"
    proxy.mode, proxy.delay = "slow", 0.5
    call = asyncio.create_task(lookup(connector, 6))
    await reached(proxy)
    proxy.mode = "pass"
    proxy.cut()
    if retries:
        assert await call == item(6)
        assert proxy.accepted == 2, "the retry opened a new connection"
    else:
        with pytest.raises(SourceUnavailable) as info:
            await call
        assert info.value.source == "items-db"
    assert held(connector) == 0
    assert await lookup(connector, 7) == item(7), "the pool recovered"
    await connector.aclose()


async def test_a_slow_source_does_not_starve_the_others(items_url: str, proxy: FaultProxy) -> None:
    """The slow source's calls fill its own bulkhead and pool; another source's calls,
    made meanwhile, all answer while those are still waiting."""
    slow = connect(items_url, proxy, timeout=30, max_concurrency=2)
    fast = ResilientConnector(SQLConnector("other-db", SQLOptions(url=items_url, timeout=30)))
    proxy.mode, proxy.delay = "slow", 1.0
    stuck = [asyncio.create_task(lookup(slow, i)) for i in range(1, 11)]
    await reached(proxy)
    answers = await asyncio.gather(*(lookup(fast, i) for i in range(1, 31)))
    assert answers == [item(i) for i in range(1, 31)]
    assert sum(t.done() for t in stuck) <= 2, "the slow source's calls were still waiting"
    assert proxy.max_in_flight == 2, "the slow source never had more than its limit"
    for task in stuck:
        task.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)
    proxy.mode = "pass"
    proxy.cut()
    assert held(slow) == 0, "cancelled calls gave their connections back"
    await asyncio.gather(slow.aclose(), fast.aclose())


async def test_a_cut_connection_is_a_source_failure_and_the_next_call_reconnects(
    items_url: str, proxy: FaultProxy
) -> None:
    connector = connect(items_url, proxy, retries=1)
    assert await lookup(connector, 4)
    proxy.cut()
    await asyncio.sleep(0.05)
    assert (await lookup(connector, 5)) == [[{"id": 5, "name": "item 5"}]]
    await connector.aclose()


async def test_a_stopped_database_opens_the_circuit_and_its_restart_closes_it(
    items_url: str, proxy: FaultProxy
) -> None:
    connector = connect(items_url, proxy, retries=1, breaker_threshold=2, breaker_recovery=0.3)
    assert await lookup(connector, 1) == item(1)
    proxy.mode = "refuse"  # stopped: its sessions end, new connections are refused
    assert await end_custview_sessions(items_url) >= 1
    for _ in range(2):
        with pytest.raises(SourceUnavailable) as info:
            await lookup(connector, 2)
        assert "127.0.0.1" not in info.value.message and "postgres" not in info.value.message
    assert connector.breaker_state == "opened"
    with pytest.raises(CircuitOpen):
        await lookup(connector, 2)
    assert held(connector) == 0
    proxy.mode = "pass"  # started again
    await asyncio.sleep(0.35)
    assert await lookup(connector, 2) == item(2)
    assert connector.breaker_state == "closed"
    await connector.aclose()


async def test_errors_in_the_request_do_not_open_the_circuit(
    items_url: str, proxy: FaultProxy
) -> None:
    connector = connect(items_url, proxy, breaker_threshold=2)
    for _ in range(4):
        with pytest.raises(QueryError):
            _ = [row async for row in connector.scan(ScanRequest("items", ["id"], limit=-1))]
    assert connector.breaker_state == "closed"
    assert await lookup(connector, 1)
    await connector.aclose()


@pytest.mark.parametrize("max_concurrency", [2, 16])
async def test_the_bulkhead_bounds_calls_in_flight(
    items_url: str, proxy: FaultProxy, max_concurrency: int
) -> None:
    connector = connect(items_url, proxy, timeout=5, max_concurrency=max_concurrency)
    proxy.mode, proxy.delay = "slow", 0.15
    await asyncio.gather(*(lookup(connector, i) for i in range(1, 7)))
    if max_concurrency == 2:
        assert proxy.max_in_flight == 2
    else:
        assert proxy.max_in_flight > 2, "the pool alone lets more through"
    await connector.aclose()


async def test_scans_stream_through_the_guard(items_url: str, proxy: FaultProxy) -> None:
    connector = connect(items_url, proxy)
    rows = [r async for r in connector.scan(ScanRequest("items", ["id"], limit=7))]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert len(rows) == 7
    assert connector.statements >= 1, "the wrapped connector's counters stay visible"
    assert connector.source_kind == "sql"
    await connector.aclose()


# --- the request's deadline ------------------------------------------------------------


async def test_the_deadline_cuts_a_slow_call_without_counting_against_the_source(
    items_url: str, proxy: FaultProxy
) -> None:
    connector = connect(items_url, proxy, timeout=30, breaker_threshold=1)
    assert await lookup(connector, 1), "a warm pool: the cut falls mid-query"
    proxy.mode, proxy.delay = "slow", 2.0
    with deadline_scope(0.3), pytest.raises(DeadlineExceeded) as info:
        await lookup(connector, 2)
    assert info.value.code == "SOURCE_TIMEOUT"
    assert info.value.source == "items-db"
    assert "deadline" in info.value.message
    assert connector.breaker_state == "closed", "the deadline is the request's, not the source's"
    proxy.mode = "pass"
    proxy.cut()
    assert (await lookup(connector, 3)) == [[{"id": 3, "name": "item 3"}]]
    await connector.aclose()


async def test_a_passed_deadline_does_not_reach_the_source(
    items_url: str, proxy: FaultProxy
) -> None:
    connector = connect(items_url, proxy)
    with deadline_scope(0.01) as deadline:
        assert deadline is not None
        await asyncio.sleep(0.02)
        with pytest.raises(DeadlineExceeded):
            await lookup(connector, 1)
        with pytest.raises(DeadlineExceeded):
            _ = [r async for r in connector.scan(ScanRequest("items", ["id"]))]
    assert proxy.accepted == 0
    await connector.aclose()


async def test_retries_stop_at_the_deadline(items_url: str, proxy: FaultProxy) -> None:
    connector = connect(items_url, proxy, retries=5, retry_initial_wait=5, retry_max_wait=5)
    proxy.mode = "refuse"
    with deadline_scope(0.3), pytest.raises(SourceUnavailable) as info:
        await lookup(connector, 1)
    assert proxy.accepted == 1, "no retry could start before the deadline"
    assert info.value.source == "items-db"
    await connector.aclose()


async def test_a_scan_stops_at_the_deadline(items_url: str, proxy: FaultProxy) -> None:
    connector = connect(items_url, proxy, timeout=30)
    assert await lookup(connector, 1)
    proxy.mode, proxy.delay = "slow", 2.0
    with deadline_scope(0.3), pytest.raises(DeadlineExceeded):
        _ = [r async for r in connector.scan(ScanRequest("items", ["id"]))]
    proxy.mode = "pass"
    proxy.cut()
    await connector.aclose()


# --- the bulkhead's queue ----------------------------------------------------------------


class Paced(Gated):
    """A scan whose rows wait as long as ``waits`` says, one after another."""

    def __init__(self, waits: Sequence[float]) -> None:
        super().__init__()
        self.waits = waits

    async def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        for i, seconds in enumerate(self.waits):
            if seconds >= 0:  # a negative wait: the row is there, no wait at all
                await asyncio.sleep(seconds)
            yield {"id": i}


async def test_a_scan_s_consumer_is_not_cut_only_its_waits_for_rows() -> None:
    """The deadline passes while the consumer works between rows: each later row
    still comes, at once or after a wait shorter than the grace (every wait gets
    the grace from its start)."""
    connector = ResilientConnector(Paced([0, -1, 0.01, 0]), ResilienceOptions())
    rows = []
    with deadline_scope(0.05):
        async for row in connector.scan(ScanRequest("t", ["id"])):
            rows.append(row["id"])
            await asyncio.sleep(0.2)  # past the deadline and its grace
    assert rows == [0, 1, 2, 3]
    await connector.aclose()


async def test_a_scan_s_rows_read_without_waiting_make_no_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connector = ResilientConnector(Paced([-1] * 5), ResilienceOptions())
    with deadline_scope(30):
        scheduled = timers_set(monkeypatch)
        rows = [row["id"] async for row in connector.scan(ScanRequest("t", ["id"]))]
        monkeypatch.undo()
    assert rows == [0, 1, 2, 3, 4]
    assert scheduled == [], "no row was waited for: no cut, no timer"
    await connector.aclose()


async def test_a_scan_s_slow_row_is_cut_at_the_deadline() -> None:
    connector = ResilientConnector(Paced([0, 30]), ResilienceOptions())
    rows = []
    with deadline_scope(0.05), pytest.raises(DeadlineExceeded) as info:
        async for row in connector.scan(ScanRequest("t", ["id"])):
            rows.append(row["id"])
    assert rows == [0]
    assert info.value.source == "gated"
    await connector.aclose()


async def test_the_bulkhead_lets_waiting_calls_in_first_come_first_served() -> None:
    """A call arriving as a place frees waits behind the calls already waiting, a
    cancelled waiter gives its turn away, and every place comes back."""
    gated = Gated()
    connector = ResilientConnector(gated, ResilienceOptions(max_concurrency=1))

    def call(key: int) -> asyncio.Task[list[list[Row]]]:
        return asyncio.create_task(connector.lookup_many("t", "id", [key], ["id"]))

    first, second, third = call(1), call(2), call(3)
    await asyncio.sleep(0.01)
    assert gated.entered == [1], "one place: the others wait"
    third.cancel()
    gated.gate(1).set()
    await first
    fourth = call(4)  # arrives as the place frees, while 2 is waiting
    await asyncio.sleep(0.01)
    assert gated.entered == [1, 2]
    for key in (2, 4, 5):
        gated.gate(key).set()
    assert await second == [[{"id": 2}]] and await fourth == [[{"id": 4}]]
    assert gated.entered == [1, 2, 4], "the cancelled call never entered"
    with pytest.raises(asyncio.CancelledError):
        await third
    assert await connector.lookup_many("t", "id", [5], ["id"]) == [[{"id": 5}]]
    assert connector._bulkhead._value == 1, "every place came back"
    await connector.aclose()


# --- the circuit breaker's fast lane -----------------------------------------------------


def test_purgatory_ignores_a_request_and_a_success_in_a_closed_circuit_without_failures() -> None:
    """The library behaviour :meth:`ResilientConnector._attempts` relies on to skip the
    breaker's enter (closed circuit) and exit (closed, no failure counted) on a success:
    both change nothing there. A success after a failure, or outside a closed circuit,
    does change something, so it is told."""
    context = Context("source", threshold=2, ttl=30.0)
    assert (context.state, context.failure_count) == ("closed", 0)
    context.__enter__()
    context.__exit__(None, None, None)
    assert (context.state, context.failure_count, context.messages) == ("closed", 0, [])
    context.__enter__()
    context.__exit__(SourceUnavailable, SourceUnavailable("down", source="s"), None)
    assert (context.state, context.failure_count) == ("closed", 1)
    context.messages.clear()
    context.__exit__(None, None, None)
    assert (context.state, context.failure_count) == ("closed", 0)
    assert context.messages, "the reset count is reported"
    assert context.opened_at is None
    assert Context("source", threshold=2, ttl=30.0, state="opened").opened_at is not None
    half_open = Context("source", threshold=2, ttl=30.0, state="half-opened")
    assert half_open.opened_at is None
    half_open.__enter__()
    assert (half_open.state, half_open.messages) == ("half-opened", []), "a request changes nothing"
    half_open.__exit__(None, None, None)
    assert half_open.state == "closed", "a success outside a closed circuit is told"
    opened = Context("source", threshold=2, ttl=30.0, state="opened", opened_at=time.time())
    with pytest.raises(OpenedState):
        opened.__enter__()


def test_purgatory_context_properties_are_its_state_objects_attributes() -> None:
    """:meth:`ResilientConnector._attempts` reads ``context._state``'s attributes in
    place of the context's ``state``, ``opened_at`` and ``failure_count`` properties:
    they must stay the same values in every state, before and after calls."""
    failure = SourceUnavailable("down", source="s")
    contexts = [
        Context("source", threshold=2, ttl=30.0),
        Context("source", threshold=2, ttl=30.0, state="half-opened"),
        Context("source", threshold=2, ttl=30.0, state="opened", opened_at=time.time()),
        Context("source", threshold=1, ttl=30.0),
    ]
    seen = set()
    for context in contexts:
        for outcome in (None, failure, None, failure, failure):
            now = context._state
            seen.add(now.name)
            assert (now.name, now.opened_at, now.failure_count) == (
                context.state,
                context.opened_at,
                context.failure_count,
            )
            try:
                context.__enter__()
            except OpenedState:
                continue
            if outcome is None:
                context.__exit__(None, None, None)
            else:
                context.__exit__(SourceUnavailable, outcome, None)
    assert seen == {"closed", "half-opened", "opened"}, "every state was compared"


class Flaky(Gated):
    """Fails while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def lookup_many(
        self,
        table: str,
        column: str,
        keys: Sequence[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[list[Row]]:
        if self.down:
            raise SourceUnavailable("down", source=self.name, retryable=False)
        return [[{"id": keys[0]}]]


async def test_the_circuit_opens_after_consecutive_failures_only() -> None:
    """A success between failures resets the count (the breaker is told of it), a
    success in a closed circuit counts nothing, and the threshold's consecutive
    failures open the circuit."""
    flaky = Flaky()
    connector = ResilientConnector(flaky, ResilienceOptions(breaker_threshold=2, retries=0))

    async def outcome() -> str:
        try:
            await connector.lookup_many("t", "id", [1], ["id"])
        except CircuitOpen:
            return "skipped"
        except SourceUnavailable:
            return "failed"
        return "ok"

    assert [await outcome() for _ in range(3)] == ["ok"] * 3
    assert connector.breaker_state == "closed"
    flaky.down = True
    assert await outcome() == "failed"
    flaky.down = False
    assert await outcome() == "ok"
    flaky.down = True
    assert await outcome() == "failed"
    assert connector.breaker_state == "closed", "one failure since the success"
    assert await outcome() == "failed"
    assert connector.breaker_state == "opened"
    flaky.down = False
    assert await outcome() == "skipped"
    await connector.aclose()
