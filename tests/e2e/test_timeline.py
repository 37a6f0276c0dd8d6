"""The timeline merges every source's events newest first and pages through
them without gaps or repeats."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import gql

PAGE = """query($ref: String, $after: String, $kinds: [String!]) { customer(ref: $ref) {
    sourceRecords { ref }
    timeline(first: 3, after: $after, kinds: $kinds) {
      nodes { kind at title ref source } pageInfo { hasNextPage endCursor } } } }"""


def _brute_force(demo_dir: Path, refs: list[str]) -> list[tuple[str, str]]:
    def ids(prefix: str) -> list[int]:
        return [int(r.rsplit("/", 1)[1]) for r in refs if r.startswith(prefix)]

    events: list[tuple[str, str]] = []
    for db, sql, prefix, table in (
        ("support.db", "SELECT id, created_at FROM tickets WHERE requester_id IN ({})",
         "support/users/", "support/tickets"),
        ("sales.db", "SELECT id, created_at FROM orders WHERE customer_id IN ({})",
         "sales/customers/", "sales/orders"),
        ("crm.db", "SELECT id, close_date FROM opportunities WHERE contact_id IN ({})",
         "crm/contacts/", "crm/opportunities"),
        ("feedback.db", "SELECT id, created_at FROM responses WHERE respondent_id IN ({})",
         "feedback/respondents/", "feedback/responses"),
    ):  # fmt: skip
        keys = ids(prefix)
        if not keys:
            continue
        con = sqlite3.connect(demo_dir / db)
        for key, at in con.execute(sql.format(",".join("?" * len(keys))), keys):
            events.append((at[:19].replace(" ", "T"), f"{table}/{key}"))
        con.close()
    return sorted(events, reverse=True)


async def _walk(client: httpx.AsyncClient, ref: str, kinds: list[str] | None) -> list[Any]:
    seen: list[Any] = []
    after = None
    while True:
        body = await gql(client, PAGE, ref=ref, after=after, kinds=kinds)
        assert "errors" not in body, body
        timeline = body["data"]["customer"]["timeline"]  # type: ignore[index]
        seen.extend(timeline["nodes"])
        if not timeline["pageInfo"]["hasNextPage"]:
            return seen
        after = timeline["pageInfo"]["endCursor"]


async def test_timeline_pages_match_a_brute_force_merge(
    client: httpx.AsyncClient, demo_dir: Path
) -> None:
    con = sqlite3.connect(demo_dir / "support.db")
    busy = [
        f"support/users/{uid}"
        for (uid,) in con.execute(
            "SELECT requester_id FROM tickets GROUP BY requester_id HAVING count(*) >= 5 LIMIT 5"
        )
    ]
    con.close()
    assert busy
    for ref in busy:
        customer = (await gql(client, PAGE, ref=ref))["data"]["customer"]  # type: ignore[index]
        refs = [r["ref"] for r in customer["sourceRecords"]]
        events = await _walk(client, ref, None)
        assert [(e["at"][:19], e["ref"]) for e in events] == _brute_force(demo_dir, refs)
        tickets_only = await _walk(client, ref, ["ticket"])
        assert tickets_only == [e for e in events if e["kind"] == "ticket"]


async def test_unknown_kind_is_a_clear_error(client: httpx.AsyncClient) -> None:
    body = await gql(client, PAGE, ref="crm/contacts/1", kinds=["letter"])
    error = body["errors"][0]  # type: ignore[index]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "letter" in error["message"] and "survey" in error["message"]
