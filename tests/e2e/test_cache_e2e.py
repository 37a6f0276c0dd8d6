"""The demo with a cached source: responses say, per source, how fresh the data is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.records import RecordRef
from tests.e2e.conftest import serve_in_process
from tests.e2e.test_partial_results import _three_system_email

QUERY = """query($email: String) { customer(email: $email) {
    id name sourceRecords { source } orders { id } } }"""
REGIONS = {"DE", "FR", "GB"}
SALES = "    description: Commerce (customers, orders, order lines, refunds)\n"


async def test_a_cached_source_reports_live_then_cached_freshness(
    demo_dir: Path, tmp_path: Path, demo_env: None
) -> None:
    email = _three_system_email(demo_dir)
    text = DEMO_CONFIG.read_text()
    assert SALES in text
    config = tmp_path / "cached.yaml"
    config.write_text(text.replace(SALES, SALES + "    cache: {ttl: 30}\n"))
    async for client in serve_in_process(load_settings(config)):
        answers = []
        for _ in range(2):
            response = await client.post(
                "/graphql", json={"query": QUERY, "variables": {"email": email}}
            )
            assert response.status_code == 200
            body = response.json()
            assert "errors" not in body, body
            answers.append(body)
        first, second = (a["extensions"]["custview"]["freshness"] for a in answers)
        assert set(first) == {"sales"}, "only the cached source reports freshness"
        assert first["sales"]["live"] > 0, "a cold cache: read live"
        assert second["sales"]["live"] == 0, "the same question again: all from the cache"
        assert second["sales"]["cached"] >= first["sales"]["live"]
        assert second["sales"]["stale"] == 0
        assert 0 <= second["sales"]["max_age_s"] < 30
        assert answers[0]["data"] == answers[1]["data"]
        assert "incomplete" not in answers[1]["extensions"]["custview"]
        metrics = (await client.get("/metrics")).text
        counted = {
            result: sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("custview_cache_answers_total{")
                and f'result="{result}"' in line
                and 'source="sales"' in line
            )
            for result in ("hit", "miss", "stale")
        }
        assert counted == {
            "hit": second["sales"]["cached"] + first["sales"]["cached"],
            "miss": first["sales"]["live"] + second["sales"]["live"],
            "stale": 0,
        }, "metrics count what the responses reported"


ONE = """query($id: ID) { customer(id: $id) { id name email phone lifetimeValue country } }"""
SUPPORT = {"X-API-Key": "support-key"}
EMEA = {"X-API-Key": "emea-key"}


async def test_a_caller_with_less_access_never_gets_a_cached_view_of_more(
    demo_dir: Path, tmp_path: Path, demo_env: None
) -> None:
    """The admin's reads fill the cache; the support agent (masked contact details, no
    money) and the regional team (other countries hidden) asking the same get their
    own view, read live under their own scope, then cached for that scope only."""
    async for client in serve_in_process(load_settings(_every_sql_source_cached(tmp_path))):
        page = await client.post(
            "/graphql", json={"query": "{ customers(first: 60) { nodes { id country email } } }"}
        )
        nodes = page.json()["data"]["customers"]["nodes"]
        abroad = next(c for c in nodes if c["email"] and c["country"] not in REGIONS)
        admin = await _ask(client, {}, abroad["id"])
        assert admin["data"]["customer"]["email"] == abroad["email"]
        assert admin["data"]["customer"]["lifetimeValue"] is not None
        again = await _ask(client, {}, abroad["id"])
        assert _live(again) == 0, "the admin's second read is all cached"

        support = await _ask(client, SUPPORT, abroad["id"])
        shown = support["data"]["customer"]
        assert shown["id"] == abroad["id"]
        assert shown["email"] != abroad["email"] and "***@" in shown["email"]
        assert shown["lifetimeValue"] is None
        assert _live(support) > 0, "another scope: not answered from the admin's entries"
        support_again = await _ask(client, SUPPORT, abroad["id"])
        assert _live(support_again) == 0, "the support scope's own entries answer it next"
        assert support_again["data"] == support["data"]

        regional = await _ask(client, EMEA, abroad["id"])
        assert regional["data"]["customer"] is None, "outside its regions, cached or not"
        assert abroad["email"] not in json.dumps(support) + json.dumps(regional)


async def _ask(client: httpx.AsyncClient, headers: dict[str, str], customer: str) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": ONE, "variables": {"id": customer}}, headers=headers
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _every_sql_source_cached(tmp_path: Path) -> Path:
    text = DEMO_CONFIG.read_text()
    for line in (
        "    description: CRM (accounts, contacts, leads, opportunities)\n",
        "    description: Support desk (users, organizations, tickets, ratings)\n",
        SALES,
    ):
        assert line in text
        text = text.replace(line, line + "    cache: {ttl: 300}\n")
    config = tmp_path / "cached.yaml"
    config.write_text(text)
    return config


CUSTOMER_360 = """query($email: String) { customer(email: $email) {
    id sourceRecords { source } tickets { id } orders { id } openTickets lifetimeValue } }"""


async def test_the_admin_endpoint_clears_one_customer_or_one_source(
    demo_dir: Path, tmp_path: Path, demo_env: None
) -> None:
    email = _three_system_email(demo_dir)
    other = "query { customers(first: 3) { nodes { id name orders { id } } } }"
    async for client in serve_in_process(load_settings(_every_sql_source_cached(tmp_path))):
        first = await _live_reads(client, CUSTOMER_360, email=email)
        assert set(first) == {"crm", "support", "sales"} and all(first.values())
        await _live_reads(client, other)
        base = await _live_reads(client, other)  # the page itself is a scan: live
        assert not any((await _live_reads(client, CUSTOMER_360, email=email)).values()), (
            "all cached"
        )
        customer = (
            await client.post(
                "/graphql", json={"query": CUSTOMER_360, "variables": {"email": email}}
            )
        ).json()["data"]["customer"]["id"]

        refused = await _clear(client, {"customer": customer}, **SUPPORT)
        assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
        assert (await _clear(client, {"bogus": "x"})).status_code == 400
        assert (await _clear(client, {"customer": "nope"})).json()["code"] == "BAD_REQUEST"
        missing = RecordRef.parse("crm/contacts/99999999").customer_id()
        assert (await _clear(client, {"customer": missing})).status_code == 404

        done = await _clear(client, {"customer": customer})
        assert done.status_code == 200, done.text
        assert set(done.json()["cleared"]) == {"crm", "support", "sales"}
        again = await _live_reads(client, CUSTOMER_360, email=email)
        assert all(again[name] for name in ("crm", "support", "sales")), again
        assert await _live_reads(client, other) == base, "other customers stay cached"

        assert (await _clear(client, {"source": "sales"})).json() == {"cleared": {"sales": "*"}}
        after = await _live_reads(client, other)
        assert after["sales"] > base["sales"], "that source was cleared"
        assert after["crm"] == base["crm"] and after["support"] == base["support"], "only it"


async def _live_reads(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    """Per cached source: entries read live for the query."""
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body
    fresh: dict[str, Any] = body["extensions"]["custview"]["freshness"]
    return {name: entry["live"] for name, entry in fresh.items()}


async def _clear(client: httpx.AsyncClient, body: object, **headers: str) -> httpx.Response:
    return await client.post("/admin/cache/clear", json=body, headers=headers)


def _live(body: dict[str, Any]) -> int:
    freshness = body["extensions"]["custview"]["freshness"]
    return sum(int(source["live"]) for source in freshness.values())
