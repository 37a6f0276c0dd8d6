"""Each lookup key gets exactly the rows the database's ``=`` gives it, on every engine.

The rows of a lookup used to be given back to the keys in Python, and Python's
``==`` is not the database's where a collation ignores case, accents or trailing
spaces (MariaDB's ``utf8mb4_general_ci``, SQLite's ``NOCASE``), where a type ignores
case (PostgreSQL's ``citext``) or where type affinity converts the key (SQLite's
``'1'`` finds the INTEGER ``1``). The oracle here asks the database about one key at
a time, ``WHERE transformed(column) = :key``, through a plain engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, column, event, select, table, text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors import Aggregate, Filter, KeyLookup
from connectors._base import LookupTransform
from connectors.sql import SQLConnector, SQLOptions
from connectors.sql.expressions import transformed
from resolvers import metrics
from resolvers.model import EntityFieldSpec, MetricSpec, ParentSpec, RelationSpec

ROWS = [
    (1, "abc", 1, "abc"),
    (2, "ABC", 2, "ABC"),
    (3, "straße", 3, "abc"),
    (4, "José", 4, "nobody"),
    (5, "abc ", 10, "ABC"),
    (6, "Straße", 11, "x"),
]
WORDS = ["abc", "ABC", "straße", "STRASSE", "Jose", "abc ", "missing"]

TABLES = {
    "sqlite": "CREATE TABLE words (id INTEGER PRIMARY KEY, word TEXT COLLATE NOCASE, "
    "n INTEGER, owner TEXT COLLATE NOCASE)",
    "postgresql": "CREATE TABLE words (id INTEGER PRIMARY KEY, word citext, n INTEGER, "
    "owner citext)",
    "mysql": "CREATE TABLE words (id INTEGER PRIMARY KEY, "
    "word VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, n INTEGER, "
    "owner VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci)",
}
NUMBERS: dict[str, list[Any]] = {
    # SQLite's INTEGER affinity turns a key that looks like a number into one
    "sqlite": ["1", 2, "10", "x", "1.0"],
    "postgresql": [1, 2, 10, 99],
    "mysql": [1, 2, 10, 99],
}


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def words_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding the ``words`` table, written once per engine."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("keys") / "words.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        fixture = {"postgresql": "postgres_db_url", "mariadb": "mariadb_db_url"}[request.param]
        url = request.getfixturevalue(fixture)
    asyncio.run(_create_words(url))
    return url


async def _create_words(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            kind = _kind(conn.dialect.name)
            if kind == "postgresql":
                await conn.execute(text("CREATE EXTENSION IF NOT EXISTS citext"))
            await conn.execute(text("DROP TABLE IF EXISTS words"))
            await conn.execute(text(TABLES[kind]))
            await conn.execute(
                text("INSERT INTO words (id, word, n, owner) VALUES (:id, :word, :n, :owner)"),
                [dict(zip(("id", "word", "n", "owner"), row, strict=True)) for row in ROWS],
            )
    finally:
        await engine.dispose()


def _kind(dialect_name: str) -> str:
    return "mysql" if dialect_name in ("mysql", "mariadb") else dialect_name


@pytest.fixture()
async def connector(words_url: str) -> AsyncIterator[SQLConnector]:
    conn = SQLConnector("words_db", SQLOptions(url=words_url, timeout=5))
    yield conn
    await conn.aclose()


async def oracle(
    url: str, name: str, keys: list[Any], transform: LookupTransform = "exact"
) -> list[list[int]]:
    """Per key, the ids the database's ``=`` matches to it, asked one key at a time."""
    engine = create_async_engine(url)
    words = table("words", column("id"), column(name))
    stmt = (
        select(words.c.id)
        .where(transformed(words.c[name], transform) == bindparam("key"))
        .order_by(words.c.id)
    )
    try:
        async with engine.connect() as conn:
            return [
                [int(i) for i in (await conn.execute(stmt, {"key": key})).scalars()] for key in keys
            ]
    finally:
        await engine.dispose()


def ids(groups: list[list[dict[str, Any]]]) -> list[list[int]]:
    return [sorted(int(row["id"]) for row in rows) for rows in groups]


def numbers(connector: SQLConnector) -> list[Any]:
    return NUMBERS[_kind(connector.engine.dialect.name)]


# --- lookups -------------------------------------------------------------------------------


async def test_each_key_gets_the_rows_the_database_matches_to_it(
    connector: SQLConnector, words_url: str
) -> None:
    want = await oracle(words_url, "word", WORDS)
    assert want[0] == want[1] != [], "the collation matches abc and ABC alike"
    got = await connector.lookup_many("words", "word", [*WORDS, None, "ABC"], ["id", "word"])
    assert ids(got) == [*want, [], want[1]]


async def test_a_key_the_column_type_converts_finds_its_row(
    connector: SQLConnector, words_url: str
) -> None:
    keys = numbers(connector)
    want = await oracle(words_url, "n", keys)
    assert want[0] == [1]
    assert ids(await connector.lookup_many("words", "n", keys, ["id"])) == want
    assert ids(await connector.lookup_many("words", "n", keys[:1], ["id"])) == want[:1]


async def test_a_transformed_key_gets_the_rows_the_database_matches_to_it(
    connector: SQLConnector, words_url: str
) -> None:
    keys = ["jose", "josé", "strasse", "abc"]
    want = await oracle(words_url, "word", keys, "casefold")
    got = await connector.lookup_many("words", "word", keys, ["id"], "casefold")
    assert ids(got) == want


async def test_several_columns_each_get_the_rows_the_database_matches(
    connector: SQLConnector, words_url: str
) -> None:
    found = await connector.lookup_many_columns(
        "words",
        [KeyLookup("word", WORDS), KeyLookup("n", numbers(connector)), KeyLookup("owner", [])],
        ["id"],
    )
    assert [ids(groups) for groups in found] == [
        await oracle(words_url, "word", WORDS),
        await oracle(words_url, "n", numbers(connector)),
        [],
    ]


async def test_a_joined_lookup_is_chunked(words_url: str) -> None:
    connector = SQLConnector("words_db", SQLOptions(url=words_url, max_batch_size=2))
    try:
        got = await connector.lookup_many("words", "word", WORDS, ["id"])
        assert connector.statements == 4
    finally:
        await connector.aclose()
    assert ids(got) == await oracle(words_url, "word", WORDS)


# --- grouped aggregates and metrics --------------------------------------------------------


async def test_an_aggregate_by_listed_keys_has_a_group_per_key(
    connector: SQLConnector, words_url: str
) -> None:
    keys = ["abc", "ABC", "nobody", "missing"]
    rows = await connector.aggregate(
        "words",
        ["owner"],
        [Aggregate("count", None, "rows"), Aggregate("sum", "n", "total")],
        [Filter("owner", "in", keys)],
    )
    want = await oracle(words_url, "owner", keys)
    got = {row["owner"]: (int(row["rows"]), int(row["total"])) for row in rows}
    sums = {row[0]: row[2] for row in ROWS}
    assert got == {
        key: (len(matched), sum(sums[i] for i in matched))
        for key, matched in zip(keys, want, strict=True)
        if matched
    }


async def test_pushed_metrics_give_each_key_its_own_rows(
    connector: SQLConnector, words_url: str
) -> None:
    relation = RelationSpec(
        entity="Word",
        source="words_db",
        table="words",
        parent=ParentSpec(member="words_db.people", column="owner"),
        fields={"id": EntityFieldSpec(column="id", type="int")},
    )
    counted = {"rows": MetricSpec(relation="words", fn="count")}
    keys = ["abc", "ABC", "nobody"]
    want = await oracle(words_url, "owner", keys)
    got = await metrics.compute(connector, relation, counted, keys)
    assert [int(values["rows"]) for values in got] == [len(matched) for matched in want]
    columns = await metrics.compute_columns(connector, relation, counted, keys)
    assert columns == {"rows": {k: len(m) for k, m in zip(keys, want, strict=True)}}


# --- the cheap path where Python's ``==`` is the database's --------------------------------


@pytest.fixture()
def sent(connector: SQLConnector) -> list[str]:
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(connector.engine.sync_engine, "before_cursor_execute", seen)
    return statements


async def test_an_integer_column_and_int_keys_keep_the_in_list(
    connector: SQLConnector, words_url: str, sent: list[str]
) -> None:
    for _ in range(2):
        got = await connector.lookup_many("words", "id", [3, 1, 99], ["id"])
        assert ids(got) == [[3], [1], []]
    assert connector.catalog_statements == 1, "the table's columns are read once"
    assert connector.statements == 2
    assert all(" IN (" in s.upper() for s in sent[-2:]), sent
