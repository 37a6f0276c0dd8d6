"""What one SQLite statement costs through each layer custview stacks on it.

The same indexed lookup (a customer by normalised email, the statement the
stitching rounds send most) is run N times through:

* ``sqlite3`` directly (the engine's own cost);
* ``aiosqlite`` (one thread hop per call: the request goes to the
  connection's thread and the answer comes back through the event loop);
* SQLAlchemy's async engine over aiosqlite (pool checkout, statement
  compilation cache, result processing, greenlet switches);
* custview's SQL connector (``lookup_many``: the statement built with
  SQLAlchemy Core, rows grouped by key) on its direct path (the default:
  compiled once per shape, run on the loop's thread within
  ``sqlite_inline_budget``, else in one hop to a pooled ``sqlite3``
  connection's thread), with every statement sent to the thread
  (``sqlite_inline_budget: 0``), and through SQLAlchemy's async engine
  (``sqlite_direct: false``), and the resilience and observer wrappers the
  federation puts around it;
* aiosqlite with the statements of one stitching round sent as one job to
  the connection's thread (``executescript`` is not usable for SELECTs, so
  a single ``run`` of a function doing them all) — the batching the issue
  suggests.

    python -m tests.bench.sqlite_driver [--customers 100000] [-n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from connectors.sql import SQLConnector
from gateway.settings import load_settings
from tests.bench.floor import SALES_CUSTOMERS
from tests.bench.run import DEFAULT_DATA_ROOT, demo_dir_env, sql_only_config

ROUND = 4
"""Statements in one stitching round of a customer 360 (one per member table)."""


def _emails(db: Path, n: int) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT lower(trim(email)) FROM customers WHERE email LIKE '%@%' LIMIT ?", (n,)
        ).fetchall()
    finally:
        con.close()
    return [str(r[0]) for r in rows]


async def _time(
    label: str, run: Callable[[str], Awaitable[Any]], emails: Sequence[str]
) -> dict[str, Any]:
    for email in emails[:50]:
        await run(email)
    samples = []
    cpu = time.process_time()
    for email in emails:
        started = time.perf_counter()
        await run(email)
        samples.append((time.perf_counter() - started) * 1e6)
    cpu_us = (time.process_time() - cpu) * 1e6 / len(emails)
    return {"layer": label, "median_us": statistics.median(samples), "cpu_us": cpu_us}


async def measure(data_dir: Path, n: int) -> list[dict[str, Any]]:
    db = data_dir / "sales.db"
    emails = _emails(db, n)
    where = SALES_CUSTOMERS.identity[0][2]
    sql = f"SELECT {', '.join(SALES_CUSTOMERS.columns)} FROM customers WHERE {where} IN (?)"
    results = []

    plain = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)

    async def direct(email: str) -> Any:
        return plain.execute(sql, (email,)).fetchall()

    results.append(await _time("sqlite3 (no thread hop)", direct, emails))

    conn = await aiosqlite.connect(f"file:{db}?mode=ro", uri=True)

    async def hop(email: str) -> Any:
        return await conn.execute_fetchall(sql, (email,))

    results.append(await _time("aiosqlite", hop, emails))

    def round_of(email: str) -> list[Any]:
        return [plain_thread.execute(sql, (email,)).fetchall() for _ in range(ROUND)]

    plain_thread = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)

    async def one_hop_round(email: str) -> Any:
        return await asyncio.to_thread(round_of, email)

    async def hop_round(email: str) -> Any:
        return [await conn.execute_fetchall(sql, (email,)) for _ in range(ROUND)]

    batched = await _time(f"{ROUND} statements, one thread hop", one_hop_round, emails)
    separate = await _time(f"{ROUND} statements, aiosqlite (a hop each)", hop_round, emails)

    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")

    async def alchemy(email: str) -> Any:
        async with engine.connect() as c:
            return (await c.execute(text(sql.replace("(?)", "(:e)")), {"e": email})).fetchall()

    results.append(await _time("SQLAlchemy async + aiosqlite (text)", alchemy, emails))
    held = await engine.connect()

    async def alchemy_held(email: str) -> Any:
        return (await held.execute(text(sql.replace("(?)", "(:e)")), {"e": email})).fetchall()

    results.append(await _time("  the same on one connection (no checkout)", alchemy_held, emails))
    await held.close()

    with demo_dir_env(data_dir):
        loaded = load_settings(sql_only_config(data_dir))
    wrapped = loaded.create_connectors()["sales"]
    bare = wrapped
    while hasattr(bare, "inner"):
        bare = bare.inner
    columns = list(SALES_CUSTOMERS.columns)

    async def connector(email: str) -> Any:
        return await bare.lookup_many("customers", "email", [email], columns, transform="casefold")

    async def federated(email: str) -> Any:
        return await wrapped.lookup_many(
            "customers", "email", [email], columns, transform="casefold"
        )

    engine_path = SQLConnector(bare.name, bare.options.model_copy(update={"sqlite_direct": False}))

    async def through_engine(email: str) -> Any:
        return await engine_path.lookup_many(
            "customers", "email", [email], columns, transform="casefold"
        )

    hop_path = SQLConnector(
        bare.name, bare.options.model_copy(update={"sqlite_inline_budget": 0.0})
    )

    async def through_thread(email: str) -> Any:
        return await hop_path.lookup_many(
            "customers", "email", [email], columns, transform="casefold"
        )

    results.append(
        await _time("custview SQL connector, sqlite_direct: false", through_engine, emails)
    )
    results.append(
        await _time("custview SQL connector, sqlite_inline_budget: 0", through_thread, emails)
    )
    results.append(await _time("custview SQL connector (direct path)", connector, emails))
    results.append(await _time("+ resilience, observer (as federated)", federated, emails))
    await engine_path.aclose()
    await hop_path.aclose()
    results += [separate, batched]
    await conn.close()
    await engine.dispose()
    await wrapped.aclose()
    plain.close()
    plain_thread.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.sqlite_driver", description=__doc__
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_ROOT)
    args = parser.parse_args(argv)
    data_dir = args.data_dir / str(args.customers)
    if not (data_dir / "sales.db").exists():
        print(f"no demo data in {data_dir}; run make bench first", file=sys.stderr)
        return 1
    rows = asyncio.run(measure(data_dir, args.n))
    print(f"one indexed lookup by email, {args.n} runs, {args.customers:,} customers")
    print(f"{'layer':<50} {'median µs':>10} {'CPU µs':>8}")
    for r in rows:
        print(f"{r['layer']:<50} {r['median_us']:>10.0f} {r['cpu_us']:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
