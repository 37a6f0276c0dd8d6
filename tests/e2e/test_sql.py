"""The SQL endpoint with real clients: Debian's psql, psycopg 3 and SQLAlchemy's
postgresql dialect against the demo, answers compared with GraphQL's for the
same caller."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from tests.e2e.conftest import walk
from tests.e2e.sql_endpoint import Endpoint

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEYS = {"admin": "demo-key", "support": "support-key", "regional": "emea-key"}
FILTER = {"country": {"in": ["DE", "GB"]}, "orderCount": {"ge": 1}}
SQL_FILTER = "country IN ('DE', 'GB') AND order_count >= 1"


async def _psql(endpoint: Endpoint, command: str, key: str = "demo-key") -> tuple[int, str, str]:
    psql = shutil.which("psql")
    assert psql, "Debian's postgresql-client provides psql (.ci/run installs it)"
    process = await asyncio.create_subprocess_exec(
        psql, "-X", "-h", "127.0.0.1", "-p", str(endpoint.port), "-U", "bi", "-d", "custview",
        "-c", command,
        env={**os.environ, "PGPASSWORD": key, "PGCONNECT_TIMEOUT": "10"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


WALK = """query($f: CustomerFilter, $after: String) {
    customers(first: 500, filter: $f, after: $after) {
    pageInfo { hasNextPage endCursor } nodes { %s } } }"""
EVERYTHING = "id email phone country lifetimeValue orderCount tickets { id status }"


async def _customers(
    endpoint: Endpoint, filter: Any, key: str = "demo-key", fields: str = EVERYTHING
) -> list[Any]:
    return await walk(endpoint.http, WALK % fields, {"X-API-Key": key}, f=filter)


async def test_psql_lists_and_describes_the_catalog(endpoint: Endpoint) -> None:
    code, out, err = await _psql(endpoint, r"\dt")
    assert code == 0, err
    for table in ("customers", "tickets", "orders", "opportunities", "surveys"):
        assert f" {table} " in out
    code, out, err = await _psql(endpoint, r"\dv")
    assert code == 0, err
    assert "high_value_at_risk" in out and "dormant" in out
    code, out, err = await _psql(endpoint, r"\d customers")
    assert code == 0, err
    assert 'Table "public.customers"' in out
    assert "lifetime_value" in out and "numeric" in out
    assert "timestamp with time zone" in out
    code, out, err = await _psql(endpoint, f"SELECT count(*) FROM customers WHERE {SQL_FILTER}")
    assert code == 0, err
    expected = await _customers(endpoint, FILTER)
    assert f" {len(expected)}\n" in out


async def test_wrong_password_is_refused(endpoint: Endpoint) -> None:
    code, _, err = await _psql(endpoint, "SELECT 1", key="not-a-key")
    assert code == 2
    assert 'password authentication failed for user "bi"' in err
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        await psycopg.AsyncConnection.connect(endpoint.dsn("not-a-key"))


async def test_filtered_rows_are_graphqls(endpoint: Endpoint) -> None:
    expected = {c["id"]: c for c in await _customers(endpoint, FILTER)}
    assert 20 < len(expected) < 1000, "a filter that matters"
    found = await endpoint.sql(
        "SELECT id, email, country, lifetime_value, order_count FROM customers"
        " WHERE country IN (%s, %s) AND order_count >= %s ORDER BY lifetime_value DESC, id",
        ["DE", "GB", 1],
    )
    assert {r[0] for r in found} == set(expected)
    for id_, email, country, value, orders in found:
        customer = expected[id_]
        assert (email, country, orders) == (
            customer["email"], customer["country"], customer["orderCount"]
        )  # fmt: skip
        assert value == Decimal(customer["lifetimeValue"])
    values = [r[3] for r in found]
    assert values == sorted(values, reverse=True)
    page = await endpoint.sql(
        f"SELECT id FROM customers WHERE {SQL_FILTER} ORDER BY id LIMIT 5 OFFSET 3"
    )
    assert [r[0] for r in page] == sorted(expected)[3:8]


async def test_aggregates_are_graphqls(endpoint: Endpoint) -> None:
    customers = await _customers(endpoint, FILTER)
    found = await endpoint.sql(
        "SELECT country, count(*), sum(lifetime_value) AS ltv, max(order_count) FROM customers"
        f" WHERE {SQL_FILTER} GROUP BY country ORDER BY country"
    )
    expected = []
    for country in sorted({c["country"] for c in customers}):
        members = [c for c in customers if c["country"] == country]
        total = sum((Decimal(c["lifetimeValue"]) for c in members), Decimal(0))
        expected.append((country, len(members), total, max(c["orderCount"] for c in members)))
    assert found == expected
    # a related table: rows matching, counted per status, as GraphQL lists them
    with_open = await _customers(endpoint, {"tickets": {"status": {"in": ["open", "pending"]}}})
    tickets = Counter(
        t["status"] for c in with_open for t in c["tickets"] if t["status"] in ("open", "pending")
    )
    found = await endpoint.sql(
        "SELECT status, count(*) FROM tickets WHERE status IN ('open', 'pending') GROUP BY 1"
    )
    assert dict(found) == dict(tickets)


async def test_time_grains_are_graphqls(endpoint: Endpoint) -> None:
    """BI tools' time series: date_trunc grouped and sorted, in UTC, per GraphQL's values."""
    customers = await _customers(endpoint, FILTER, fields="id createdAt")
    stamps = sorted(dated_created(customers))
    months: Counter[datetime | None] = Counter(
        s.replace(day=1, hour=0, minute=0, second=0, microsecond=0) for s in stamps
    )
    if len(stamps) < len(customers):
        months[None] = len(customers) - len(stamps)
    found = await endpoint.sql(
        "SELECT date_trunc('month', created_at) AS month, count(*) AS n FROM customers"
        f" WHERE {SQL_FILTER} GROUP BY date_trunc('month', created_at) ORDER BY month DESC"
    )
    dated = sorted(((m, n) for m, n in months.items() if m is not None), reverse=True)
    # PostgreSQL's order: descending puts NULLs first
    assert found == [(None, months[None])] * (None in months) + dated
    assert len(dated) > 3
    # the same through a relation table, a week at a time, by position
    weeks = await endpoint.sql(
        "SELECT DATE_TRUNC('WEEK', created_at), count(*) FROM tickets GROUP BY 1 ORDER BY 1 LIMIT 3"
    )
    assert all(w.weekday() == 0 and w.hour == 0 and w.tzinfo is not None for w, _ in weeks)
    assert [w for w, _ in weeks] == sorted(w for w, _ in weeks)
    # Superset's shape: time bounds as TO_TIMESTAMP, a grain, a metric, a row limit
    low, high = stamps[len(stamps) // 4], stamps[3 * len(stamps) // 4]
    bounds = [s for s in stamps if low <= s < high]
    form = "'YYYY-MM-DD HH24:MI:SS.US'"
    found = await endpoint.sql(
        "SELECT DATE_TRUNC('year', created_at) AS __timestamp, COUNT(*) AS count"
        f" FROM customers WHERE {SQL_FILTER}"
        f" AND created_at >= TO_TIMESTAMP('{low:%Y-%m-%d %H:%M:%S.%f}', {form})"
        f" AND created_at < TO_TIMESTAMP('{high:%Y-%m-%d %H:%M:%S.%f}', {form})"
        " GROUP BY DATE_TRUNC('year', created_at) ORDER BY count DESC LIMIT 10000"
    )
    assert sum(n for _, n in found) == len(bounds)
    years = Counter(s.year for s in bounds)
    assert {y.year: n for y, n in found} == dict(years)
    assert [n for _, n in found] == sorted(years.values(), reverse=True)


def dated_created(customers: list[Any]) -> list[datetime]:
    return [
        datetime.fromisoformat(c["createdAt"]).astimezone(UTC) for c in customers if c["createdAt"]
    ]


async def test_masked_denied_and_hidden_as_in_graphql(endpoint: Endpoint) -> None:
    support = KEYS["support"]
    masked = await _customers(endpoint, {"country": {"eq": "DE"}}, support, "id email phone")
    found = await endpoint.sql(
        "SELECT id, email, phone FROM customers WHERE country = 'DE'", key=support
    )
    assert {r[0]: (r[1], r[2]) for r in found} == {
        c["id"]: (c["email"], c["phone"]) for c in masked
    }
    assert any(r[1] and "***@" in r[1] for r in found), "emails are masked"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="lifetime_value"):
        await endpoint.sql("SELECT id, lifetime_value FROM customers", key=support)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="email"):
        await endpoint.sql("SELECT id FROM customers WHERE email LIKE 'a%'", key=support)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="aggregate"):
        await endpoint.sql("SELECT max(email) FROM customers WHERE country = 'DE'", key=support)
    counted = await endpoint.sql(
        "SELECT count(email) FROM customers WHERE country = 'DE'", key=support
    )
    assert counted == [(sum(1 for c in masked if c["email"]),)]
    star = await endpoint.sql("SELECT * FROM customers WHERE country = 'DE' LIMIT 1", key=support)
    assert len(star[0]) < len((await endpoint.sql("SELECT * FROM customers LIMIT 1"))[0])
    # a row rule: the regional team sees only DE, FR and GB, in SQL as in GraphQL
    regional = KEYS["regional"]
    first = await endpoint.sql("SELECT id, email, country FROM customers LIMIT 40")
    emails = {e: c for _, e, c in first if e}
    outside = next(e for e, c in emails.items() if c not in ("DE", "FR", "GB"))
    one = {"email": {"eq": outside}}
    assert len(await _customers(endpoint, one, fields="id")) == 1
    assert await _customers(endpoint, one, regional, "id") == []
    query = "SELECT id FROM customers WHERE email = %s"
    assert len(await endpoint.sql(query, [outside])) == 1
    assert await endpoint.sql(query, [outside], key=regional) == []
    listed = ", ".join(["%s"] * len(emails))
    countries = await endpoint.sql(
        f"SELECT country, count(*) FROM customers WHERE email IN ({listed}) GROUP BY 1 ORDER BY 1",
        list(emails),
        key=regional,
    )
    inside = Counter(c for c in emails.values() if c in ("DE", "FR", "GB"))
    assert countries == sorted(inside.items())


async def test_a_customer_by_id_is_looked_up(endpoint: Endpoint) -> None:
    some = await endpoint.sql(
        "SELECT id, order_count FROM customers WHERE order_count >= 2 LIMIT 3"
    )
    ids = [r[0] for r in some]
    found = await endpoint.sql(
        "SELECT id, order_count FROM customers WHERE id IN (%s, %s, %s) AND order_count >= 2",
        ids,
    )
    assert sorted(found) == sorted(some)
    orders = await endpoint.sql(
        "SELECT customer_id, count(*) FROM orders WHERE customer_id = %s GROUP BY 1", [ids[0]]
    )
    assert orders == [(ids[0], dict(some)[ids[0]])]
    assert await endpoint.sql("SELECT id FROM customers WHERE id = 'cus_not-an-id'") == []


async def test_sql_reads_are_audited(endpoint: Endpoint) -> None:
    found = await endpoint.sql(
        "SELECT id, email FROM customers WHERE country = 'GB'", key=KEYS["support"]
    )
    entries = [json.loads(line) for line in endpoint.audit.read_text().splitlines()]
    sql = [e for e in entries if e["channel"] == "sql" and e["principal"] == "support-agent"]
    assert sql, "SQL reads are in the audit log"
    assert {r[0] for r in found} <= {c for e in sql for c in e["customers"]}
    assert "Customer.email" in sql[-1]["fields"]
    assert sql[-1]["table"] == "customers"


async def test_no_audit_entry_no_rows(endpoint: Endpoint) -> None:
    saved = endpoint.audit.with_name("audit.saved")
    endpoint.audit.rename(saved)
    endpoint.audit.mkdir()  # the log cannot be appended to
    try:
        async with await psycopg.AsyncConnection.connect(endpoint.dsn(), autocommit=True) as conn:
            cursor = conn.cursor()
            with pytest.raises(psycopg.Error) as caught:
                await cursor.execute("SELECT id, email FROM customers WHERE country = 'GB'")
            assert caught.value.sqlstate == "58000"
            assert "audit log could not be written" in str(caught.value)
    finally:
        endpoint.audit.rmdir()
        saved.rename(endpoint.audit)


@pytest.mark.parametrize(
    ("statement", "sqlstate"),
    [
        ("INSERT INTO customers (id) VALUES ('x')", "25006"),
        ("DELETE FROM customers", "25006"),
        ("DROP TABLE customers", "25006"),
        ("UPDATE orders SET total = 0", "25006"),
        ("SELECT id FROM customers; DROP TABLE customers", "42601"),
        ("SELECT id FROM customers WHERE country = 'DE' OR 1 = 1", "42601"),
        ("SELECT id FROM customers UNION SELECT id FROM orders", "0A000"),
        ("SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id", "0A000"),
        ("SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders)", "0A000"),
        ("SELECT upper(name) FROM customers", "0A000"),
        ("SELECT id FROM invoices", "42P01"),
        ("SELECT shoe_size FROM customers", "42703"),
        ("SELEC id FROM customers", "42601"),
        ("SELECT id FROM customers WHERE created_at > 'yesterday'", "22P02"),
        ("SELECT date_trunc('month', email) FROM customers", "42883"),
        ("SELECT date_trunc('fortnight', created_at) FROM customers", "22023"),
        (
            "SELECT date_trunc('month', created_at), count(*) FROM customers GROUP BY created_at",
            "42803",
        ),
    ],
)
async def test_unsupported_statements_are_clean_errors(
    endpoint: Endpoint, statement: str, sqlstate: str
) -> None:
    async with await psycopg.AsyncConnection.connect(endpoint.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as caught:
            await conn.execute(statement)
        assert caught.value.sqlstate == sqlstate, caught.value
        # the connection goes on
        assert await (await conn.execute("SELECT 1")).fetchall() == [(1,)]


async def test_a_quoted_value_stays_a_value(endpoint: Endpoint) -> None:
    injected = "DE' OR '1'='1"
    assert await endpoint.sql("SELECT id FROM customers WHERE country = %s", [injected]) == []
    found = await endpoint.sql("SELECT count(*) FROM customers WHERE country = 'DE'' OR ''1''=''1'")
    assert found == [(0,)]


async def test_sqlalchemy_reflects_and_queries(endpoint: Endpoint) -> None:
    url = f"postgresql+psycopg://bi:demo-key@127.0.0.1:{endpoint.port}/custview"
    expected = len(await _customers(endpoint, FILTER))

    def use() -> tuple[list[str], list[str], int]:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                inspector = sa.inspect(conn)
                customers = sa.Table("customers", sa.MetaData(), autoload_with=conn)
                query = sa.select(sa.func.count()).where(
                    customers.c.country.in_(["DE", "GB"]), customers.c.order_count >= 1
                )
                count = conn.execute(query).scalar_one()
                return inspector.get_table_names(), inspector.get_view_names(), count
        finally:
            engine.dispose()

    tables, views, count = await asyncio.to_thread(use)
    assert {"customers", "tickets", "orders", "opportunities"} <= set(tables)
    assert "high_value_at_risk" in views
    assert count == expected

    def custview_url() -> list[Any]:
        # the custview:// dialect (entry point), the key as the password
        engine = sa.create_engine(f"custview://:demo-key@127.0.0.1:{endpoint.port}/")
        try:
            with engine.connect() as conn:
                query = "SELECT count(*) FROM customers WHERE country IN ('DE', 'GB')"
                return [conn.execute(sa.text(query + " AND order_count >= 1")).scalar_one()]
        finally:
            engine.dispose()

    assert await asyncio.to_thread(custview_url) == [expected]
