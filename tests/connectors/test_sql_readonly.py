"""The statement guard on its own: what counts as a read."""

from __future__ import annotations

import pytest
from sqlalchemy import select, table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url

from connectors import ReadOnlyViolation
from connectors.sql.engine import read_only_url
from connectors.sql.readonly import check_statement, identifier
from connectors.sql.statements import col

READS = [
    "SELECT id FROM people WHERE name = $1",
    "  select 1",
    "(SELECT 1) UNION (SELECT 2)",
    "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
    "SELECT 'DELETE FROM people' AS harmless",
    'SELECT "update", "delete" FROM "insert"',
    "SELECT `into` FROM t",
    "SELECT 1;",
    "SHOW standard_conforming_strings",
    "SHOW CREATE TABLE `people`",
    "DESCRIBE `custview_test`.`people`",
    "EXPLAIN SELECT 1",
    'PRAGMA main.table_info("people")',
    "PRAGMA main.index_list('people')",
    "PRAGMA query_only",
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION max_statement_time = 2",
]

WRITES = [
    "INSERT INTO people VALUES (1)",
    "insert into people values (1)",
    "UPDATE people SET name = 'x'",
    "DELETE FROM people",
    "MERGE INTO people USING x ON true WHEN MATCHED THEN DELETE",
    "REPLACE INTO people VALUES (1)",
    "TRUNCATE people",
    "CREATE TABLE x (id int)",
    "DROP TABLE people",
    "ALTER TABLE people ADD COLUMN x int",
    "GRANT ALL ON people TO public",
    "COPY people FROM '/tmp/x'",
    "CALL proc()",
    "LOCK TABLE people",
    "VACUUM",
    "BEGIN",
    "COMMIT",
    "WITH gone AS (DELETE FROM people RETURNING id) SELECT id FROM gone",
    "SELECT * INTO backup FROM people",
    "SELECT * FROM people INTO OUTFILE '/tmp/x'",
    "SELECT * FROM people FOR UPDATE",
    "EXPLAIN ANALYZE DELETE FROM people",
    "SELECT 1; DELETE FROM people",
    "SELECT 1 /* ; */ ; DROP TABLE people",
    "/* SELECT */ DELETE FROM people",
    "-- SELECT\nDELETE FROM people",
    "PRAGMA query_only = 0",
    "PRAGMA user_version = 7",
    "PRAGMA optimize",
    "PRAGMA main.user_version(7)",
    "SET GLOBAL max_connections = 1",
    "SET SESSION TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET PASSWORD = 'x'",
    "SET ROLE admin",
    "",
]


@pytest.mark.parametrize("statement", READS)
def test_reads_pass(statement: str) -> None:
    check_statement(statement, "src")


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_refused(statement: str) -> None:
    with pytest.raises(ReadOnlyViolation) as info:
        check_statement(statement, "src")
    assert info.value.source == "src"
    assert info.value.code == "READ_ONLY"


@pytest.mark.parametrize(
    "dialect", [postgresql.asyncpg.dialect, mysql.aiomysql.dialect, sqlite.aiosqlite.dialect]
)
def test_columns_named_like_write_keywords_are_quoted(dialect: type[Dialect]) -> None:
    stmt = select(col("update"), col("into"), col("name")).select_from(table(identifier("delete")))
    sql = str(stmt.compile(dialect=dialect()))
    check_statement(sql, "src")


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("sqlite+aiosqlite:////data/crm.db", "file:/data/crm.db"),
        ("sqlite+aiosqlite:///demo data/crm#1.db", "file:demo%20data/crm%231.db"),
        ("sqlite+aiosqlite:///file:/data/crm.db?mode=rw&uri=true", "file:/data/crm.db"),
    ],
)
def test_sqlite_files_open_read_only(url: str, database: str) -> None:
    converted = read_only_url(make_url(url))
    assert converted.database == database
    assert dict(converted.query) == {"mode": "ro", "uri": "true"}


def test_other_urls_are_unchanged() -> None:
    url = make_url("postgresql+asyncpg://u@h/db")
    assert read_only_url(url) is url
