"""Data-subject rights: subject-access reports (GraphQL and ``custview sar``)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app as cli_app
from tests.e2e.conftest import gql, serve_in_process
from tests.e2e.test_steward import clusters, steward_config

DPO = {"X-API-Key": "dpo-key"}
REPORT = "query($id: ID, $email: String) { customerDataReport(id: $id, email: $email) }"


@pytest.fixture()
def engine_layout() -> str:
    return "sqlite"


@pytest.fixture()
def config(demo_env: None, tmp_path: Path) -> Path:
    """The demo config with a registry of this test's own."""
    return steward_config(tmp_path).path


@pytest.fixture()
async def rights(config: Path) -> AsyncIterator[httpx.AsyncClient]:
    from gateway.settings import load_settings

    async for c in serve_in_process(load_settings(config)):
        yield c


def _entries() -> list[dict[str, Any]]:
    path = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    return [json.loads(line) for line in path.read_text().splitlines()]


def _row(demo_dir: Path, ref: str) -> dict[str, Any]:
    source, table, key = ref.split("/")
    with sqlite3.connect(demo_dir / f"{source}.db") as db:
        db.row_factory = sqlite3.Row
        row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (int(key),)).fetchone()
    return dict(row)


async def _report(client: httpx.AsyncClient, **args: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": REPORT, "variables": args}, headers=DPO)
    body = response.json()
    assert "errors" not in body, body
    report: dict[str, Any] = body["data"]["customerDataReport"]
    return report


async def test_a_report_holds_every_record_value_and_provenance(
    rights: httpx.AsyncClient, demo_dir: Path
) -> None:
    group = sorted(next(g for g in clusters(demo_dir) if len(g) >= 3 and "support" in str(g)))
    found = await gql(rights, "query($r: String!) { customer(ref: $r) { id email } }", r=group[0])
    customer = found["data"]["customer"]  # type: ignore[index]
    report = await _report(rights, id=customer["id"])
    assert report["customerId"] == customer["id"] and report["complete"] is True
    assert {r["ref"] for r in report["records"]} == set(group)
    for record in report["records"]:
        if record["source"] != "feedback":  # the REST service is checked by its own tests
            stored = _row(demo_dir, record["ref"])
            assert all(stored[k] == v for k, v in record["values"].items()), record["ref"]
    related = {(r["relation"], r["ref"]) for r in report["related"]}
    tickets = await gql(
        rights, "query($id: ID!) { customer(id: $id) { tickets { id } } }", id=customer["id"]
    )
    ids = {t["id"] for t in tickets["data"]["customer"]["tickets"]}  # type: ignore[index]
    assert {ref for rel, ref in related if rel == "tickets"} == {
        f"support/tickets/{i}" for i in ids
    }
    golden = {g["field"]: g for g in report["golden"]}
    assert golden["email"]["value"] == customer["email"]
    assert golden["email"]["ref"] in group and golden["email"]["rule"]
    assert report["registry"] == {"decisions": [], "links": []}
    by_email = await _report(rights, email=customer["email"].upper())
    assert by_email["customerId"] == customer["id"]
    entry = _entries()[-1]
    assert entry["fields"] == ["customerDataReport"] and entry["customers"] == [customer["id"]]
    assert entry["principal"] == "privacy-officer"
    assert customer["email"] not in json.dumps(_entries()), "values never reach the audit log"


async def test_only_the_rights_roles_may_ask(rights: httpx.AsyncClient) -> None:
    query = '{ customerDataReport(email: "nobody@example.com") }'
    for key in ("support-key", "emea-key"):
        response = await rights.post("/graphql", json={"query": query}, headers={"X-API-Key": key})
        body = response.json()
        assert body["data"]["customerDataReport"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    answer = await gql(rights, query)  # demo-key: admin
    assert answer["data"] == {"customerDataReport": None} and "errors" not in answer
    both = await gql(rights, '{ customerDataReport(id: "cus_x", email: "a@b.c") }')
    assert both["errors"][0]["extensions"]["code"] == "BAD_REQUEST"  # type: ignore[index]


def test_sar_command_prints_the_report_and_audits_it(config: Path, demo_dir: Path) -> None:
    group = sorted(next(g for g in clusters(demo_dir) if len(g) >= 2))
    email = next(_row(demo_dir, ref)["email"] for ref in group if not ref.startswith("feedback"))
    runner = CliRunner()
    result = runner.invoke(cli_app, ["sar", "--email", email, "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {r["ref"] for r in report["records"]} >= set(group)
    entry = _entries()[-1]
    assert entry["channel"] == "cli" and entry["principal"].startswith("cli:")
    assert entry["customers"] == [report["customerId"]]
    shown = runner.invoke(cli_app, ["sar", "--id", report["customerId"], "--config", str(config)])
    assert shown.exit_code == 0 and group[0] in shown.stdout
    missing = runner.invoke(cli_app, ["sar", "--config", str(config)])
    assert missing.exit_code == 2
    nobody = runner.invoke(cli_app, ["sar", "--email", "no@where.example", "-c", str(config)])
    assert nobody.exit_code == 1
