"""The SQL endpoint through the PostgreSQL JDBC driver, which Metabase, Tableau and
DBeaver use: schema discovery (DatabaseMetaData), a cursor read with a fetch
size, an aggregate, a refused write and a refused key — answers checked
against GraphQL. Needs Java and Debian's libpostgresql-jdbc-java (.ci/run
installs them)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.conftest import walk
from tests.e2e.sql_endpoint import Endpoint
from tests.e2e.test_sql import WALK

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBE = Path(__file__).parent / "jdbc" / "JdbcProbe.java"
DRIVER = Path("/usr/share/java/postgresql.jar")


def _java() -> str:
    java = shutil.which("java")
    if java is None or shutil.which("javac") is None or not DRIVER.is_file():
        message = "needs a JDK and Debian's libpostgresql-jdbc-java (.ci/run installs them)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return java


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def probe(endpoint: Endpoint) -> dict[str, list[list[str]]]:
    """The probe's output lines, grouped by their first field."""
    process = await asyncio.create_subprocess_exec(
        _java(), "-cp", str(DRIVER), str(PROBE), str(endpoint.port), "demo-key",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, err.decode()[-3000:]
    found: dict[str, list[list[str]]] = {}
    for line in out.decode().splitlines():
        kind, *fields = line.split("\t")
        found.setdefault(kind, []).append(fields)
    return found


async def test_schema_discovery_lists_the_catalog(
    endpoint: Endpoint, probe: dict[str, list[list[str]]]
) -> None:
    assert probe["product"] == [["PostgreSQL", "15"]]
    assert ["public"] in probe["schema"]
    tables = await endpoint.sql(
        "SELECT table_name, table_type FROM information_schema.tables"
        " WHERE table_schema = 'public' ORDER BY 1"
    )
    kinds = {"BASE TABLE": "TABLE", "VIEW": "VIEW"}
    assert sorted(probe["table"]) == sorted([name, kinds[kind]] for name, kind in tables)
    assert {"customers", "tickets", "orders"} <= {name for name, _ in probe["table"]}
    # every column of customers, in order, with the driver's type names
    columns = await endpoint.sql(
        "SELECT column_name, udt_name FROM information_schema.columns"
        " WHERE table_name = 'customers' ORDER BY ordinal_position"
    )
    assert probe["column"] == [[name, udt] for name, udt in columns]
    assert ["lifetime_value", "numeric"] in probe["column"]
    assert ["created_at", "timestamptz"] in probe["column"]


async def test_cursor_reads_and_aggregates_are_graphqls(
    endpoint: Endpoint, probe: dict[str, list[list[str]]]
) -> None:
    headers = {"X-API-Key": "demo-key"}
    german = await walk(
        endpoint.http, WALK % "id country lifetimeValue", headers, f={"country": {"eq": "DE"}}
    )
    assert len(german) > 25, "more rows than one fetch: the driver resumes the portal"
    expected = sorted(
        (c["id"], c["country"], Decimal(c["lifetimeValue"]) if c["lifetimeValue"] else None)
        for c in german
    )
    rows = [(i, country, None if v == "null" else Decimal(v)) for i, country, v in probe["row"]]
    assert rows == expected
    assert probe["result-column"] == [
        ["id", "text"], ["country", "text"], ["lifetime_value", "numeric"]
    ]  # fmt: skip
    everyone = await walk(endpoint.http, WALK % "country", headers, f=None)
    counts = Counter(c["country"] or "null" for c in everyone)
    assert {country: int(n) for country, n in probe["group"]} == dict(counts)


async def test_writes_and_a_wrong_key_are_refused(probe: dict[str, list[list[str]]]) -> None:
    assert probe["write"] == [["25006"]]
    assert probe["wrong-key"] == [["28P01"]]
