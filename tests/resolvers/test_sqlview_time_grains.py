"""``date_trunc`` in the SQL endpoint truncates exactly as PostgreSQL does:
checked against a real PostgreSQL's own ``date_trunc`` in UTC."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from resolvers.sqlview.errors import SqlError
from resolvers.sqlview.select import TRUNC_UNITS, truncate


def _moments() -> list[datetime]:
    rng = random.Random(20261130)
    start = datetime(1969, 12, 25, tzinfo=UTC)
    picked = [start + timedelta(seconds=rng.randrange(0, 80 * 365 * 86400)) for _ in range(300)]
    picked = [m.replace(microsecond=rng.randrange(0, 1_000_000)) for m in picked]
    # the edges: new year, a leap day, quarter and week starts, a Sunday night
    picked += [
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 4, 1, tzinfo=UTC),
        datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
    ]
    return picked


async def _postgres_truncates(url: str, moments: list[datetime]) -> dict[str, list[datetime]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET TIME ZONE 'UTC'"))
            found: dict[str, list[datetime]] = {}
            for unit in TRUNC_UNITS:
                rows = await conn.execute(
                    text("SELECT date_trunc(:unit, m) FROM unnest(CAST(:ms AS timestamptz[])) m"),
                    {"unit": unit, "ms": moments},
                )
                found[unit] = [r[0] for r in rows]
            return found
    finally:
        await engine.dispose()


@pytest.mark.postgres
def test_truncation_is_postgresqls(postgres_url: str) -> None:
    moments = _moments()
    expected = asyncio.run(_postgres_truncates(postgres_url, moments))
    for unit in TRUNC_UNITS:
        assert [truncate(m, unit) for m in moments] == expected[unit], unit


def test_dates_naive_and_offset_timestamps() -> None:
    assert truncate(date(2026, 11, 30), "month") == datetime(2026, 11, 1, tzinfo=UTC)
    assert truncate(date(2026, 11, 29), "week") == datetime(2026, 11, 23, tzinfo=UTC)
    # a naive timestamp is UTC; an offset one is converted to UTC first
    assert truncate(datetime(2026, 1, 1, 0, 30), "day") == datetime(2026, 1, 1, tzinfo=UTC)
    plus_two = datetime.fromisoformat("2026-01-01T01:30:00+02:00")
    assert truncate(plus_two, "year") == datetime(2025, 1, 1, tzinfo=UTC)
    assert truncate(None, "day") is None
    with pytest.raises(SqlError, match="date or timestamp"):
        truncate("2026-01-01", "day")
