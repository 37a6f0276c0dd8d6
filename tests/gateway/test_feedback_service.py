"""The demo feedback service answers like the SaaS API it plays."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from gateway.demodata.feedback_service import DEMO_TOKEN, create_feedback_app
from gateway.demodata.generate import generate

AUTH = {"authorization": f"Bearer {DEMO_TOKEN}"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feedback") / "data"
    generate(out, 600, 11)
    return out


def client(data: Path) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_feedback_app(data, DEMO_TOKEN))
    return httpx.AsyncClient(transport=transport, base_url="http://feedback")


async def test_requires_the_bearer_token(data: Path) -> None:
    async with client(data) as c:
        assert (await c.get("/api/respondents")).status_code == 401
        assert (await c.get("/api/health")).status_code == 200


async def test_cursor_pagination_returns_every_row_once(data: Path) -> None:
    con = sqlite3.connect(data / "feedback.db")
    total = con.execute("SELECT count(*) FROM responses").fetchone()[0]
    con.close()
    seen: list[int] = []
    cursor = None
    async with client(data) as c:
        while True:
            params = {"limit": "37", **({"cursor": cursor} if cursor else {})}
            body = (await c.get("/api/responses", params=params, headers=AUTH)).json()
            seen.extend(row["id"] for row in body["data"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)) == total


async def test_batched_lookups_and_filters(data: Path) -> None:
    con = sqlite3.connect(data / "feedback.db")
    (a, ea), (b, eb) = con.execute("SELECT id, email FROM respondents LIMIT 2").fetchall()
    con.close()
    async with client(data) as c:
        params = {"email": f"{ea.upper()},{eb}"}
        body = (await c.get("/api/respondents", params=params, headers=AUTH)).json()
        assert {r["id"] for r in body["data"]} == {a, b}
        params = {"respondent_id": f"{a},{b}", "survey": "nps", "limit": "500"}
        rows = (await c.get("/api/responses", params=params, headers=AUTH)).json()["data"]
        assert rows and all(r["respondent_id"] in (a, b) and r["survey"] == "nps" for r in rows)
