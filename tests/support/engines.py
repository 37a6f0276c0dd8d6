"""Test setup for the multi-engine suites: databases to read, filled with data.

These helpers write, on purpose, with plain engines: they build the sources
that the read-only connector is then pointed at. None of this is product code.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    func,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from connectors._base import LookupTransform
from connectors.sql.expressions import transformed

BATCH = 1000

DEFAULT_EXPRESSION_INDEXES: Mapping[str, LookupTransform] = {
    "email": "casefold",
    "phone": "digits",
    "mobile": "digits",
}
"""Column name to the lookup transform indexed for it (engines with expression indexes)."""


async def copy_sqlite_database(
    sqlite_path: Path,
    target_url: str,
    metadata: MetaData,
    expression_indexes: Mapping[str, LookupTransform] = DEFAULT_EXPRESSION_INDEXES,
) -> None:
    """(Re)create ``metadata``'s tables on ``target_url`` and copy every row from the file.

    ISO text timestamps and dates become ``datetime``/``date``, numerics stay
    exact ``Decimal``. Existing tables of the same names are dropped first, so
    the copy can be repeated. PostgreSQL also gets expression indexes on
    :func:`transformed` columns, matching what lookups send.
    """
    engine = create_async_engine(target_url)
    try:
        async with engine.begin() as conn:
            target = _target_metadata(metadata, conn.dialect.name)
            await conn.run_sync(target.drop_all)
            await conn.run_sync(target.create_all)
            if conn.dialect.name == "postgresql":
                await _create_expression_indexes(conn, target, expression_indexes)
        for table in target.sorted_tables:
            rows = await asyncio.to_thread(_read_rows, sqlite_path, table)
            async with engine.begin() as conn:
                for start in range(0, len(rows), BATCH):
                    await conn.execute(table.insert(), rows[start : start + BATCH])
                if conn.dialect.name == "postgresql":
                    await _advance_sequences(conn, table)
    finally:
        await engine.dispose()


def _target_metadata(metadata: MetaData, dialect: str) -> MetaData:
    """A private copy of ``metadata`` (indexes added later must not leak into the
    caller's), adapted to ``dialect``: MySQL keeps fractional seconds."""
    copy = MetaData()
    for table in metadata.sorted_tables:
        new = table.to_metadata(copy)
        if dialect in ("mysql", "mariadb"):
            for column in new.columns:
                if isinstance(column.type, DateTime):
                    column.type = mysql.DATETIME(fsp=6)
    return copy


async def _create_expression_indexes(
    conn: AsyncConnection, metadata: MetaData, indexes: Mapping[str, LookupTransform]
) -> None:
    for table in metadata.sorted_tables:
        for column in table.columns:
            transform = indexes.get(column.name)
            if transform is None or transform == "exact":
                continue
            name = f"ix_{table.name}_{column.name}_{transform}"
            index = Index(name, transformed(column, transform))
            await conn.run_sync(index.create)


async def _advance_sequences(conn: AsyncConnection, table: Table) -> None:
    for column in table.primary_key.columns:
        if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
            sequence = func.pg_get_serial_sequence(table.name, column.name)
            top = select(func.coalesce(func.max(column), 0) + 1).scalar_subquery()
            await conn.execute(select(func.setval(sequence, top, False)))


def _read_rows(sqlite_path: Path, table: Table) -> list[dict[str, Any]]:
    names = [c.name for c in table.columns]
    convert = [_converter(c.type) for c in table.columns]
    quoted = ", ".join(f'"{n}"' for n in names)
    with contextlib.closing(sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)) as db:
        cursor = db.execute(f'SELECT {quoted} FROM "{table.name}"')
        return [
            {n: (None if v is None else f(v)) for n, f, v in zip(names, convert, row, strict=True)}
            for row in cursor
        ]


def _converter(type_: Any) -> Callable[[Any], Any]:
    if isinstance(type_, DateTime):
        return _to_datetime
    if isinstance(type_, Date):
        return lambda v: v if isinstance(v, date) else date.fromisoformat(str(v)[:10])
    if isinstance(type_, Numeric) and not isinstance(type_, Integer):
        return lambda v: v if isinstance(v, Decimal) else Decimal(str(v))
    return lambda v: v


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    # Stored as UTC; the target columns are naive (TIMESTAMP WITHOUT TIME ZONE).
    return parsed.replace(tzinfo=None) if parsed.tzinfo else parsed


# --- fresh databases per test module -------------------------------------------------------


@contextlib.contextmanager
def fresh_database(base_url: str, prefix: str = "custview_test") -> Iterator[str]:
    """A new, empty database next to ``base_url``'s (PostgreSQL or MySQL/MariaDB).

    Yields its URL and drops it afterwards. Synchronous on purpose: usable
    from session/module-scoped fixtures without sharing an event loop.
    """
    url = make_url(base_url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_admin(base_url, [f"CREATE DATABASE {name}"]))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        drop = f"DROP DATABASE IF EXISTS {name}"
        if url.get_backend_name() == "postgresql":
            drop += " WITH (FORCE)"
        asyncio.run(_admin(base_url, [drop]))


async def run_statements(url: str, sql: Sequence[str]) -> None:
    """Runs ``sql`` on ``url``, each statement committed on its own (AUTOCOMMIT)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in sql:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


_admin = run_statements


ENGINES = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
"""The params of a fixture run on every engine (:func:`engine_url`)."""


def engine_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str
) -> str:
    """The URL of an empty database for a fixture parametrised by engine (``sqlite``, a
    file named ``name``; ``postgresql``/``mariadb``, the session's fresh database)."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp(name) / f"{name}.db"
        return f"sqlite+aiosqlite:///{path}"
    fixture = {"postgresql": "postgres_db_url", "mariadb": "mariadb_db_url"}[request.param]
    url: str = request.getfixturevalue(fixture)
    return url


async def can_connect(url: str, within: float = 3.0) -> str | None:
    """``None`` when ``url`` answers ``SELECT 1``, else the reason (without secrets)."""
    engine = create_async_engine(url)
    try:
        async with asyncio.timeout(within), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        await engine.dispose()
    return None
