"""Explain plans: what each source was sent, the rows it returned, the time,
and what was done in memory — as a response extension and as a command."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import gql
from tests.e2e.test_cli import run

FILTERED = """{ customers(first: 5,
    filter: {country: {eq: "DE"}, tickets: {priority: {eq: "urgent"}}},
    orderBy: [{field: lifetimeValue, direction: DESC}]) { nodes { id lifetimeValue } } }"""


def _calls(plan: dict[str, Any], source: str) -> list[dict[str, Any]]:
    found = [s for s in plan["sources"] if s["source"] == source]
    return found[0]["calls"] if found else []


async def test_the_header_adds_the_plan_with_the_statements_sent(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/graphql", json={"query": FILTERED}, headers={"X-Custview-Explain": "1"}
    )
    body = response.json()
    assert "errors" not in body, body
    plan = body["extensions"]["explain"]
    assert plan["totalMs"] > 0
    tickets = [c for c in _calls(plan, "support") if c["table"] == "tickets"]
    # the related-entity predicate went to the support desk as a WHERE, not as a full read
    pushed = [
        s for c in tickets for s in c["sent"] if "WHERE" in s and "priority" in s.split("WHERE")[1]
    ]
    assert pushed, tickets
    for source in plan["sources"]:
        assert source["sent"] == sum(len(c["sent"]) for c in source["calls"])
        assert source["rows"] == sum(c["rows"] for c in source["calls"])
        for call in source["calls"]:
            assert call["operation"] in ("scan", "lookup_many", "aggregate")
            assert call["ms"] >= 0 and call["rows"] >= 0
    # lifetimeValue is a GROUP BY at the sales source
    assert any(
        "GROUP BY" in s
        for c in _calls(plan, "sales")
        if c["operation"] == "aggregate"
        for s in c["sent"]
    )
    steps = plan["memory"]
    assert any(s.startswith("checked the whole filter") for s in steps), steps
    assert any(s.startswith("sorted") and "lifetimeValue desc" in s for s in steps), steps
    assert steps[-1].startswith("page: customers 1-")


@pytest.mark.parametrize("engine_layout", ["sqlite"], indirect=True)
async def test_the_request_extension_asks_too_and_nothing_is_added_otherwise(
    client: httpx.AsyncClient,
) -> None:
    query = '{ customer(email: "nobody@example.invalid") { id } }'
    asked = await client.post("/graphql", json={"query": query, "extensions": {"explain": True}})
    plan = asked.json()["extensions"]["explain"]
    lookups = [c for s in plan["sources"] for c in s["calls"] if c["operation"] == "lookup_many"]
    assert lookups and all(c["rows"] == 0 for c in lookups)
    rest = _calls(plan, "feedback")
    assert rest and all(s.startswith("GET /api/respondents") for c in rest for s in c["sent"])
    assert all("nobody" not in s for c in rest for s in c["sent"]), "values stay out of the plan"
    plain = await gql(client, query)
    assert "explain" not in (plain.get("extensions") or {})


@pytest.mark.parametrize("engine_layout", ["sqlite"], indirect=True)
def test_custview_explain_prints_the_plan(demo_settings: Any) -> None:
    result = run("explain", FILTERED)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "support:" in out and "SELECT" in out and "in memory:" in out and "total:" in out
    json_result = run("explain", "--json", FILTERED)
    assert json_result.returncode == 0, json_result.stderr
    assert '"sources"' in json_result.stdout and '"memory"' in json_result.stdout
