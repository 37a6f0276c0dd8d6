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
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, column, event, select, table, text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors import Aggregate, Filter, KeyLookup
from connectors._base import LookupTransform
from connectors.errors import ConnectorError
from connectors.sql import SQLConnector, SQLOptions
from connectors.sql.expressions import transformed
from resolvers import metrics
from resolvers.model import EntityFieldSpec, MetricSpec, ParentSpec, RelationSpec
from tests.support.engines import ENGINES, engine_url, run_statements

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


@pytest.fixture(scope="module", params=ENGINES)
def words_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding the ``words`` table, written once per engine."""
    url = engine_url(request, tmp_path_factory, "words")
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


# --- the joined keys' statement ------------------------------------------------------------


async def test_a_joined_lookups_statement_does_not_grow_with_its_keys(
    connector: SQLConnector, words_url: str, sent: list[str]
) -> None:
    """The keys travel as one parameter (MySQL: JSON_TABLE; SQLite: json_each;
    PostgreSQL: an array), not a statement spelling out a SELECT per key."""
    few = WORDS
    many = [*WORDS, *(f"w{i}" for i in range(300))]
    got = await connector.lookup_many("words", "word", many, ["id"])
    assert ids(got)[: len(few)] == await oracle(words_url, "word", few)
    await connector.lookup_many("words", "word", few, ["id"])
    assert len(sent[-1]) == len(sent[-2]) < 2_000, sent[-2][:300]
    if _kind(connector.engine.dialect.name) == "postgresql":
        return  # text keys of an integer column are an error there
    texts = ["1", "10", "x", *(str(i) for i in range(100, 400))]  # an integer column
    got = await connector.lookup_many("words", "n", texts, ["id"])
    assert ids(got)[:3] == await oracle(words_url, "n", texts[:3])
    await connector.lookup_many("words", "n", texts[:3], ["id"])
    assert len(sent[-1]) == len(sent[-2]) < 2_000, sent[-2][:300]


async def _run(url: str, *script: str) -> None:
    await run_statements(url, script)


async def test_sqlite_an_int_key_finds_its_text_row(tmp_path: Path) -> None:
    """A bound int is converted by a TEXT column's affinity (``code = 5`` finds '5'); a
    joined key must be too (json_each's value has BLOB affinity, which is not)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'aff.db'}"
    await _run(
        url,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT COLLATE NOCASE)",
        "INSERT INTO t VALUES (1, '5'), (2, 'abc')",
    )
    connector = SQLConnector("aff", SQLOptions(url=url))
    try:
        got = await connector.lookup_many("t", "code", [5, "ABC"], ["id"])
    finally:
        await connector.aclose()
    assert ids(got) == [[1], [2]]


async def test_sqlite_many_blob_keys(tmp_path: Path) -> None:
    """More blob keys than SQLite's 500 terms of a compound SELECT."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'blobs.db'}"
    rows = ", ".join(f"({i}, X'{i:032x}')" for i in range(1, 701))
    await _run(
        url,
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, u BLOB)",
        f"INSERT INTO blobs VALUES {rows}",
    )
    connector = SQLConnector("blobs", SQLOptions(url=url))
    try:
        keys = [i.to_bytes(16, "big") for i in range(1, 602)]
        got = await connector.lookup_many("blobs", "u", keys, ["id"])
    finally:
        await connector.aclose()
    assert ids(got) == [[i] for i in range(1, 602)]


async def test_a_table_read_before_it_exists_is_read_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'late.db'}"
    await _run(url, "CREATE TABLE other (id INTEGER PRIMARY KEY)")
    connector = SQLConnector("late", SQLOptions(url=url))
    statements: list[str] = []
    event.listen(
        connector.engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *args: statements.append(statement),
    )
    try:
        with pytest.raises(ConnectorError):
            await connector.lookup_many("late", "id", [1], ["id"])
        await _run(url, "CREATE TABLE late (id INTEGER PRIMARY KEY)", "INSERT INTO late VALUES (1)")
        assert ids(await connector.lookup_many("late", "id", [1], ["id"])) == [[1]]
        assert "JSON_EACH" not in statements[-1].upper(), "an INTEGER column: the IN list"
    finally:
        await connector.aclose()


@pytest.mark.postgres
async def test_postgres_char_n_keys_are_not_cut_off(postgres_db_url: str) -> None:
    """A joined key is cast to the column's type without its length: ``bpchar``, not
    ``character`` (char(1), which cut 'abcde' to 'a')."""
    await _run(
        postgres_db_url,
        "DROP TABLE IF EXISTS fixed",
        "CREATE TABLE fixed (id INTEGER PRIMARY KEY, code char(5), bits bit(3))",
        "INSERT INTO fixed VALUES (1, 'abcde', B'101'), (2, 'a', B'100'), (3, 'ab', B'111')",
    )
    connector = SQLConnector("fixed", SQLOptions(url=postgres_db_url))
    try:
        got = await connector.lookup_many("fixed", "code", ["abcde", "ab ", "a", "x"], ["id"])
        assert ids(got) == [[1], [3], [2], []]
    finally:
        await connector.aclose()


async def test_sqlite_joined_keys_are_never_matched_row_by_row(tmp_path: Path) -> None:
    """An indexed column is searched through its index per key, an unindexed one
    scanned once, and the keys find their rows through an index (a filter ``col IN
    (SELECT ... json_each)`` beside the join made SQLite scan all the keys per row
    found: quadratic; the join alone scanned the table per key)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}"
    await _run(
        url,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT COLLATE NOCASE, "
        "note TEXT COLLATE NOCASE)",
        "CREATE INDEX ix_code ON t (code)",
        "INSERT INTO t VALUES (1, 'a', 'x'), (2, 'b', 'y')",
    )
    connector = SQLConnector("plan", SQLOptions(url=url))
    sent: list[tuple[str, Any]] = []
    event.listen(
        connector.engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, parameters, *args: sent.append((statement, parameters)),
    )
    plans = []
    try:
        for name, keys in (("code", ["A", "b"]), ("note", ["X", "y"])):
            assert ids(await connector.lookup_many("t", name, keys, ["id"])) == [[1], [2]]
            statement, parameters = sent[-1]
            with sqlite3.connect(tmp_path / "plan.db") as db:
                explain = f"EXPLAIN QUERY PLAN {statement}"
                plans.append([row[-1] for row in db.execute(explain, parameters)])
    finally:
        await connector.aclose()
    indexed, unindexed = plans
    assert [p for p in indexed if " t " in f"{p} "] == ["SEARCH t USING INDEX ix_code (code=?)"]
    assert [p for p in unindexed if " t " in f"{p} "] == ["SCAN t"]
    for plan in plans:
        assert "USING AUTOMATIC" in plan[-1] and plan[-1].startswith("SEARCH"), plan


@pytest.mark.mariadb
async def test_mariadb_keys_a_column_cannot_hold_find_nothing(mariadb_db_url: str) -> None:
    """A key in characters the column's character set lacks (an emoji in utf8mb3, an
    omega in latin1) finds no row: JSON_TABLE read it as ``?`` and found the '?' row
    (the database refuses the bare comparison: an illegal mix of collations); a key
    past 65,535 bytes is not cut off (TEXT cut it, and it found the shorter row); keys
    of mixed types are compared as bound (no CAST to a collation's name)."""
    long_a, long_b = "x" * 65_535, "x" * 70_000
    await _run(
        mariadb_db_url,
        "DROP TABLE IF EXISTS narrow",
        "CREATE TABLE narrow (id INTEGER PRIMARY KEY, "
        "v3 VARCHAR(20) CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci, "
        "l1 VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci, "
        "body LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci)",
        f"INSERT INTO narrow VALUES (1, 'abc', 'abc', '{long_a}'), (2, '?', '?', '{long_b}')",
    )
    connector = SQLConnector("narrow", SQLOptions(url=mariadb_db_url))
    try:
        got = await connector.lookup_many("narrow", "v3", ["\N{GRINNING FACE}", "ABC"], ["id"])
        assert ids(got) == [[], [1]]
        got = await connector.lookup_many(
            "narrow", "l1", ["\N{GREEK SMALL LETTER OMEGA}", "?"], ["id"]
        )
        assert ids(got) == [[], [2]]
        assert ids(await connector.lookup_many("narrow", "body", [long_b], ["id"])) == [[2]]
        assert ids(await connector.lookup_many("narrow", "v3", ["ABC", 1], ["id"])) == [[1], []]
    finally:
        await connector.aclose()
