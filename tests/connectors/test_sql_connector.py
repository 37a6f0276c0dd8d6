"""One suite for the SQL connector, run on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import contextlib
import math
import operator
import re
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

import connectors
import connectors.sql
from connectors import (
    Aggregate,
    ConfigError,
    Filter,
    KeyLookup,
    QueryError,
    ReadOnlyViolation,
    ScanRequest,
    Sort,
    SourceTimeout,
    SourceUnavailable,
)
from connectors.request_id import request_id_scope
from connectors.sql import SchemaMismatch, SQLConnector, SQLOptions
from tests.connectors.sql_fixtures import (
    INJECTION,
    ROWS,
    count_people,
    create_people_database,
)
from tests.support.engines import ENGINES, engine_url

COLUMNS = ["id", "email", "phone", "name", "country", "score"]


@pytest.fixture(scope="module", params=ENGINES)
def source_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a database holding the people dataset, written once per engine."""
    url = engine_url(request, tmp_path_factory, "people")
    asyncio.run(create_people_database(url))
    return url


@pytest.fixture()
async def connector(source_url: str) -> AsyncIterator[SQLConnector]:
    conn = SQLConnector("people_db", SQLOptions(url=source_url, timeout=5))
    yield conn
    await conn.aclose()


def backend_of(connector: SQLConnector) -> str:
    return connector.engine.dialect.name


async def collect(connector: SQLConnector, request: ScanRequest) -> list[dict[str, Any]]:
    return [row async for row in connector.scan(request)]


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [int(r["id"]) for r in rows]


def expected(predicate: Callable[[dict[str, Any]], bool]) -> list[int]:
    return [r["id"] for r in ROWS if predicate(r)]


# --- discovery and the public surface ------------------------------------------------------


def test_discovered_through_the_entry_point() -> None:
    assert connectors.load("sql") is SQLConnector
    assert SQLConnector.kind == "sql"
    assert SQLConnector.options_model is SQLOptions


def test_public_names() -> None:
    assert connectors.sql.__all__ == ["SQLConnector", "SQLOptions", "SchemaMismatch"]


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg"),
        ("mysql+pymysql://u@h/db", "mysql+aiomysql"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///:memory:", "database file"),
        ("sqlite+aiosqlite://", "database file"),
        ("oracle+oracledb://u@h/db", "unsupported database"),
        ("not a url", "not a SQLAlchemy URL"),
    ],
)
def test_options_refuse_non_async_urls(url: str, hint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(hint)):
        SQLOptions(url=url)


def test_option_errors_do_not_echo_the_url() -> None:
    with pytest.raises(ValueError) as info:
        SQLOptions(url="postgresql+psycopg2://custview:s3cret@db.internal/crm")
    assert "s3cret" not in str(info.value)


def test_options_refuse_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        SQLOptions(url="sqlite+aiosqlite:///x.db", pool=3)  # type: ignore[call-arg]


def test_needs_sql_options() -> None:
    with pytest.raises(ConfigError):
        SQLConnector("x", connectors.ConnectorOptions())


async def test_capabilities(connector: SQLConnector) -> None:
    caps = connector.capabilities
    assert caps.supports_batch_lookup and caps.supports_sort and caps.supports_keyset
    assert caps.supports_limit and caps.supports_aggregates
    assert caps.filter_operators == {
        "eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "startswith", "is_null"
    }  # fmt: skip
    assert caps.lookup_transforms == {"exact", "casefold", "digits"}
    # keys per statement: as many as the engine's bind-parameter limit comfortably allows
    assert caps.max_batch_size == 30_000


# --- lookups --------------------------------------------------------------------------------


async def test_lookup_keeps_key_order_missing_and_duplicate_keys(connector: SQLConnector) -> None:
    before = connector.statements
    result = await connector.lookup_many("people", "id", [3, 999, 1, 3, None], ["id", "name"])
    assert connector.statements == before + 1
    assert result == [
        [{"id": 3, "name": "Person 03"}],
        [],
        [{"id": 1, "name": "Person 01"}],
        [{"id": 3, "name": "Person 03"}],
        [],
    ]


async def test_each_key_of_a_lookup_has_a_list_of_its_own(connector: SQLConnector) -> None:
    # one row a key (read without a loop per row) and several rows a key alike: a
    # caller that adds to one key's list changes no other key's
    for column, key, none in [("id", 3, 999), ("country", ROWS[0]["country"], "ZZ")]:
        result = await connector.lookup_many("people", column, [key, none, key, none], ["id"])
        assert result[0] == result[2] and result[0]
        result[0].append({"id": -1})
        result[1].append({"id": -2})
        assert {"id": -1} not in result[2]
        assert result[3] == []


async def test_lookup_rows_hold_exactly_the_requested_columns(connector: SQLConnector) -> None:
    [[row]] = await connector.lookup_many("people", "id", [2], ["name", "id", "name"])
    assert list(row) == ["name", "id"]


async def test_lookup_without_keys_sends_nothing(connector: SQLConnector) -> None:
    assert await connector.lookup_many("people", "id", [], ["id"]) == []
    assert await connector.lookup_many("people", "id", [None], ["id"]) == [[]]
    assert connector.statements == 0


async def test_lookup_casefold(connector: SQLConnector) -> None:
    keys = ["user1@example.com", "user2@example.com", "nobody@example.com", "user1@example.com"]
    result = await connector.lookup_many("people", "email", keys, ["id"], "casefold")
    assert [sorted(ids(rows)) for rows in result] == [[1, 50], [2], [], [1, 50]]


async def test_lookup_digits(connector: SQLConnector) -> None:
    keys = ["15550100001", "15550100002", "15550100010", "5550100003", "15550100013"]
    result = await connector.lookup_many("people", "phone", keys, ["id", "phone"], "digits")
    assert [ids(rows) for rows in result] == [[1], [2], [], [], [13]]
    assert result[0][0]["phone"] == "1-555-010-0001"


async def test_lookup_exact_strings(connector: SQLConnector) -> None:
    result = await connector.lookup_many("people", "name", [INJECTION, "Person 04"], ["id"])
    assert [ids(rows) for rows in result] == [[8], [4]]


async def test_lookup_chunks_large_key_lists(source_url: str) -> None:
    connector = SQLConnector("people_db", SQLOptions(url=source_url, max_batch_size=500))
    keys = list(range(1, 1202))
    try:
        result = await connector.lookup_many("people", "id", keys, ["id"])
        assert connector.statements == math.ceil(len(keys) / 500) == 3
    finally:
        await connector.aclose()
    assert [ids(rows) for rows in result[:50]] == [[i] for i in range(1, 51)]
    assert all(rows == [] for rows in result[50:])


async def test_lookup_of_several_columns_is_one_statement(connector: SQLConnector) -> None:
    """Each lookup gets its own groups, in key order; a row matching two lookups is
    read once and listed under both."""
    result = await connector.lookup_many_columns(
        "people",
        [
            KeyLookup("email", ["user2@example.com", "nobody@example.com"], "casefold"),
            KeyLookup("phone", ["15550100002", "15550100013", None], "digits"),
            KeyLookup("id", [4, 2, 4]),
        ],
        ["id"],
    )
    assert connector.statements == 1
    assert [[ids(rows) for rows in groups] for groups in result] == [
        [[2], []],
        [[2], [13], []],
        [[4], [2], [4]],
    ]


async def test_lookup_of_several_columns_is_chunked_across_them(source_url: str) -> None:
    connector = SQLConnector("people_db", SQLOptions(url=source_url, max_batch_size=3))
    try:
        result = await connector.lookup_many_columns(
            "people", [KeyLookup("id", [1, 2, 3, 4]), KeyLookup("name", ["Person 05"])], ["id"]
        )
        assert connector.statements == 2
    finally:
        await connector.aclose()
    assert [[ids(rows) for rows in groups] for groups in result] == [[[1], [2], [3], [4]], [[5]]]


async def test_lookup_unknown_transform(connector: SQLConnector) -> None:
    with pytest.raises(QueryError):
        await connector.lookup_many("people", "id", [1], ["id"], "soundex")  # type: ignore[arg-type]


# --- scans: filters -------------------------------------------------------------------------

FILTER_CASES: list[tuple[Filter, list[int]]] = [
    (Filter("country", "eq", "GB"), expected(lambda r: r["country"] == "GB")),
    (Filter("country", "ne", "GB"), expected(lambda r: r["country"] not in ("GB", None))),
    (Filter("score", "lt", Decimal(6)), expected(lambda r: r["score"] < 6)),
    (Filter("score", "le", Decimal(6)), expected(lambda r: r["score"] <= 6)),
    (Filter("score", "gt", Decimal(70)), expected(lambda r: r["score"] > 70)),
    (Filter("score", "ge", Decimal(70)), expected(lambda r: r["score"] >= 70)),
    (Filter("id", "in", [5, 1, 999]), [1, 5]),
    (Filter("id", "in", []), []),
    (Filter("name", "contains", "SON 1"), list(range(10, 20))),
    (Filter("name", "startswith", "person 0"), [1, 2, 3, 4, 5, 6, 9]),
    (Filter("phone", "is_null", True), [10, 20, 30, 40, 50]),
    (Filter("phone", "is_null", False), expected(lambda r: r["phone"] is not None)),
    # Hostile values are values, never SQL.
    (Filter("name", "eq", INJECTION), [8]),
    (Filter("name", "contains", INJECTION), [8]),
    (Filter("name", "eq", "x' OR '1'='1"), []),
    (Filter("name", "in", ["x') OR ('1'='1", INJECTION]), [8]),
    (Filter("name", "contains", "%"), [7]),
    (Filter("name", "contains", "_"), [7]),
    (Filter("name", "startswith", "%"), []),
    (Filter("name", "startswith", "100%"), [7]),
    (Filter("name", "contains", "0% r"), [7]),
]


@pytest.mark.parametrize(("flt", "want"), FILTER_CASES, ids=lambda v: str(v))
async def test_filter_operators(connector: SQLConnector, flt: Filter, want: list[int]) -> None:
    rows = await collect(
        connector, ScanRequest("people", ["id"], filters=[flt], order_by=[Sort("id")])
    )
    assert ids(rows) == want


async def test_filters_combine_with_and(connector: SQLConnector) -> None:
    flts = [Filter("country", "eq", "US"), Filter("score", "gt", Decimal(30))]
    rows = await collect(connector, ScanRequest("people", ["id"], flts, [Sort("id")]))
    assert ids(rows) == expected(lambda r: r["country"] == "US" and r["score"] > 30)


async def test_unknown_filter_operator(connector: SQLConnector) -> None:
    flt = Filter("id", "regex", ".*")  # type: ignore[arg-type]
    with pytest.raises(QueryError):
        await collect(connector, ScanRequest("people", ["id"], filters=[flt]))


# --- scans: sort, limit, keyset -------------------------------------------------------------

SORTS = [
    [Sort("score", descending=True)],
    [Sort("country"), Sort("id", descending=True)],
    [Sort("country", descending=True), Sort("name"), Sort("id")],
]


def python_order(sorts: list[Sort]) -> list[int]:
    rows = [r for r in ROWS if r["country"] is not None]
    for sort in reversed(sorts):
        rows.sort(key=operator.itemgetter(sort.column), reverse=sort.descending)
    return ids(rows)


@pytest.mark.parametrize("sorts", SORTS, ids=str)
async def test_sort_mixed_directions(connector: SQLConnector, sorts: list[Sort]) -> None:
    request = ScanRequest(
        "people", COLUMNS, filters=[Filter("country", "is_null", False)], order_by=sorts
    )
    assert ids(await collect(connector, request)) == python_order(sorts)


async def test_limit(connector: SQLConnector) -> None:
    request = ScanRequest("people", ["id"], order_by=[Sort("id", descending=True)], limit=3)
    assert ids(await collect(connector, request)) == [50, 49, 48]
    assert await collect(connector, ScanRequest("people", ["id"], limit=0)) == []
    with pytest.raises(QueryError):
        await collect(connector, ScanRequest("people", ["id"], limit=-1))


@pytest.mark.parametrize("page_size", [1, 7, 50, 100])
@pytest.mark.parametrize("sorts", SORTS, ids=str)
async def test_keyset_pages_have_no_gaps_or_repeats(
    connector: SQLConnector, sorts: list[Sort], page_size: int
) -> None:
    order = [*sorts, Sort("id")] if sorts[-1].column != "id" else sorts
    flt = [Filter("country", "is_null", False)]
    seen: list[int] = []
    after: list[Any] | None = None
    while True:
        request = ScanRequest("people", COLUMNS, flt, order, limit=page_size, after=after)
        page = await collect(connector, request)
        seen += ids(page)
        if len(page) < page_size:
            break
        after = [page[-1][s.column] for s in order]
    assert seen == python_order(order)


async def test_keyset_cursor_must_match_order(connector: SQLConnector) -> None:
    cases: list[tuple[list[Sort], list[Any]]] = [
        ([Sort("id")], [1, 2]),
        ([], [1]),
        ([Sort("country")], [None]),
    ]
    for order, after in cases:
        with pytest.raises(QueryError):
            await collect(connector, ScanRequest("people", ["id"], order_by=order, after=after))


async def test_scan_streams_a_huge_result(connector: SQLConnector) -> None:
    """The first rows of a 100-million-row view arrive at once: nothing is buffered."""
    started = time.perf_counter()
    rows = []
    async with contextlib.aclosing(connector.scan(ScanRequest("numbers", ["n"]))) as stream:
        async for row in stream:
            rows.append(row["n"])
            if len(rows) == 10:
                break
    assert rows == list(range(1, 11))
    assert connector.statements == 1
    # Abandoning the stream is quick too, and the connector stays usable.
    assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
    assert time.perf_counter() - started < 3


async def test_scan_reads_columns_named_like_keywords(connector: SQLConnector) -> None:
    rows = await collect(connector, ScanRequest("keywords", ["update", "delete"]))
    assert rows == [{"update": "u1", "delete": "d1"}]
    flt = [Filter("update", "eq", "u1")]
    assert await connector.lookup_many("keywords", "delete", ["d1"], ["id"]) == [[{"id": 1}]]
    assert len(await collect(connector, ScanRequest("keywords", ["id"], filters=flt))) == 1


# --- aggregates -----------------------------------------------------------------------------


async def test_aggregates_grouped(connector: SQLConnector) -> None:
    rows = await connector.aggregate(
        "people",
        ["country"],
        [
            Aggregate("count", alias="n"),
            Aggregate("sum", "score", "total"),
            Aggregate("min", "id"),
            Aggregate("max", "id", "last"),
        ],
        filters=[Filter("country", "is_null", False)],
    )
    by_country: dict[str, list[dict[str, Any]]] = {}
    for r in ROWS:
        if r["country"] is not None:
            by_country.setdefault(r["country"], []).append(r)
    assert [r["country"] for r in rows] == sorted(by_country)
    for row in rows:
        members = by_country[row["country"]]
        assert list(row) == ["country", "n", "total", "min_id", "last"]
        assert row["n"] == len(members)
        assert Decimal(str(row["total"])) == sum(m["score"] for m in members)
        assert row["min_id"] == min(m["id"] for m in members)
        assert row["last"] == max(m["id"] for m in members)


async def test_aggregate_without_groups(connector: SQLConnector) -> None:
    rows = await connector.aggregate(
        "people", [], [Aggregate("count"), Aggregate("count", "phone", "phones")]
    )
    assert rows == [{"count": 50, "phones": 45}]


# --- read-only ------------------------------------------------------------------------------

WRITES = [
    "INSERT INTO people (id, name, score, created_at) VALUES (100, 'x', 1, '2024-01-01')",
    "UPDATE people SET name = 'x'",
    "DELETE FROM people",
    "CREATE TABLE intruder (id INTEGER)",
    "DROP TABLE people",
    "WITH gone AS (DELETE FROM people RETURNING id) SELECT id FROM gone",
    "SELECT 1; DELETE FROM people",
]


@pytest.mark.parametrize("statement", WRITES)
async def test_writes_through_the_engine_are_refused(
    connector: SQLConnector, source_url: str, statement: str
) -> None:
    with pytest.raises(ReadOnlyViolation) as info:
        async with connector.engine.connect() as conn:
            await conn.execute(text(statement))
    assert info.value.source == "people_db"
    assert await count_people(source_url) == 50


@pytest.mark.parametrize("statement", WRITES[:5])
async def test_sessions_are_read_only_on_the_server(
    connector: SQLConnector, source_url: str, statement: str
) -> None:
    """Bypassing the statement guard with the raw driver still cannot write."""
    async with connector.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        with pytest.raises(Exception, match=r"(?i)read.?only"):
            if backend_of(connector) == "mysql" or backend_of(connector) == "mariadb":
                async with raw.cursor() as cursor:
                    await cursor.execute(statement)
            else:
                await raw.execute(statement)
    assert await count_people(source_url) == 50


# --- failures -------------------------------------------------------------------------------


async def test_unknown_table_and_column_are_named(connector: SQLConnector) -> None:
    with pytest.raises(SchemaMismatch) as info:
        await connector.lookup_many("nope", "id", [1], ["id"])
    assert (info.value.source, info.value.table, info.value.column) == ("people_db", "nope", None)
    assert "nope" in str(info.value)

    with pytest.raises(SchemaMismatch) as info:
        await collect(connector, ScanRequest("people", ["id", "shoe_size"]))
    assert (info.value.table, info.value.column) == ("people", "shoe_size")

    with pytest.raises(SchemaMismatch) as info:
        await connector.aggregate("people", ["planet"], [Aggregate("count")])
    assert info.value.column == "planet"


async def test_slow_statements_time_out(source_url: str) -> None:
    options = SQLOptions(url=source_url, timeout=0.3, statement_timeout=1)
    connector = SQLConnector("slowdb", options)
    try:
        started = time.perf_counter()
        with pytest.raises(SourceTimeout) as info:
            await collect(connector, ScanRequest("slow", ["x"]))
        assert time.perf_counter() - started < 1.5
        assert info.value.source == "slowdb"
        assert await connector.lookup_many("people", "id", [1], ["id"]) == [[{"id": 1}]]
    finally:
        await connector.aclose()
    assert time.perf_counter() - started < 2.5


async def test_server_side_statement_timeout(source_url: str, connector: SQLConnector) -> None:
    if backend_of(connector) == "sqlite":
        pytest.skip("SQLite has no server-side statement timeout")
    connector = SQLConnector("slowdb", SQLOptions(url=source_url, statement_timeout=0.2))
    try:
        with pytest.raises(SourceTimeout, match="cancelled"):
            await connector.lookup_many("slow", "x", [1], ["x"])
    finally:
        await connector.aclose()


@pytest.mark.parametrize(("option", "expected"), [(None, 6.0), (2.5, 2.5), (0, None)])
async def test_the_server_stops_what_the_client_gave_up_on(
    source_url: str, connector: SQLConnector, option: float | None, expected: float | None
) -> None:
    """By default each session carries the timeout plus a second, server-side."""
    backend = backend_of(connector)
    if backend == "sqlite":
        pytest.skip("SQLite has no server-side statement timeout")
    options = SQLOptions(url=source_url, timeout=5, statement_timeout=option)
    probe = SQLConnector("limits", options)
    try:
        async with probe.engine.connect() as conn:
            if backend == "postgresql":
                shown = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
                seconds = None if shown == "0" else _pg_seconds(str(shown))
            else:
                value = (await conn.execute(text("SELECT @@max_statement_time"))).scalar_one()
                seconds = float(value) or None
    finally:
        await probe.aclose()
    assert seconds == expected


async def test_a_mariadb_scan_is_bounded_per_fetch_not_by_the_server_limit(
    source_url: str, connector: SQLConnector
) -> None:
    """An export reads a MariaDB stream as long as it needs (one statement there);
    lookups and aggregates keep the server-side limit."""
    if not getattr(connector.engine.dialect, "is_mariadb", False):
        async with connector.engine.connect():
            pass  # the dialect is known once a connection was made
    if not getattr(connector.engine.dialect, "is_mariadb", False):
        pytest.skip("MariaDB only")
    writer = create_async_engine(source_url)
    try:
        async with writer.begin() as conn:
            await conn.execute(text("CREATE OR REPLACE VIEW sleepy AS SELECT SLEEP(0.6) AS x"))
    finally:
        await writer.dispose()
    probe = SQLConnector("limits", SQLOptions(url=source_url, timeout=5, statement_timeout=0.3))
    try:
        assert await collect(probe, ScanRequest("sleepy", ["x"])) == [{"x": 0}]
        with pytest.raises(SourceTimeout):
            await probe.lookup_many("sleepy", "x", [0], ["x"])
    finally:
        await probe.aclose()


def _pg_seconds(shown: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)\s*(ms|s|min)", shown).groups()  # type: ignore[union-attr]
    return float(number) * {"ms": 0.001, "s": 1.0, "min": 60.0}[unit]


UNREACHABLE = [
    "postgresql+asyncpg://custview:s3cret@127.0.0.1:1/x",
    "mysql+aiomysql://custview:s3cret@127.0.0.1:1/x",
    "sqlite+aiosqlite:////nonexistent/s3cret/people.db",
]


@pytest.mark.parametrize("url", UNREACHABLE)
async def test_unreachable_source_errors_carry_no_secrets(url: str) -> None:
    connector = SQLConnector("crm", SQLOptions(url=url, timeout=3))
    try:
        with pytest.raises(SourceUnavailable) as info:
            await connector.lookup_many("people", "id", [1], ["id"])
        message = str(info.value)
        assert "source 'crm'" in message
        assert "s3cret" not in message and "://" not in message
        health = await connector.health(["people"])
        assert not health.ok
        assert health.detail and "s3cret" not in health.detail
    finally:
        await connector.aclose()


@pytest.mark.parametrize(
    ("url", "password", "quoted"),
    [
        ("postgresql+asyncpg://bob:p%40ss%2Fw0rd@127.0.0.1:1/x", "p@ss/w0rd", "p%40ss%2Fw0rd"),
        ("postgresql+asyncpg://bob@127.0.0.1:1/x?password=hunter2secret", "hunter2secret", ""),
        ("mysql+aiomysql://bob@127.0.0.1:1/x?charset=utf8mb4&pwd=s3cret-pwd", "s3cret-pwd", ""),
        (
            "postgresql+asyncpg://bob@127.0.0.1:1/x?pass=s3cret%2Bpass",
            "s3cret+pass",
            "s3cret%2Bpass",
        ),
    ],
)
def test_a_url_password_is_secret_as_a_driver_may_quote_it(
    url: str, password: str, quoted: str
) -> None:
    """In the query string, or percent-encoded: a driver's message may hold the password
    decoded or as written, outside any URL."""
    secrets = SQLOptions(url=url).secrets()
    for form in filter(None, (password, quoted)):
        message = f"auth failed for user bob, password '{form}' (dsn: password={form} host=x)"
        described = connectors.describe_error(RuntimeError(message), secrets)
        assert form not in described, described
        assert (
            described
            == "RuntimeError: auth failed for user bob, password '***' (dsn: password=*** host=x)"
        )
    assert "utf8mb4" not in secrets, "other parameters are no secret"


async def test_a_missing_sqlite_file_is_named_as_such_without_its_path(tmp_path: Path) -> None:
    path = tmp_path / "s3cret" / "crm.db"
    connector = SQLConnector("crm", SQLOptions(url=f"sqlite+aiosqlite:///{path}", timeout=3))
    try:
        health = await connector.health(["contacts"])
        assert not health.ok
        assert "the configured SQLite file: it does not exist" in health.detail
        assert "s3cret" not in health.detail
        with pytest.raises(SourceUnavailable, match="SQLite file: it does not exist"):
            await connector.lookup_many("contacts", "id", [1], ["id"])
    finally:
        await connector.aclose()
    assert not path.parent.exists(), "read-only: nothing is created"


async def test_a_sqlite_path_that_cannot_be_looked_at_fails_cleanly(tmp_path: Path) -> None:
    """Looking for the file can fail too (a directory it may not search, a name too
    long): health still answers not ok, a lookup still raises the connector's error."""
    path = tmp_path / ("s3cret" * 50) / "crm.db"  # 300 characters: ENAMETOOLONG
    connector = SQLConnector("crm", SQLOptions(url=f"sqlite+aiosqlite:///{path}", timeout=3))
    try:
        health = await connector.health(["contacts"])
        assert not health.ok and "s3cret" not in health.detail
        with pytest.raises(SourceUnavailable):
            await connector.lookup_many("contacts", "id", [1], ["id"])
    finally:
        await connector.aclose()


async def test_health(connector: SQLConnector) -> None:
    health = await connector.health(["people", "no_such_table"])
    assert health.ok
    assert health.latency_ms is not None and health.latency_ms > 0
    assert health.tables == {"people": True, "no_such_table": False}
    assert "no_such_table" in health.detail


# --- the request id -------------------------------------------------------------------------


@pytest.mark.parametrize("tag", [None, True, False])
async def test_statements_carry_the_request_id_where_it_is_free_or_asked(
    source_url: str, tag: bool | None
) -> None:
    conn = SQLConnector("people_db", SQLOptions(url=source_url, timeout=5, request_id_comment=tag))
    sent: list[str] = []
    mysql = backend_of(conn) in ("mysql", "mariadb")

    def record(c: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    try:
        event.listen(conn.engine.sync_engine, "after_cursor_execute", record)
        await conn.lookup_many("people", "id", [1, 2], COLUMNS)  # outside any request
        with request_id_scope("req-42.a_b"):
            groups = await conn.lookup_many("people", "id", [1, 2], COLUMNS)
    finally:
        await conn.aclose()
    assert ids([g[0] for g in groups]) == [1, 2]
    outside, inside = sent[0], sent[-1]
    assert "request_id" not in outside
    wanted = tag if tag is not None else mysql
    assert inside.endswith(" /* request_id=req-42.a_b */") is wanted
