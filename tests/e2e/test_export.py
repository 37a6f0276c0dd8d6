"""Streamed exports carry the same customers as the API, chunk by chunk."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

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
