"""Every read of customer data is audited — GraphQL and exports — with ids and
field names, never values; an audit log that cannot be written refuses the read."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app as cli_app
from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import serve_in_process


@pytest.fixture()
def engine_layout() -> str:
    return "sqlite"


def _entries() -> list[dict[str, Any]]:
    path = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_graphql_reads_are_audited_without_values(client: httpx.AsyncClient) -> None:
    query = "{ customers(first: 3) { nodes { id name email street } } }"
    response = await client.post(
        "/graphql",
        json={"query": query},
        headers={"X-API-Key": "support-key", "X-Purpose": "ticket 4711"},
    )
    nodes = response.json()["data"]["customers"]["nodes"]
    await client.post("/graphql", json={"query": "{ sources { name } }"})  # no customer data
    (entry,) = _entries()
    assert entry["principal"] == "support-agent" and entry["roles"] == ["support"]
    assert entry["purpose"] == "ticket 4711" and entry["channel"] == "graphql"
    assert entry["client"] and entry["at"].endswith("+00:00")
    assert entry["customers"] == sorted(n["id"] for n in nodes)
    assert entry["fields"] == ["Customer.email", "Customer.id", "Customer.name"]
    assert entry["denied"] == ["Customer.street"] and entry["outcome"] == "denied"
    admin = await client.post("/graphql", json={"query": query})
    text = json.dumps(_entries())
    for node in admin.json()["data"]["customers"]["nodes"]:
        for value in (node["email"], node["name"], node["street"]):
            assert not value or value not in text, "values never reach the audit log"
    assert _entries()[-1]["principal"] == "demo" and _entries()[-1]["outcome"] == "ok"


async def test_exports_are_audited_chunk_by_chunk(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/export/customers.ndjson?columns=id,email", headers={"X-API-Key": "emea-key"}
    )
    exported = [json.loads(line)["id"] for line in response.text.splitlines()]
    entries = [e for e in _entries() if e["channel"] == "export"]
    assert entries[0]["outcome"] == "started" and entries[0]["customers"] == []
    assert all(e["principal"] == "emea-team" and e["format"] == "ndjson" for e in entries)
    assert entries[0]["fields"] == ["email", "id"] and entries[0]["table"] == "customers"
    assert all(e["fields"] == ["Customer.email", "Customer.id"] for e in entries[1:])
    audited = [c for e in entries[1:] for c in e["customers"]]
    assert sorted(audited) == sorted(exported)


async def test_audit_failure_fails_closed(
    demo_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTVIEW_AUDIT_LOG", str(tmp_path / "missing" / "audit.jsonl"))
    loaded = load_settings(DEMO_CONFIG)
    async for client in serve_in_process(loaded):
        query = {"query": "{ customers(first: 2) { nodes { id email } } }"}
        body = (await client.post("/graphql", json=query)).json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        one = await client.post("/graphql", json={"query": '{ customer(id: "cus_x") { id } }'})
        assert one.json()["data"] is None
        export = await client.get("/export/customers.csv?columns=id")
        assert export.status_code == 503 and export.json()["code"] == "AUDIT_UNAVAILABLE"
        # reads of no customer data need no audit entry
        sources = (await client.post("/graphql", json={"query": "{ sources { name } }"})).json()
        assert sources["data"]["sources"]


async def test_custview_audit_queries_the_log(client: httpx.AsyncClient) -> None:
    query = {"query": "{ customers(first: 2) { nodes { id } } }"}
    first = (await client.post("/graphql", json=query)).json()["data"]["customers"]["nodes"]
    await client.post("/graphql", json=query, headers={"X-API-Key": "support-key"})
    runner = CliRunner()

    def audit(*args: str) -> list[dict[str, Any]]:
        result = runner.invoke(cli_app, ["audit", "--json", *args])
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines()]

    assert len(audit()) == 2
    assert [e["principal"] for e in audit("--principal", "support-agent")] == ["support-agent"]
    assert len(audit("--customer", first[0]["id"])) == 2
    assert audit("--customer", "cus_nobody") == []
    assert len(audit("--since", "1h")) == 2 and audit("--since", "2999-01-01") == []
    table = runner.invoke(cli_app, ["audit", "--principal", "demo"])
    assert table.exit_code == 0 and "demo" in table.output
    bad = runner.invoke(cli_app, ["audit", "--since", "yesterday"])
    assert bad.exit_code == 2


def _table_config(tmp_path: Path, url: str) -> Path:
    """The demo config with the audit log in a database table at ``url``."""
    old = 'audit:\n  path: "${CUSTVIEW_AUDIT_LOG:-custview-audit.jsonl}"\n'
    text = DEMO_CONFIG.read_text()
    assert old in text
    path = tmp_path / "table-audit.yaml"
    path.write_text(text.replace(old, f'audit:\n  url: "{url}"\n'))
    return path


async def test_the_audit_log_can_be_a_database_table(
    demo_env: None, tmp_path: Path, own_db_url: str
) -> None:
    config = _table_config(tmp_path, own_db_url)
    async for client in serve_in_process(load_settings(config)):
        query = {"query": "{ customers(first: 2) { nodes { id email } } }"}
        response = await client.post("/graphql", json=query, headers={"X-API-Key": "support-key"})
        nodes = response.json()["data"]["customers"]["nodes"]
    log_file = await asyncio.to_thread(Path(os.environ["CUSTVIEW_AUDIT_LOG"]).exists)
    assert not log_file, "the table replaces the file"
    args = ["audit", "--json", "--customer", nodes[0]["id"], "--config", str(config)]
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, args)  # it runs its own loop
    assert result.exit_code == 0, result.output
    (entry,) = [json.loads(line) for line in result.output.splitlines()]
    assert entry["principal"] == "support-agent" and entry["channel"] == "graphql"
    assert entry["customers"] == sorted(n["id"] for n in nodes)
    assert entry["fields"] == ["Customer.email", "Customer.id"] and entry["outcome"] == "ok"
    assert nodes[0]["email"] not in result.output, "ids and field names, never values"


async def test_an_unreachable_audit_table_fails_closed(demo_env: None, tmp_path: Path) -> None:
    config = _table_config(tmp_path, "postgresql://custview@127.0.0.1:1/audit")
    async for client in serve_in_process(load_settings(config)):
        query = {"query": "{ customers(first: 2) { nodes { id email } } }"}
        body = (await client.post("/graphql", json=query)).json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        export = await client.get("/export/customers.csv?columns=id")
        assert export.status_code == 503
    args = ["audit", "--config", str(config)]
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, args)
    assert result.exit_code == 1 and "audit database is unavailable" in result.output
