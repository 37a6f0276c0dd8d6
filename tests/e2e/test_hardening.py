"""API hardening against the attack documents of OWASP's GraphQL cheat sheet and
GraphQL Armor's suites: the production profile's limits, CSRF rules, body
limit, and SQL-injection strings through every string argument."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.settings import DEMO_CONFIG, LoadedSettings, load_settings
from tests.e2e.conftest import serve_in_process


@pytest.fixture()
def engine_layout() -> str:
    return "sqlite"


@pytest.fixture()
async def production(demo_env: None, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    text = DEMO_CONFIG.read_text()
    assert "\nprofile: demo\n" in text
    config = tmp_path / "production.yaml"
    config.write_text(text.replace("\nprofile: demo\n", "\nprofile: production\n"))
    async for client in serve_in_process(load_settings(config)):
        yield client


async def _post(client: httpx.AsyncClient, query: str, **variables: Any) -> httpx.Response:
    return await client.post("/graphql", json={"query": query, "variables": variables})


def _messages(response: httpx.Response) -> str:
    return " ".join(e["message"] for e in response.json().get("errors", []))


async def test_deep_nesting_is_refused(production: httpx.AsyncClient) -> None:
    deep = "{ customers { nodes " + "{ tickets " * 10 + "{ id }" + " }" * 10 + " } }"
    response = await _post(production, deep)
    assert response.json().get("data") is None
    assert "exceeds maximum operation depth" in _messages(response)


async def test_cached_documents_are_still_checked_against_the_limits(
    production: httpx.AsyncClient,
) -> None:
    """Parsing and validation are cached by query text, and the verdict cached is
    the limits' verdict: the same over-deep or over-long text is refused every time,
    without being parsed or validated again."""
    from resolvers.documents import DocumentCache
    from resolvers.lifecycle import parts_of

    schema = production.app.state.schema  # type: ignore[attr-defined]
    cache = next(
        e.__self__
        for e in parts_of(schema.extensions)
        if isinstance(getattr(e, "__self__", None), DocumentCache)
    )
    deep = "{ customers { nodes " + "{ tickets " * 10 + "{ id }" + " }" * 10 + " } }"
    fine = "{ sources { name } }"
    long = "{ " + "__typename " * 1200 + "}"
    parses, validations = cache.parses, cache.validations
    for _ in range(3):
        assert "exceeds maximum operation depth" in _messages(await _post(production, deep))
        assert "token" in _messages(await _post(production, long)).lower()
        assert (await _post(production, fine)).json()["data"]["sources"]
    assert cache.parses - parses == 2 + 3, "each text parsed once; a refused parse is not kept"
    assert cache.validations - validations == 2


async def test_alias_overload_is_refused_also_through_fragments(
    production: httpx.AsyncClient,
) -> None:
    aliases = " ".join(f"a{i}: sources {{ name }}" for i in range(40))
    response = await _post(production, "{ " + aliases + " }")
    assert "aliases found" in _messages(response)
    few = " ".join(f"a{i}: sources {{ name }}" for i in range(6))
    spread = f"fragment F on Query {{ {few} }} query {{ ...F ... on Query {{ ...F }} }}"
    assert "aliases found" in _messages(await _post(production, spread))


async def test_directive_overload_and_huge_documents_are_refused(
    production: httpx.AsyncClient,
) -> None:
    directives = "@include(if: true)" * 400
    response = await _post(production, "{ sources " + directives + " { name } }")
    assert response.json().get("data") is None
    assert "token" in _messages(response).lower()
    assert len(response.content) < 2000, "one short error, not one per directive"


async def test_circular_fragments_are_refused(production: httpx.AsyncClient) -> None:
    query = "fragment A on Query { sources { name } ...B } fragment B on Query { ...A } { ...A }"
    response = await _post(production, query)
    assert response.status_code in (200, 400)
    assert response.json()["data"] is None if "data" in response.json() else True
    assert "cannot spread fragment" in _messages(response).lower()


async def test_batching_is_off(production: httpx.AsyncClient) -> None:
    batch = [{"query": "{ sources { name } }"}] * 50
    response = await production.post("/graphql", json=batch)
    assert response.status_code == 400


async def test_csrf_simple_requests_and_get_mutations_are_refused(
    production: httpx.AsyncClient,
) -> None:
    query = "{ customers(first: 1) { nodes { id } } }"
    for content, kind in (
        (f"query={query}", "application/x-www-form-urlencoded"),
        (query, "text/plain"),
        (f'--b\r\nContent-Disposition: form-data; name="query"\r\n\r\n{query}\r\n--b--\r\n',
         "multipart/form-data; boundary=b"),
    ):  # fmt: skip
        response = await production.post(
            "/graphql", content=content, headers={"content-type": kind}
        )
        assert response.status_code == 415, kind
    for text in ("mutation { x }", "mutation M { x } query Q { sources { name } }"):
        response = await production.get("/graphql", params={"query": text})
        assert response.status_code == 405
    ok = await production.get("/graphql", params={"query": "{ sources { name } }"})
    assert ok.status_code == 200 and ok.json()["data"]["sources"]


async def test_body_page_size_and_cost_limits(production: httpx.AsyncClient) -> None:
    padding = " " * (70 * 1024)
    big = await production.post("/graphql", json={"query": "{ sources { name } }" + padding})
    assert big.status_code == 413
    assert big.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    # the export routes answer in their own shape, as their other refusals do
    export = await production.post("/export/customers.csv", content=padding.encode())
    assert export.status_code == 413
    assert export.json() == {
        "error": f"request body over {64 * 1024} bytes",
        "code": "PAYLOAD_TOO_LARGE",
    }
    page = await _post(production, "{ customers(first: 200) { nodes { id } } }")
    assert "'first' may be at most 100" in _messages(page)
    costly = await _post(
        production,
        "{ customers(first: 100) { nodes { id tickets(first: 100) { id subject status } "
        "orders(first: 100) { id total } } } }",
    )
    assert costly.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COSTLY"


async def test_production_hides_introspection_suggestions_and_graphiql(
    production: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    introspect = "{ __schema { types { name } } }"
    assert "introspection" in _messages(await _post(production, introspect)).lower()
    typo = await _post(production, "{ customerz { id } }")
    assert "customerz" in _messages(typo) and "Did you mean" not in _messages(typo)
    page = await production.get("/graphql", headers={"accept": "text/html"})
    assert "graphiql" not in page.text.lower()
    # the demo profile keeps them, for exploring
    assert (await _post(client, introspect)).json()["data"]["__schema"]["types"]
    assert "Did you mean" in _messages(await _post(client, "{ customerz { id } }"))


INJECTIONS = [
    "' OR '1'='1",
    "1..2) OR (1=1",
    "x'; DROP TABLE contacts; --",
    '%" OR 1=1 --',
    "crm/contacts/1 OR 1=1",
    "\\'; SELECT pg_sleep(1); --",
]


async def _contents(loaded: LoadedSettings) -> dict[str, str]:
    """A digest of every row of one table per SQL source, read where the gateway reads."""
    found = {}
    for system, table in (("crm", "contacts"), ("support", "tickets"), ("sales", "orders")):
        _, options = loaded.connectors[system]
        engine = create_async_engine(options.url)  # type: ignore[attr-defined]
        try:
            async with engine.connect() as conn:
                rows = (await conn.execute(sql(f"SELECT * FROM {table} ORDER BY id"))).all()
        finally:
            await engine.dispose()
        found[f"{system}.{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return found


@pytest.mark.parametrize(
    "engine_layout",
    ["sqlite", pytest.param("mixed", marks=[pytest.mark.postgres, pytest.mark.mariadb])],
)
async def test_sql_injection_through_every_string_argument_does_nothing(
    client: httpx.AsyncClient, demo_settings: LoadedSettings
) -> None:
    """On the SQLite demo, and with crm on PostgreSQL and support on MariaDB."""
    before = await _contents(demo_settings)
    documents = [
        ("query($v: String) { customer(email: $v) { id } }", "customer"),
        ("query($v: String) { customer(phone: $v) { id } }", "customer"),
        ("query($v: String) { customer(ref: $v) { id } }", "customer"),
        ("query($v: ID) { customer(id: $v) { id } }", "customer"),
        ("query($v: String) { customers(after: $v) { nodes { id } } }", None),
        ("query($v: String) { customers(filter: {lastName: {eq: $v}}) { nodes { id } } }", "[]"),
        ("query($v: String) { customers(filter: {firstName: {contains: $v}}) "
         "{ nodes { id } } }", "[]"),
        ("query($v: String!) { customers(filter: {country: {in: [$v]}}) { nodes { id } } }", "[]"),
        ("query($v: String) { customers(filter: {tickets: {subject: {startsWith: $v}}}) "
         "{ nodes { id } } }", "[]"),
        ("query($v: String) { customers(filter: {segment: $v}) { nodes { id } } }", None),
        ("query($v: String!) { segment(name: $v) { count } }", None),
        ("query($v: [String!]) { customers(first: 3) { nodes { timeline(kinds: $v) "
         "{ nodes { kind } } } } }", "timeline"),
    ]  # fmt: skip
    for query, empty in documents:
        for payload in INJECTIONS:
            response = await _post(client, query, v=payload)
            assert response.status_code == 200, (query, payload)
            body = response.json()
            for error in body.get("errors", []):
                assert error["extensions"]["code"] in ("BAD_REQUEST", "QUERY_INVALID"), error
                leaked = ("sqlite", "OperationalError", "syntax error", "Traceback", "FROM ")
                assert not any(word in error["message"] for word in leaked), error
            data = body.get("data") or {}
            if body.get("errors"):
                continue  # refused as a bad request: nothing was read
            if empty == "customer":
                assert data.get("customer") is None, (query, payload)
            elif empty == "[]":
                assert data["customers"]["nodes"] == [], (query, payload)
            elif empty == "timeline":
                assert all(n["timeline"]["nodes"] == [] for n in data["customers"]["nodes"])
    assert await _contents(demo_settings) == before, "no source changed"


LISTED = "{ customers(first: 2) { nodes { id } } }"


def _persisted_config(tmp_path: Path, profile: str, listing: str) -> Path:
    (tmp_path / "queries.json").write_text(listing)
    text = DEMO_CONFIG.read_text().replace("\nprofile: demo\n", f"\nprofile: {profile}\n")
    config = tmp_path / f"{profile}.yaml"
    config.write_text(text + "\nlimits:\n  persisted_queries: queries.json\n")
    return config


async def test_the_production_profile_runs_only_allow_listed_operations(
    demo_env: None, tmp_path: Path
) -> None:
    import json

    digest = hashlib.sha256(LISTED.encode()).hexdigest()
    config = _persisted_config(tmp_path, "production", json.dumps({digest: LISTED}))
    by_hash = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    async for client in serve_in_process(load_settings(config)):
        stored = await client.post("/graphql", json={"extensions": by_hash})
        assert len(stored.json()["data"]["customers"]["nodes"]) == 2
        listed = await _post(client, LISTED)
        assert listed.json()["data"] == stored.json()["data"]
        other = await _post(client, "{ customers(first: 3) { nodes { id email } } }")
        assert other.json()["data"] is None
        assert other.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
        unknown = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
        missing = await client.post("/graphql", json={"extensions": unknown})
        assert missing.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        forged = await client.post(
            "/graphql", json={"query": "{ sources { name } }", "extensions": by_hash}
        )
        assert forged.json()["data"] is None
    demo = _persisted_config(tmp_path, "demo", json.dumps([LISTED]))  # a list works too
    async for client in serve_in_process(load_settings(demo)):
        stored = await client.post("/graphql", json={"extensions": by_hash})
        assert len(stored.json()["data"]["customers"]["nodes"]) == 2
        free = await _post(client, "{ sources { name } }")  # the demo profile does not require it
        assert free.json()["data"]["sources"]


def test_a_bad_allow_list_stops_start_up(demo_env: None, tmp_path: Path) -> None:
    from connectors import ConfigError

    for listing, says in (('{"abc": "{ sources { name } }"}', "not the sha256"), ("[", "not JSON")):
        with pytest.raises(ConfigError) as caught:
            load_settings(_persisted_config(tmp_path, "production", listing))
        assert caught.value.path == "limits.persisted_queries" and says in caught.value.reason
