"""copy_sqlite_database: demo data moved onto PostgreSQL and MariaDB faithfully."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import MetaData, inspect, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.demodata.schema import METADATA
from tests.support.engines import copy_sqlite_database

SALES: MetaData = METADATA["sales"]


@pytest.fixture(scope="module")
def sales_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("copy") / "sales.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in sales_ddl(path):
            db.execute(statement)
        db.executemany(
            "INSERT INTO customers (id, email, first_name, phone, accepts_marketing, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (1, " Ann@Example.com", "Ann", "+44 20 7946 0001", 1,
                 "2024-03-01T10:00:00", "2024-03-02 11:30:15.250000"),
                (2, None, "Bob", None, 0, "2024-03-01 09:00:00", "2024-03-01 09:00:00"),
            ],
        )  # fmt: skip
        db.execute(
            "INSERT INTO orders (id, customer_id, order_number, status, currency, total, "
            "created_at, updated_at) VALUES (1, 1, 'SO-1', 'paid', 'EUR', 19.99, "
            "'2024-03-05T08:00:00', '2024-03-05T08:00:00')"
        )
        db.commit()
    return path


def sales_ddl(path: Path) -> list[str]:
    from sqlalchemy import create_mock_engine

    statements: list[str] = []

    def record(sql: object, *args: object, **kwargs: object) -> None:
        statements.append(str(sql.compile(dialect=engine.dialect)))  # type: ignore[attr-defined]

    engine = create_mock_engine(f"sqlite:///{path}", record)
    SALES.create_all(engine, checkfirst=False)
    return statements


@pytest.fixture(
    params=[
        pytest.param("postgres_db_url", marks=pytest.mark.postgres),
        pytest.param("mariadb_db_url", marks=pytest.mark.mariadb),
    ]
)
def target_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


async def test_copy_keeps_types_and_is_repeatable(sales_db: Path, target_url: str) -> None:
    await copy_sqlite_database(sales_db, target_url, SALES)
    await copy_sqlite_database(sales_db, target_url, SALES)  # repeatable
    engine = create_async_engine(target_url)
    try:
        async with engine.connect() as conn:
            customers = SALES.tables["customers"]
            orders = SALES.tables["orders"]
            rows = (await conn.execute(select(customers).order_by(customers.c.id))).all()
            assert [r.id for r in rows] == [1, 2]
            assert rows[0].created_at == datetime(2024, 3, 1, 10, 0, 0)
            assert rows[0].updated_at == datetime(2024, 3, 2, 11, 30, 15, 250000)
            assert rows[0].email == " Ann@Example.com"
            total = (await conn.execute(select(orders.c.total))).scalar_one()
            assert total == Decimal("19.99")
            assert (await conn.execute(text("SELECT count(*) FROM order_lines"))).scalar() == 0
            if conn.dialect.name == "postgresql":
                indexes = await conn.run_sync(
                    lambda c: {i["name"] for i in inspect(c).get_indexes("customers")}
                )
                assert {"ix_customers_email_casefold", "ix_customers_phone_digits"} <= indexes
                following = await conn.execute(
                    text("SELECT nextval(pg_get_serial_sequence('customers', 'id'))")
                )
                assert following.scalar() == 3
    finally:
        await engine.dispose()
