"""The small people dataset the SQL connector suite reads, on every engine."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, Numeric, String, Table, text
from sqlalchemy.ext.asyncio import create_async_engine

metadata = MetaData()
people = Table(
    "people",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("email", String(254)),
    Column("phone", String(50)),
    Column("name", String(100), nullable=False),
    Column("country", String(2)),
    Column("score", Numeric(8, 2), nullable=False),
    Column("created_at", DateTime, nullable=False),
)
keywords = Table(
    "keywords",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("update", String(20)),
    Column("delete", String(20)),
)

COUNTRIES = ["US", "GB", "DE", "FR", None]
PHONES = ["+1 (555) 010-{n}", "1-555-010-{n}", "1.555.010.{n}", "+1 555 010 {n}", "1/555/010/{n}"]
EMAILS = [
    "user{i}@example.com",
    "  User{i}@Example.com",
    "USER{i}@EXAMPLE.COM  ",
    "user{i}@example.com ",
]
INJECTION = "1..2) OR (1=1"
PERCENT_NAME = "100% real_name"


def people_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(1, 51):
        rows.append(
            {
                "id": i,
                "email": EMAILS[i % 4].format(i=i),
                "phone": None if i % 10 == 0 else PHONES[i % 5].format(n=f"{i:04d}"),
                "name": f"Person {i:02d}",
                "country": COUNTRIES[i % 5],
                "score": Decimal(i * 3) / 2,
                "created_at": datetime(2024, 1, 1) + timedelta(hours=i),
            }
        )
    rows[6]["name"] = PERCENT_NAME
    rows[7]["name"] = INJECTION
    rows[49]["email"] = " USER1@example.com"  # a duplicate of person 1 inside the system
    return rows


ROWS = people_rows()

VIEWS = {
    "sqlite": [
        "CREATE VIEW slow AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
        "WHERE n < 2000000000) SELECT max(n) AS x FROM c",
        "CREATE VIEW numbers AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
        "WHERE n < 100000000) SELECT n FROM c",
    ],
    "postgresql": [
        "CREATE VIEW slow AS SELECT 1 AS x FROM pg_sleep(3)",
        "CREATE VIEW numbers AS SELECT generate_series(1, 100000000) AS n",
    ],
    "mysql": [
        "CREATE VIEW slow AS SELECT SLEEP(3) AS x",
        "CREATE VIEW numbers AS SELECT seq AS n FROM seq_1_to_100000000",
    ],
}


async def create_people_database(url: str) -> None:
    """Write the dataset (and the slow/huge views) with a plain writable engine."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
            await conn.execute(people.insert(), ROWS)
            await conn.execute(keywords.insert(), [{"id": 1, "update": "u1", "delete": "d1"}])
            for view in VIEWS[conn.dialect.name.replace("mariadb", "mysql")]:
                await conn.execute(text(view))
    finally:
        await engine.dispose()


async def count_people(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM people"))).scalar_one())
    finally:
        await engine.dispose()
