"""Aggregates with their own ``where`` in one grouped statement (``FILTER``; ``CASE
WHEN`` on MySQL/MariaDB), on every engine: each must be exactly what a statement of
its own with that ``where`` gives, value and type, for groups whose rows pass it all,
some, none, or only through NULLs.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Numeric, String, Table
from sqlalchemy.ext.asyncio import create_async_engine

from connectors import Aggregate, Filter, Row
from connectors.sql import SQLConnector, SQLOptions
from tests.support.engines import ENGINES, engine_url

metadata = MetaData()
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("owner", Integer, nullable=False),
    Column("shop", String(20), nullable=False),
    Column("status", String(20)),
    Column("total", Numeric(12, 2)),
    Column("created_at", DateTime),
)


def _at(day: int) -> datetime:
    return datetime(2024, 3, day, 8, 30)


# owner: 1 every row paid; 2 some paid, a NULL status, a NULL total; 3 none paid;
# 4 only a NULL status; 5 no rows; 6 paid rows whose totals are all NULL
ROWS = [
    (1, 1, "north", "paid", Decimal("10.50"), _at(1)),
    (2, 1, "north", "paid", Decimal("2.25"), _at(2)),
    (3, 2, "North", "paid", Decimal("5.00"), _at(3)),
    (4, 2, "south", "refunded", Decimal("7.00"), _at(4)),
    (5, 2, "south", None, Decimal("3.00"), _at(5)),
    (6, 2, "south", "paid", None, None),
    (7, 3, "east", "refunded", Decimal("1.00"), _at(6)),
    (8, 3, "east", None, None, None),
    (9, 4, "west", None, Decimal("4.00"), _at(7)),
    (10, 6, "west", "paid", None, _at(8)),
    (11, 6, "west", "fulfilled", None, _at(9)),
]
OWNERS = [1, 2, 3, 4, 5, 6]
SHOPS = ["north", "south", "east", "west", "nowhere"]

WHERES: list[list[Filter]] = [
    [Filter("status", "in", ["paid", "fulfilled"])],
    [Filter("status", "ne", "refunded")],  # a NULL status does not pass
    [Filter("status", "is_null", True)],
    [Filter("status", "eq", "paid"), Filter("total", "gt", Decimal("4"))],  # NULL totals
    [Filter("status", "eq", "nothing")],  # no row anywhere
    [Filter("id", "ge", 0)],  # every row
    [Filter("created_at", "lt", _at(5))],
]
FUNCTIONS = [
    Aggregate("count", None, "rows"),
    Aggregate("count", "total", "totals"),
    Aggregate("sum", "total", "spent"),
    Aggregate("min", "total", "least"),
    Aggregate("max", "created_at", "last"),
    Aggregate("min", "status", "first_status"),
]


@pytest.fixture(scope="module", params=ENGINES)
def orders_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = engine_url(request, tmp_path_factory, "orders")
    asyncio.run(_create(url))
    return url


async def _create(url: str) -> None:
    engine = create_async_engine(url)
    names = ("id", "owner", "shop", "status", "total", "created_at")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
            await conn.execute(orders.insert(), [dict(zip(names, r, strict=True)) for r in ROWS])
    finally:
        await engine.dispose()


@pytest.fixture()
async def connector(orders_url: str) -> AsyncIterator[SQLConnector]:
    conn = SQLConnector("shop_db", SQLOptions(url=orders_url, timeout=5))
    yield conn
    await conn.aclose()


def _filtered() -> list[Aggregate]:
    return [
        replace(agg, alias=f"{agg.alias}_{i}", where=where)
        for i, where in enumerate(WHERES)
        for agg in FUNCTIONS
    ]


def _by_group(rows: list[Row], group: str) -> dict[Any, Row]:
    found = {row[group]: row for row in rows}
    assert len(found) == len(rows), rows
    return found


def _decimal(value: Any) -> Decimal | None:
    """A sum as a decimal of cents (SQLite sums a NUMERIC column as a float)."""
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def _same(got: Any, want: Any) -> bool:
    return got == want and type(got) is type(want)


async def _separately(
    connector: SQLConnector, group: str, keys: Sequence[Any]
) -> dict[str, dict[Any, Any]]:
    """Each filtered aggregate's value per group, from a statement of its own with its
    ``where`` (how they were read before): groups without passing rows left out."""
    values: dict[str, dict[Any, Any]] = {}
    for i, where in enumerate(WHERES):
        rows = await connector.aggregate(
            "orders", [group], FUNCTIONS, [Filter(group, "in", list(keys)), *where]
        )
        for key, row in _by_group(rows, group).items():
            for agg in FUNCTIONS:
                values.setdefault(f"{agg.alias}_{i}", {})[key] = row[agg.alias]
    return values


@pytest.mark.parametrize(("group", "keys"), [("owner", OWNERS), ("shop", SHOPS)])
async def test_one_statement_gives_what_a_statement_per_where_gives(
    connector: SQLConnector, group: str, keys: list[Any]
) -> None:
    want = await _separately(connector, group, keys)
    aggregates = [*_filtered(), Aggregate("count", None, "all_rows")]
    before = connector.statements
    rows = await connector.aggregate("orders", [group], aggregates, [Filter(group, "in", keys)])
    assert connector.statements == before + 1
    got = _by_group(rows, group)
    counted = [Aggregate("count", None, "all_rows")]
    unfiltered = _by_group(
        await connector.aggregate("orders", [group], counted, [Filter(group, "in", keys)]), group
    )
    assert set(got) == set(unfiltered), "a group per key with rows, whatever passes"
    checked = 0
    for key, row in got.items():
        assert _same(row["all_rows"], unfiltered[key]["all_rows"])
        for agg in _filtered():
            separate = want.get(agg.alias, {})
            # no row of the group passes: the aggregate over no rows
            over_none = 0 if agg.fn == "count" else None
            expected = separate.get(key, over_none)
            value = row[agg.alias]
            if agg.fn == "count":  # a count's integer type is the engine's either way
                assert int(value) == int(expected), (key, agg)
            else:
                assert _same(value, expected), (key, agg, value, expected)
            checked += expected is not None and expected != 0
    assert checked > 20, "most checks compare values, not NULLs"


async def test_each_group_is_checked_against_the_rows(connector: SQLConnector) -> None:
    """The cases the file sets up are there: all, some, none and only NULLs pass."""
    paid = Aggregate("sum", "total", "paid", where=[Filter("status", "eq", "paid")])
    nulls = Aggregate("count", None, "unknown", where=[Filter("status", "is_null", True)])
    not_refunded = Aggregate("count", None, "kept", where=[Filter("status", "ne", "refunded")])
    rows = await connector.aggregate(
        "orders",
        ["owner"],
        [paid, nulls, not_refunded, Aggregate("count", None, "rows")],
        [Filter("owner", "in", OWNERS)],
    )
    got = {
        r["owner"]: (_decimal(r["paid"]), int(r["unknown"]), int(r["kept"]), int(r["rows"]))
        for r in rows
    }
    assert got == {
        1: (Decimal("12.75"), 0, 2, 2),
        2: (Decimal("5.00"), 1, 2, 4),
        3: (None, 1, 0, 2),
        4: (None, 1, 0, 1),
        6: (None, 0, 2, 2),
    }


async def test_statements_of_one_shape_keep_their_own_values(connector: SQLConnector) -> None:
    """Two calls alike but for a ``where``'s value are two statements' answers (the
    statement built once per shape holds the values it was built with)."""

    async def spent(status: str) -> dict[Any, Any]:
        agg = Aggregate("sum", "total", "spent", where=[Filter("status", "eq", status)])
        both = [agg, Aggregate("count", None, "rows")]
        rows = await connector.aggregate("orders", ["owner"], both, [Filter("owner", "in", [1, 2])])
        return {r["owner"]: _decimal(r["spent"]) for r in rows}

    for _ in range(2):
        assert await spent("paid") == {1: Decimal("12.75"), 2: Decimal("5.00")}
        assert await spent("refunded") == {1: None, 2: Decimal("7.00")}


@pytest.mark.parametrize("direct", [True, False])
async def test_min_and_max_keep_a_sqlite_columns_collation(tmp_path: Path, direct: bool) -> None:
    """SQLite's ``CASE`` is an expression without the column's collation: ``min`` of
    ``CASE WHEN ... THEN subject END`` over a ``COLLATE NOCASE`` column compared bytes
    (``'B'`` before ``'a'``), where a statement of its own compares without case."""
    path = tmp_path / "tickets.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, owner INT, status TEXT,"
            " subject TEXT COLLATE NOCASE)"
        )
        db.executemany(
            "INSERT INTO tickets VALUES (?, ?, ?, ?)",
            [(1, 1, "open", "b"), (2, 1, "open", "B"), (3, 1, "open", "a"),
             (4, 1, "closed", "Z"), (5, 1, "closed", "c")],
        )  # fmt: skip
    url = f"sqlite+aiosqlite:///{path}"
    conn = SQLConnector("desk", SQLOptions(url=url, sqlite_direct=direct))
    keys = [Filter("owner", "in", [1])]
    try:
        for status in ("open", "closed"):
            where = [Filter("status", "eq", status)]
            bounds = [Aggregate("min", "subject", "lo"), Aggregate("max", "subject", "hi")]
            [alone] = await conn.aggregate("tickets", ["owner"], bounds, [*keys, *where])
            filtered = [replace(a, where=where) for a in bounds]
            together = [*filtered, Aggregate("count", None, "rows")]
            [one] = await conn.aggregate("tickets", ["owner"], together, keys)
            assert (one["lo"], one["hi"]) == (alone["lo"], alone["hi"]), status
        assert (alone["lo"], alone["hi"]) == ("c", "Z"), "the collation compares without case"
    finally:
        await conn.aclose()


async def test_where_values_equal_but_bound_differently_are_two_statements(
    tmp_path: Path,
) -> None:
    """Two aware datetimes of one instant in two offsets are equal keys, but SQLite
    binds each as its own wall time: the statement built for the first must not
    answer the second (each is what a statement of its own with that ``where`` gives)."""
    path = tmp_path / "orders.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, owner INT, created_at DATETIME)")
        db.execute("INSERT INTO orders VALUES (1, 1, '2024-01-01 10:30:00.000000')")
    conn = SQLConnector("shop", SQLOptions(url=f"sqlite+aiosqlite:///{path}"))
    keys = [Filter("owner", "in", [1])]
    plus_one = timezone(timedelta(hours=1))
    seen = []
    try:
        for at in (datetime(2024, 1, 1, 10, tzinfo=UTC), datetime(2024, 1, 1, 11, tzinfo=plus_one)):
            where = [Filter("created_at", "lt", at)]
            counted = [Aggregate("count", None, "n")]
            alone = await conn.aggregate("orders", ["owner"], counted, [*keys, *where])
            together = [replace(counted[0], where=where), Aggregate("count", None, "rows")]
            [one] = await conn.aggregate("orders", ["owner"], together, keys)
            want = alone[0]["n"] if alone else 0
            assert int(one["n"]) == int(want), at
            seen.append(want)
        assert seen == [0, 1], "the two values bind differently here"
    finally:
        await conn.aclose()
