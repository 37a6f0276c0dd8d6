"""One access policy for every path: masked, denied and row-filtered the same in
GraphQL and in the CSV/NDJSON exports (the demo's support-key and emea-key)."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import httpx
import pytest

from resolvers.export import governed_columns
from tests.e2e.conftest import gql, walk

SUPPORT = {"X-API-Key": "support-key"}
EMEA = {"X-API-Key": "emea-key"}
REGIONS = {"DE", "FR", "GB"}


@pytest.fixture()
def engine_layout() -> str:
    """The policy is engine-independent (the planner's pushdown is tested on every
    engine elsewhere): the embedded SQLite demo is enough here."""
    return "sqlite"


PAGE = """query($after: String) { customers(first: 500, after: $after) {
    pageInfo { hasNextPage endCursor } nodes { id name email phone country } } }"""


async def _as(
    client: httpx.AsyncClient, headers: dict[str, str], query: str, **variables: Any
) -> Any:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _walk(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    return await walk(client, PAGE, headers)


async def _export(client: httpx.AsyncClient, headers: dict[str, str], fmt: str, cols: str) -> Any:
    response = await client.get(f"/export/customers.{fmt}?columns={cols}", headers=headers)
    assert response.status_code == 200, response.text
    if fmt == "csv":
        return [
            {k: v or None for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(response.text))
        ]
    return [json.loads(line) for line in response.text.splitlines()]


async def test_support_role_sees_masked_contact_details_and_no_address(
    client: httpx.AsyncClient,
) -> None:
    admin = (await gql(client, "{ customers(first: 40) { nodes { id email phone } } }"))["data"]
    someone = next(c for c in admin["customers"]["nodes"] if c["email"] and c["phone"])  # type: ignore[index]
    query = """query($id: ID) { customer(id: $id) {
        id name email phone street city lifetimeValue
        provenance { field value alternatives }
        sourceRecords { ref data }
        orders { orderNumber total } } }"""
    body = await _as(client, SUPPORT, query, id=someone["id"])
    customer = body["data"]["customer"]
    local, domain = someone["email"].split("@")
    assert customer["email"] == f"{local[0]}***@{domain}"
    assert customer["phone"] == "***" + someone["phone"][-4:]
    assert all(part.endswith("***") and len(part) == 4 for part in customer["name"].split())
    assert customer["street"] is None and customer["lifetimeValue"] is None
    assert customer["city"] is not None, "allowed fields are untouched"
    forbidden = {
        (e["path"][1], e["path"][-1])
        for e in body["errors"]
        if e["extensions"]["code"] == "FORBIDDEN_FIELD"
    }
    assert {("street", "street"), ("lifetimeValue", "lifetimeValue")} <= forbidden
    if customer["orders"]:
        assert all(o["total"] is None and o["orderNumber"] for o in customer["orders"])
        assert ("orders", "total") in forbidden
    # nothing hidden above reappears through provenance or the raw source records
    fields = {p["field"] for p in customer["provenance"]}
    assert "street" not in fields and "email" in fields
    emails = [p for p in customer["provenance"] if p["field"] == "email"]
    assert all("***@" in p["value"] for p in emails)
    assert all("***@" in a["value"] for p in emails for a in p["alternatives"])
    text = json.dumps(customer["sourceRecords"])
    assert someone["email"] not in text.lower() and someone["phone"][-7:] not in text
    assert '"street"' not in text and '"postcode"' not in text


async def test_masking_is_identical_in_graphql_and_exports(client: httpx.AsyncClient) -> None:
    graphql = await _walk(client, SUPPORT)
    wanted = ["id", "name", "email", "phone", "country"]
    for fmt in ("csv", "ndjson"):
        exported = await _export(client, SUPPORT, fmt, ",".join(wanted))
        assert exported == graphql, fmt
    assert any(c["email"] and "***@" in c["email"] for c in graphql)
    # denied columns are absent by default and refused when asked for
    app = client.app  # type: ignore[attr-defined]
    grant = app.state.policy.grant(["support"])
    default = [
        c.name for c in governed_columns(app.state.federation.model, "customers", None, grant)
    ]
    assert "street" not in default and "lifetimeValue" not in default and "email" in default
    refused = await client.get("/export/customers.ndjson?columns=id,street", headers=SUPPORT)
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN_FIELD"


async def test_row_rules_hide_the_same_customers_in_graphql_and_exports(
    client: httpx.AsyncClient,
) -> None:
    everyone = await _walk(client, {})
    expected = [c for c in everyone if c["country"] in REGIONS]
    assert 0 < len(expected) < len(everyone)
    regional = await _walk(client, EMEA)
    assert sorted(c["id"] for c in regional) == sorted(c["id"] for c in expected)
    exported = await _export(client, EMEA, "ndjson", "id,country")
    assert sorted(r["id"] for r in exported) == sorted(c["id"] for c in expected)
    # a customer outside the regions is not found, whatever the lookup
    outside = next(c for c in everyone if c["country"] and c["country"] not in REGIONS)
    one = "query($id: ID) { customer(id: $id) { id } }"
    assert (await _as(client, EMEA, one, id=outside["id"]))["data"]["customer"] is None
    inside = expected[0]
    assert (await _as(client, EMEA, one, id=inside["id"]))["data"]["customer"] is not None
    # the user's own filter combines with the rule
    filtered = await _as(
        client, EMEA, '{ customers(first: 500, filter: {country: {eq: "US"}}) { nodes { id } } }'
    )
    assert filtered["data"]["customers"]["nodes"] == []


async def test_filters_and_sorting_on_hidden_fields_are_refused(client: httpx.AsyncClient) -> None:
    for query in (
        '{ customers(filter: {email: {startsWith: "a"}}) { nodes { id } } }',
        '{ customers(filter: {or: [{city: {eq: "Paris"}}, {street: {contains: "a"}}]}) '
        "{ nodes { id } } }",
        "{ customers(filter: {orders: {total: {gt: 100}}}) { nodes { id } } }",
        "{ customers(orderBy: [{field: lifetimeValue}]) { nodes { id } } }",
    ):
        body = await _as(client, SUPPORT, query)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD", query
        assert body["data"] is None
    allowed = await _as(client, SUPPORT, '{ customers(first: 2, filter: {city: {eq: "x"}}) '
                        "{ nodes { id } } }")  # fmt: skip
    assert "errors" not in allowed


async def test_a_caller_without_a_known_role_is_refused(client: httpx.AsyncClient) -> None:
    from gateway.auth import Authenticator, Principal

    app = client.app  # type: ignore[attr-defined]
    # a principal whose roles the policy does not know: 403 on GraphQL and exports
    original = Authenticator.authenticate

    def stranger(self: Authenticator, headers: Any) -> Principal:
        return Principal("stranger", "api_key", frozenset({"intern"}))

    Authenticator.authenticate = stranger  # type: ignore[method-assign]
    try:
        refused = await client.post("/graphql", json={"query": "{ customers { nodes { id } } }"})
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert (await client.get("/export/customers.csv")).status_code == 403
    finally:
        Authenticator.authenticate = original  # type: ignore[method-assign]
    assert app is not None


def test_masks_are_declared_functions() -> None:
    from resolvers.policy import mask

    assert mask("jane.doe@example.com", "mask:email") == "j***@example.com"
    assert mask("+1 415 555 0123", "mask:phone") == "***0123"
    assert mask("Jane van Doe", "mask:name") == "J*** v*** D***"
    hashed = mask("x", "mask:hash", "salt")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", hashed) and hashed != mask("x", "mask:hash")
    assert mask(None, "mask:email") is None


async def test_segments_follow_the_policy(client: httpx.AsyncClient) -> None:
    # a segment filtering on a hidden field would reveal it: refused, and not listed
    hidden = await _as(client, SUPPORT, '{ segment(name: "high-value-at-risk") { count } }')
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"
    refused = await _as(
        client, SUPPORT, '{ customers(filter: {segment: "high-value-at-risk"}) { nodes { id } } }'
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"
    listed = await _as(client, SUPPORT, "{ customers(first: 50) { nodes { segments } } }")
    names = {n for node in listed["data"]["customers"]["nodes"] for n in node["segments"]}
    assert "high-value-at-risk" not in names and "sales-qualified-lead" not in names
    # row rules hold inside segments: members and counts
    query = """{ segment(name: "dormant") { count customers(first: 500) { nodes { country } } } }"""
    everyone = (await _as(client, {}, query))["data"]["segment"]
    regional = (await _as(client, EMEA, query))["data"]["segment"]
    countries = [n["country"] for n in regional["customers"]["nodes"]]
    assert set(countries) <= REGIONS
    assert regional["count"] == len(countries) < everyone["count"]


async def test_every_export_table_and_parameter_follows_the_policy(
    client: httpx.AsyncClient,
) -> None:
    async def status(path: str, headers: dict[str, str]) -> int:
        return (await client.get(path, headers=headers)).status_code

    assert await status("/export/opportunities.csv", SUPPORT) == 403, "a denied relation"
    assert await status("/export/orders.csv?columns=customer_id,total", SUPPORT) == 403
    assert await status('/export/customers.csv?filter={"email":{"eq":"a@b.c"}}', SUPPORT) == 403
    assert await status('/export/customers.csv?orderBy=[{"field":"lifetimeValue"}]', SUPPORT) == 403
    assert await status("/export/customers.csv?segment=high-value-at-risk", SUPPORT) == 403
    rows = (await client.get("/export/orders.ndjson?segment=dormant", headers=SUPPORT)).text
    rows = rows.splitlines()
    assert rows and all("total" not in json.loads(r) for r in rows)
    # row rules hold for related tables too
    regional = {c["id"] for c in await _export(client, EMEA, "ndjson", "id")}
    path = '/export/tickets.ndjson?filter={"tickets":{"priority":{"eq":"urgent"}}}'
    tickets = (await client.get(path, headers=EMEA)).text.splitlines()
    assert tickets and {json.loads(t)["customer_id"] for t in tickets} <= regional


async def test_no_customer_field_lets_a_denied_field_null_the_whole_customer(
    client: httpx.AsyncClient,
) -> None:
    """A denied field is null plus an error, never a null customer: fields added
    later must be nullable (the Customer 360 page asks for every field)."""
    from tests.e2e.test_partial_results import _every_customer_field

    selection = _every_customer_field(client.app.state.schema)  # type: ignore[attr-defined]
    query = f"{{ customers(first: 3) {{ nodes {{ {selection} }} }} }}"
    body = await _as(client, SUPPORT, query)
    nodes = body["data"]["customers"]["nodes"]
    assert nodes and all(node is not None for node in nodes), body.get("errors")
    assert {e["extensions"]["code"] for e in body.get("errors", [])} <= {"FORBIDDEN_FIELD"}
