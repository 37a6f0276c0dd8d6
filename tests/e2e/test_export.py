"""Streamed exports carry the same customers as the API, chunk by chunk."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import resolvers.export as export_rows
from gateway.app import create_app
from gateway.serving import DEMO_HEADERS
from gateway.settings import LoadedSettings
from tests.e2e.conftest import gql
from tests.support.servers import serve_in_thread

WALK = """query($after: String) { customers(first: 500, after: $after) {
    pageInfo { hasNextPage endCursor } nodes { id email lifetimeValue } } }"""


async def _walk(client: httpx.AsyncClient) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    after = None
    while True:
        page = (await gql(client, WALK, after=after))["data"]["customers"]  # type: ignore[index]
        found.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def test_csv_export_streams_every_customer_once(
    client: httpx.AsyncClient, demo_settings: LoadedSettings
) -> None:
    expected = await _walk(client)
    chunks = 0
    body = ""
    # a real server, so the chunks really travel separately
    with serve_in_thread(create_app(demo_settings), lifespan="on") as url:
        async with (
            httpx.AsyncClient(base_url=url, timeout=60, headers=DEMO_HEADERS) as http,
            http.stream("GET", "/export/customers.csv?columns=id,email,lifetimeValue") as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/csv")
            async for text in r.aiter_text():
                chunks += 1
                body += text
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["id"] for row in rows] == [c["id"] for c in expected]
    assert all(
        row["email"] == (c["email"] or "") and row["lifetimeValue"] == c["lifetimeValue"]
        for row, c in zip(rows, expected, strict=True)
    )
    assert chunks > 1, "rows leave chunk by chunk"


async def test_ndjson_export_keeps_types(client: httpx.AsyncClient) -> None:
    response = await client.get("/export/customers.ndjson?columns=id,openTickets,createdAt")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert set(lines[0]) == {"id", "openTickets", "createdAt"}
    assert all(isinstance(line["openTickets"], int) for line in lines)
    assert lines[0]["createdAt"].endswith("+00:00")


async def test_bad_export_requests_are_refused_clearly(client: httpx.AsyncClient) -> None:
    response = await client.get("/export/customers.csv?columns=id,shoeSize")
    assert response.status_code == 400
    assert "shoeSize" in response.json()["error"]
    assert (await client.get("/export/customers.xlsx")).status_code == 404


def test_cli_exports_filtered_related_rows_as_parquet(
    demo_dir: Path, feedback_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "orders.parquet"
    env = {**os.environ, "CUSTVIEW_DEMO_DIR": str(demo_dir), "CUSTVIEW_FEEDBACK_URL": feedback_url}
    base = [sys.executable, "-m", "gateway", "export"]
    args = ["orders", "-f", "parquet", "-o", str(out), "--filter", json.dumps(FILTER)]
    result = subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "rows of orders as parquet" in result.stderr
    table = pq.read_table(out)
    assert table.num_rows > 0
    assert table.schema.names[0] == "customer_id"
    assert table.schema.field("total").type == pa.decimal128(38, 2)
    bad = subprocess.run(
        [*base, "--filter", '{"country": {"eqq": "DE"}}'], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2
    assert "filter.country" in bad.stderr and "Did you mean 'eq'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_export_reports_a_failed_source_and_exits_non_zero(
    demo_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "customers.csv"
    env = {
        **os.environ,
        "CUSTVIEW_DEMO_DIR": str(demo_dir),
        "CUSTVIEW_FEEDBACK_URL": "http://127.0.0.1:1/api",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "export", "-f", "csv", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "source 'feedback' failed" in result.stderr
    assert "Traceback" not in result.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) > 1000, "the other sources still export"


def test_cli_export_of_every_customer_does_not_load_the_graphql_or_sql_side(
    demo_dir: Path, feedback_url: str, tmp_path: Path
) -> None:
    # strawberry and graphql-core (~20 MB) and sqlglot (~15 MB) are peak RSS of an
    # export that parses no filter and serves no SQL
    out = tmp_path / "customers.csv"
    env = {**os.environ, "CUSTVIEW_DEMO_DIR": str(demo_dir), "CUSTVIEW_FEEDBACK_URL": feedback_url}
    script = (
        "import atexit, sys\n"
        "heavy = {'strawberry', 'graphql', 'sqlglot'}\n"
        "atexit.register(lambda: print(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
        "from gateway.cli import main\n"
        "main()\n"
    )
    args = ["export", "-f", "csv", "-o", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert len(list(csv.DictReader(out.open()))) > 1000


FILTER = {"country": {"in": ["DE", "GB"]}, "orderCount": {"ge": 1}}
ORDER = [{"field": "lifetimeValue", "direction": "DESC"}]
FILTERED = """query($f: CustomerFilter, $o: [CustomerOrder!], $after: String) {
    customers(first: 500, filter: $f, orderBy: $o, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id email country lifetimeValue orderCount tickets { id status createdAt } } } }"""


async def _filtered(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    while True:
        body = await gql(client, FILTERED, f=FILTER, o=ORDER, after=after)
        assert "errors" not in body, body
        page = body["data"]["customers"]  # type: ignore[index]
        found.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


def read_export(fmt: str, content: bytes) -> list[dict[str, Any]]:
    """Rows of an export through the format's own reader, values as text (null: '')."""
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(content.decode())))
    if fmt == "ndjson":
        rows = [json.loads(line) for line in content.decode().splitlines()]
    elif fmt == "arrow":
        rows = pa.ipc.open_stream(io.BytesIO(content)).read_all().to_pylist()
    else:
        rows = pq.read_table(io.BytesIO(content)).to_pylist()
    return [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "arrow", "parquet"])
async def test_every_format_has_the_customers_graphql_has_for_the_same_filter(
    client: httpx.AsyncClient, fmt: str
) -> None:
    expected = await _filtered(client)
    assert 20 < len(expected) < 1000, "a filter that matters"
    response = await client.get(
        f"/export/customers.{fmt}",
        params={
            "filter": json.dumps(FILTER),
            "orderBy": json.dumps(ORDER),
            "columns": "id,email,country,lifetimeValue,orderCount",
        },
    )
    assert response.status_code == 200, response.text
    rows = read_export(fmt, response.content)
    assert [r["id"] for r in rows] == [c["id"] for c in expected]
    for row, customer in zip(rows, expected, strict=True):
        assert row["email"] == (customer["email"] or "")
        assert row["lifetimeValue"] == customer["lifetimeValue"]
        assert row["orderCount"] == str(customer["orderCount"])


async def test_arrow_export_is_typed_and_complete(client: httpx.AsyncClient) -> None:
    expected = await _walk(client)
    response = await client.get("/export/customers.arrow")
    assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
    reader = pa.ipc.open_stream(io.BytesIO(response.content))
    batches = list(reader)
    assert len(batches) > 1, "one record batch per chunk of customers"
    table = pa.Table.from_batches(batches)
    assert table.column("id").to_pylist() == [c["id"] for c in expected]
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types["lifetimeValue"] == pa.decimal128(38, 2)
    assert types["openTickets"] == pa.int64()
    assert types["createdAt"] == pa.timestamp("us", tz="UTC")
    assert types["birthDate"] == pa.date32()
    assert types["acceptsMarketing"] == pa.bool_()


async def test_related_exports_carry_the_customer_id(client: httpx.AsyncClient) -> None:
    expected = await _filtered(client)
    tickets = {(c["id"], t["id"], t["status"]) for c in expected for t in c["tickets"]}
    assert tickets, "the filtered customers have tickets"
    for fmt in ("arrow", "csv"):
        response = await client.get(
            f"/export/tickets.{fmt}",
            params={"filter": json.dumps(FILTER), "orderBy": json.dumps(ORDER)},
        )
        assert response.status_code == 200, response.text
        rows = read_export(fmt, response.content)
        assert {(r["customer_id"], r["id"], r["status"]) for r in rows} == tickets
        assert len(rows) == len(tickets)
    params = {"filter": json.dumps(FILTER)}
    records = read_export(
        "csv", (await client.get("/export/source_records.csv", params=params)).content
    )
    whole = (
        await client.get("/export/customers.csv?columns=id,source_records", params=params)
    ).content
    refs = {
        (c["id"], ref) for c in read_export("csv", whole) for ref in c["source_records"].split(";")
    }
    assert {(r["customer_id"], r["ref"]) for r in records} == refs
    assert len(records) == len(refs)


async def test_every_relation_is_exportable(client: httpx.AsyncClient) -> None:
    app = client.app  # type: ignore[attr-defined]
    relations = app.state.federation.model.relations
    for name, rel in relations.items():
        response = await client.get(f"/export/{name}.arrow", params={"filter": json.dumps(FILTER)})
        assert response.status_code == 200, (name, response.text)
        table = pa.ipc.open_stream(io.BytesIO(response.content)).read_all()
        assert table.schema.names == ["customer_id", *rel.fields]


async def test_bad_filters_are_refused_with_the_place_they_went_wrong(
    client: httpx.AsyncClient,
) -> None:
    cases = {
        '{"country": {"eqq": "DE"}}': "filter.country",
        '{"lifetimeValue": {"gt": "lots"}}': "filter.lifetimeValue.gt",
        '{"shoeSize": {"eq": 42}}': "shoeSize",
        '{"country": ': "not valid JSON",
    }
    for text, where in cases.items():
        response = await client.get("/export/customers.arrow", params={"filter": text})
        assert response.status_code == 400, text
        body = response.json()
        assert where in body["error"], body
        assert body["code"] == "BAD_REQUEST"
    response = await client.get(
        "/export/customers.csv", params={"orderBy": '[{"field": "shoeSize"}]'}
    )
    assert response.status_code == 400
    assert "orderBy.0.field" in response.json()["error"]
    assert (await client.get("/export/invoices.csv")).status_code == 404


async def test_segment_exports_hold_the_segment_members(client: httpx.AsyncClient) -> None:
    query = """query($after: String) { customers(first: 500, after: $after,
        filter: {segment: "high-value-at-risk"}) {
        pageInfo { hasNextPage endCursor } nodes { id } } }"""
    body = await gql(client, query)
    assert "errors" not in body, body
    page = body["data"]["customers"]  # type: ignore[index]
    assert not page["pageInfo"]["hasNextPage"]
    expected = [c["id"] for c in page["nodes"]]
    assert expected, "the demo has customers in that segment"
    response = await client.get("/export/customers.arrow?segment=high-value-at-risk&columns=id")
    assert response.status_code == 200, response.text
    assert [r["id"] for r in read_export("arrow", response.content)] == expected
    narrowed = await client.get(
        "/export/customers.csv",
        params={"segment": "high-value-at-risk", "filter": json.dumps({"country": {"eq": "US"}})},
    )
    assert {r["id"] for r in read_export("csv", narrowed.content)} < set(expected)
    unknown = await client.get("/export/customers.csv?segment=whales")
    assert unknown.status_code == 400
    assert "no segment named 'whales'" in unknown.json()["error"]


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over the series whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_client_that_goes_away_stops_the_export_and_its_source_reads(
    demo_settings: LoadedSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # small chunks, so a whole export is dozens of steps (and a cancelled one few)
    monkeypatch.setattr(export_rows, "CHUNK", 25)
    customers_at_least = 1500  # DEMO_CUSTOMERS real people, each at least one customer
    with serve_in_thread(create_app(demo_settings), lifespan="on") as url:
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=DEMO_HEADERS) as http:
            async with http.stream("GET", "/export/customers.arrow") as response:
                assert response.status_code == 200
                async for _ in response.aiter_bytes():
                    break  # the first bytes arrived: hang up
            # the server notices the disconnect, cancels the stream, and the export ends
            for _ in range(600):
                metrics = (await http.get("/metrics")).text
                if _metric(metrics, "custview_exports_total", outcome="cancelled") == 1:
                    break
                await asyncio.sleep(0.05)
            assert _metric(metrics, "custview_exports_total", outcome="cancelled") == 1
            assert _metric(metrics, "custview_exports_total", outcome="complete") == 0
            assert _metric(metrics, "custview_exports_in_progress") == 0
            scans = _metric(metrics, "custview_source_call_seconds_count", operation="scan")
            sent = _metric(metrics, "custview_export_rows_total", table="customers")
            assert 0 < sent < customers_at_least / 2
            # a whole export scans the member tables once per chunk of 25 customers
            assert 0 < scans < customers_at_least / 25 / 2
            # nothing reads the sources for it any more
            again = (await http.get("/metrics")).text
            assert _metric(again, "custview_source_call_seconds_count", operation="scan") == scans
