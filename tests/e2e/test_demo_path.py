"""The demo path end to end: generated sources, served in process, queried
over HTTP; stitching checked against a brute-force oracle and ground truth."""

from __future__ import annotations

import random
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.settings import LoadedSettings
from resolvers.normalize import normalize_email, normalize_phone
from tests.e2e.conftest import gql
from tests.e2e.oracle import clusters

CUSTOMER = """
query($ref: String, $email: String, $phone: String, $id: ID) {
  customer(ref: $ref, email: $email, phone: $phone, id: $id) {
    id name email phone country
    sourceRecords { source table id ref }
    provenance { field value ref rule }
  }
}"""


@pytest.fixture(scope="module")
def oracle(demo_dir: Path) -> dict[str, frozenset[str]]:
    import os

    from gateway.settings import DEMO_CONFIG, load_settings

    os.environ["CUSTVIEW_DEMO_DIR"] = str(demo_dir)
    model = load_settings(DEMO_CONFIG).settings.model
    return clusters(model, demo_dir)


def _refs(customer: dict[str, Any]) -> set[str]:
    return {r["ref"] for r in customer["sourceRecords"]}


def _row(demo_dir: Path, ref: str) -> sqlite3.Row:
    source, table, key = ref.split("/")
    con = sqlite3.connect(demo_dir / f"{source}.db")
    con.row_factory = sqlite3.Row
    row = con.execute(f'SELECT * FROM "{table}" WHERE id = ?', (int(key),)).fetchone()
    con.close()
    assert row is not None
    return row


def _spanning(
    oracle: dict[str, frozenset[str]], entities: dict[str, set[str]]
) -> list[frozenset[str]]:
    """Oracle clusters that are exactly one real person found in the three core systems."""
    found = set()
    for cluster in oracle.values():
        systems = {ref.split("/")[0] for ref in cluster}
        if systems >= {"crm", "support", "sales"}:
            found.add(cluster)
    truth = [frozenset(refs) for refs in entities.values()]
    return sorted((c for c in found if c in truth), key=sorted)


def test_oracle_clusters_never_merge_two_real_customers(
    oracle: dict[str, frozenset[str]], ground_truth: dict[str, str]
) -> None:
    impure = [c for c in set(oracle.values()) if len({ground_truth[r] for r in c}) > 1]
    assert impure == []


async def test_graphiql_is_served_with_its_assets_from_custview_itself(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
    assert "unpkg.com" not in response.text, "GraphiQL must work offline"
    assets = re.findall(r'(?:src|href)="(/static/graphiql/[^"]+)"', response.text)
    assert len(assets) == 7
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 500, asset
    root = await client.get("/")
    assert root.status_code == 200 and 'href="graphql"' in root.text, "the page links GraphiQL"


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert set(body["sources"]) == {"crm", "support", "sales", "feedback"}
    assert all(s["status"] == "up" for s in body["sources"].values())


async def test_customer_by_email_and_by_phone_spans_the_systems_of_the_ground_truth(
    client: httpx.AsyncClient,
    demo_dir: Path,
    oracle: dict[str, frozenset[str]],
    entities: dict[str, set[str]],
) -> None:
    candidates = _spanning(oracle, entities)
    assert len(candidates) >= 20, "the demo should have many fully linkable people"
    checked = 0
    for cluster in candidates[:40]:
        refs = sorted(cluster)
        email = next((_row(demo_dir, r)["email"] for r in refs if r.startswith("sales/")), None)
        crm_phone = next(
            (
                (_row(demo_dir, r)["phone"], _row(demo_dir, r)["country"])
                for r in refs
                if r.startswith("crm/contacts/") and _row(demo_dir, r)["phone"]
            ),
            None,
        )
        if not email or not crm_phone:
            continue
        by_email = (await gql(client, CUSTOMER, email=email))["data"]["customer"]  # type: ignore[index]
        assert _refs(by_email) == set(cluster)
        assert {r["source"] for r in by_email["sourceRecords"]} >= {"crm", "support", "sales"}
        phone, country = crm_phone
        e164 = normalize_phone(phone, country)
        by_phone = (await gql(client, CUSTOMER, phone=e164))["data"]["customer"]  # type: ignore[index]
        assert by_phone["id"] == by_email["id"]
        checked += 1
        if checked == 5:
            break
    assert checked == 5


async def test_stitching_agrees_with_the_oracle_and_every_member_resolves_to_one_id(
    client: httpx.AsyncClient, oracle: dict[str, frozenset[str]]
) -> None:
    rng = random.Random(3)
    multi = sorted({c for c in oracle.values() if len(c) > 1}, key=sorted)
    for cluster in rng.sample(multi, 15):
        ids = set()
        for ref in sorted(cluster):
            customer = (await gql(client, CUSTOMER, ref=ref))["data"]["customer"]  # type: ignore[index]
            assert _refs(customer) == set(cluster), ref
            ids.add(customer["id"])
        assert len(ids) == 1
        by_id = (await gql(client, CUSTOMER, id=ids.pop()))["data"]["customer"]  # type: ignore[index]
        assert _refs(by_id) == set(cluster)


async def test_pagination_returns_every_customer_exactly_once(
    client: httpx.AsyncClient, oracle: dict[str, frozenset[str]]
) -> None:
    query = """query($after: String) { customers(first: 400, after: $after) {
        edges { cursor node { id sourceRecords { ref } } }
        pageInfo { hasNextPage endCursor } } }"""
    after = None
    ids: list[str] = []
    seen_refs: list[str] = []
    while True:
        page = (await gql(client, query, after=after))["data"]["customers"]  # type: ignore[index]
        for edge in page["edges"]:
            ids.append(edge["node"]["id"])
            refs = {r["ref"] for r in edge["node"]["sourceRecords"]}
            assert refs == set(oracle[next(iter(refs))])
            seen_refs.extend(refs)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(ids) == len(set(ids))
    assert len(seen_refs) == len(set(seen_refs))
    assert set(seen_refs) == set(oracle)
    assert len(ids) == len(set(oracle.values()))


async def test_golden_fields_are_normalised_and_explained(
    client: httpx.AsyncClient, oracle: dict[str, frozenset[str]], entities: dict[str, set[str]]
) -> None:
    cluster = _spanning(oracle, entities)[0]
    customer = (await gql(client, CUSTOMER, ref=min(cluster)))["data"]["customer"]  # type: ignore[index]
    assert customer["email"] == normalize_email(customer["email"])
    assert customer["phone"] is None or customer["phone"].startswith("+")
    provenance = {p["field"]: p for p in customer["provenance"]}
    for field in ("name", "email", "country"):
        assert customer[field] is not None
        assert provenance[field]["ref"] in _refs(customer)
        assert provenance[field]["rule"]
    assert provenance["email"]["ref"].startswith("sales/"), "email prefers the shop's record"


async def test_related_entities_come_live_from_their_sources(
    client: httpx.AsyncClient,
    demo_dir: Path,
    oracle: dict[str, frozenset[str]],
    entities: dict[str, set[str]],
) -> None:
    query = """query($ref: String) { customer(ref: $ref) {
        tickets { id status createdAt source } orders { id total orderNumber }
        opportunities { id stage amount } } }"""

    def ids(db: str, sql: str, keys: list[str]) -> set[str]:
        con = sqlite3.connect(demo_dir / db)
        marks = ",".join("?" * len(keys))
        rows = {str(r[0]) for r in con.execute(sql.format(marks), [int(k) for k in keys])}
        con.close()
        return rows

    checked = 0
    for cluster in _spanning(oracle, entities):
        users = [r.split("/")[2] for r in cluster if r.startswith("support/users/")]
        shoppers = [r.split("/")[2] for r in cluster if r.startswith("sales/customers/")]
        contacts = [r.split("/")[2] for r in cluster if r.startswith("crm/contacts/")]
        tickets = ids("support.db", "SELECT id FROM tickets WHERE requester_id IN ({})", users)
        orders = ids("sales.db", "SELECT id FROM orders WHERE customer_id IN ({})", shoppers)
        if not tickets or not orders:
            continue
        opps = ids("crm.db", "SELECT id FROM opportunities WHERE contact_id IN ({})", contacts)
        customer = (await gql(client, query, ref=min(cluster)))["data"]["customer"]  # type: ignore[index]
        assert {t["id"] for t in customer["tickets"]} == tickets
        assert {o["id"] for o in customer["orders"]} == orders
        assert {o["id"] for o in customer["opportunities"]} == opps
        created = [t["createdAt"] for t in customer["tickets"]]
        assert created == sorted(created, reverse=True)
        assert all(t["source"] == "support" for t in customer["tickets"])
        checked += 1
        if checked == 5:
            break
    assert checked == 5


async def test_bad_arguments_get_located_errors_with_codes(client: httpx.AsyncClient) -> None:
    body = await gql(client, '{ customer(email: "not-an-email") { id } }')
    assert body["data"] == {"customer": None}
    (error,) = body["errors"]  # type: ignore[misc]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["path"] == ["customer"]
    body = await gql(client, '{ customers(first: 5, after: "garbage") { nodes { id } } }')
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"  # type: ignore[index]
    body = await gql(client, '{ customer(id: "cus_nope") { id } }')
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"  # type: ignore[index]


async def test_unknown_customer_is_null_without_error(client: httpx.AsyncClient) -> None:
    body = await gql(client, '{ customer(email: "nobody@nowhere.invalid") { id } }')
    assert body["data"] == {"customer": None} and "errors" not in body


def test_sources_run_on_the_engines_of_the_layout(
    demo_settings: LoadedSettings, demo_dir: Path, engine_layout: str
) -> None:
    urls = {
        name: str(opts.model_dump().get("url") or opts.model_dump()["base_url"])
        for name, (_, opts) in demo_settings.connectors.items()
    }
    assert urls.pop("feedback").startswith("http://127.0.0.1:")
    assert str(demo_dir) in urls["sales"]
    if engine_layout == "mixed":
        assert urls["crm"].startswith("postgresql+asyncpg://")
        assert urls["support"].startswith(("mysql+aiomysql://", "mariadb+aiomysql://"))
    else:
        assert all(url.startswith("sqlite+aiosqlite://") for url in urls.values())
