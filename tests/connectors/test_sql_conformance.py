"""The shipped conformance suite, run by the SQL connector on every engine.

The dataset is written with a plain writable engine; the read-only
SQLConnector then reads it, like any source custview is pointed at.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Numeric, String, Table, text
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.conformance import DATASET, ConnectorConformance, LargeTable, SlowTable
from connectors.sql import SQLConnector, SQLOptions

LARGE = LargeTable("conformance_large", rows=100_000)
SLOW = SlowTable("conformance_slow", "x")
TIMEOUT = 2.0


def _people(dialect: str) -> tuple[MetaData, Table]:
    metadata = MetaData()
    stamp: Any = mysql.DATETIME(fsp=6) if dialect in ("mysql", "mariadb") else DateTime
    table = Table(
        DATASET.table,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("email", String(254)),
        Column("phone", String(50)),
        Column("name", String(100), nullable=False),
        Column("country", String(2)),
        Column("score", Numeric(8, 2)),
        Column("created_at", stamp, nullable=False),
    )
    return metadata, table


_VIEWS = {
    "sqlite": [
        f"CREATE VIEW {LARGE.name} AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL "
        f"SELECT n + 1 FROM c WHERE n < {LARGE.rows}) SELECT n AS id, 'row ' || n AS label FROM c",
        f"CREATE VIEW {SLOW.name} AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL "
        "SELECT n + 1 FROM c WHERE n < 2000000000) SELECT max(n) AS x FROM c",
    ],
    "postgresql": [
        f"CREATE VIEW {LARGE.name} AS SELECT n AS id, 'row ' || n AS label "
        f"FROM generate_series(1, {LARGE.rows}) AS n",
        f"CREATE VIEW {SLOW.name} AS SELECT 1 AS x FROM pg_sleep({TIMEOUT * 3})",
    ],
    "mysql": [
        f"CREATE VIEW {LARGE.name} AS SELECT seq AS id, CONCAT('row ', seq) AS label "
        f"FROM seq_1_to_{LARGE.rows}",
        f"CREATE VIEW {SLOW.name} AS SELECT SLEEP({TIMEOUT * 3}) AS x",
    ],
}


async def load_dataset(url: str) -> None:
    """Write :data:`DATASET` and the large/slow views with a writable engine."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            dialect = conn.dialect.name
            metadata, people = _people(dialect)
            for view in (LARGE.name, SLOW.name):
                await conn.execute(text(f"DROP VIEW IF EXISTS {view}"))
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
            await conn.execute(people.insert(), DATASET.copy_rows())
            for view in _VIEWS[dialect.replace("mariadb", "mysql")]:
                await conn.execute(text(view))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("conformance") / "people.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(load_dataset(url))
    return url


@pytest.fixture(scope="module")
def loaded_postgres_url(postgres_db_url: str) -> str:
    asyncio.run(load_dataset(postgres_db_url))
    return postgres_db_url


@pytest.fixture(scope="module")
def loaded_mariadb_url(mariadb_db_url: str) -> str:
    asyncio.run(load_dataset(mariadb_db_url))
    return mariadb_db_url


async def _connector(url: str) -> AsyncIterator[SQLConnector]:
    conn = SQLConnector("conformance", SQLOptions(url=url, timeout=TIMEOUT))
    yield conn
    await conn.aclose()


class SQLConformance(ConnectorConformance):
    large_table = LARGE
    slow_table = SLOW


class TestSQLiteConformance(SQLConformance):
    @pytest.fixture
    async def connector(self, sqlite_url: str) -> AsyncIterator[SQLConnector]:
        async for conn in _connector(sqlite_url):
            yield conn


@pytest.mark.postgres
class TestPostgreSQLConformance(SQLConformance):
    """The test databases use the ``C.UTF-8`` collation: binary text order."""

    @pytest.fixture
    async def connector(self, loaded_postgres_url: str) -> AsyncIterator[SQLConnector]:
        async for conn in _connector(loaded_postgres_url):
            yield conn


@pytest.mark.mariadb
class TestMariaDBConformance(SQLConformance):
    def text_key(self, value: str) -> Any:
        # utf8mb4_general_ci: case-insensitive, trailing spaces ignored.
        return value.upper().rstrip(" ")

    @pytest.fixture
    async def connector(self, loaded_mariadb_url: str) -> AsyncIterator[SQLConnector]:
        async for conn in _connector(loaded_mariadb_url):
            yield conn
