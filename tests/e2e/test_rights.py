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


ERASE = """mutation($id: ID!, $reason: String!) { requestErasure(customerId: $id, reason: $reason) {
  id customerId actor records { source table id ref relation } } }"""
TARGET = """{ segment(name: "marketing-qualified-lead") { count customers(first: 30) { nodes {
  id email phone sourceRecords { ref } business { id } } } } }"""
LOOKUPS = """query($id: ID!, $email: String!, $phone: String!) {
  byId: customer(id: $id) { id } byEmail: customer(email: $email) { id }
  byPhone: customer(phone: $phone) { id }
  listed: customers(filter: {email: {eq: $email}}) { nodes { id } } }"""
LINK = """mutation($a: String!, $b: String!) { linkRecords(a: $a, b: $b) { decision { id } } }"""


def _digests(demo_dir: Path) -> dict[str, bytes]:
    import hashlib

    return {
        p.name: hashlib.sha256(p.read_bytes()).digest()
        for p in demo_dir.glob("*.db")
        if p.name != "registry.db"
    }


async def _hidden_everywhere(
    client: httpx.AsyncClient, target: dict[str, Any], other: dict[str, Any]
) -> None:
    """The erased customer is in no answer: lookups, lists, segments, groups, exports."""
    found = await gql(
        client, LOOKUPS, id=target["id"], email=target["email"], phone=target["phone"]
    )
    assert "errors" not in found
    assert found["data"] == {
        "byId": None,
        "byEmail": None,
        "byPhone": None,
        "listed": {"nodes": []},
    }
    for record in target["sourceRecords"]:
        one = await gql(client, "query($r: String!) { customer(ref: $r) { id } }", r=record["ref"])
        assert "errors" not in one and one["data"] == {"customer": None}
    segment = (await gql(client, TARGET))["data"]["segment"]  # type: ignore[index]
    assert target["id"] not in {n["id"] for n in segment["customers"]["nodes"]}
    if target["business"]:
        members = await gql(
            client,
            "query($b: ID!) { business(id: $b) { members(first: 500) { id } } }",
            b=target["business"]["id"],
        )
        business = members["data"]["business"]  # type: ignore[index]
        assert business is None or target["id"] not in {m["id"] for m in business["members"]}
    emails = [target["email"], other["email"]]
    wanted = json.dumps({"or": [{"email": {"eq": e}} for e in emails]})
    exported = await client.get("/export/source_records.ndjson", params={"filter": wanted})
    assert exported.status_code == 200
    rows = [json.loads(line) for line in exported.text.splitlines()]
    assert {r["ref"] for r in rows}.isdisjoint(r["ref"] for r in target["sourceRecords"])
    assert {r["customer_id"] for r in rows} == {other["id"]}


async def test_an_erased_customer_is_in_no_answer_and_cannot_be_relinked(
    config: Path, demo_dir: Path
) -> None:
    from gateway.settings import load_settings

    before = _digests(demo_dir)
    async for client in serve_in_process(load_settings(config)):
        segment = (await gql(client, TARGET))["data"]["segment"]  # type: ignore[index]
        target = next(
            n
            for n in segment["customers"]["nodes"]
            if n["email"] and n["phone"] and len(n["sourceRecords"]) >= 2
        )
        other = next(
            n for n in segment["customers"]["nodes"] if n["email"] not in (None, target["email"])
        )
        report = await _report(client, id=target["id"])
        refused = await client.post(
            "/graphql",
            json={"query": ERASE, "variables": {"id": target["id"], "reason": "r"}},
            headers={"X-API-Key": "support-key"},
        )
        assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        response = await client.post(
            "/graphql",
            json={"query": ERASE, "variables": {"id": target["id"], "reason": "DSR-17"}},
            headers=DPO,
        )
        erasure = response.json()["data"]["requestErasure"]
        assert (
            erasure["customerId"] == target["id"] and erasure["actor"] == "api_key:privacy-officer"
        )
        own = {r["ref"] for r in erasure["records"] if r["relation"] is None}
        assert own == {r["ref"] for r in target["sourceRecords"]}
        related = {r["ref"] for r in erasure["records"] if r["relation"] is not None}
        assert related == {r["ref"] for r in report["related"]}
        entry = _entries()[-1]
        assert entry["fields"] == ["requestErasure"] and entry["reason"] == "DSR-17"
        after = (await gql(client, TARGET))["data"]["segment"]  # type: ignore[index]
        assert after["count"] == segment["count"] - 1
        other = next(n for n in segment["customers"]["nodes"] if n["id"] != target["id"])
        await _hidden_everywhere(client, target, other)
        ref = target["sourceRecords"][0]["ref"]
        linked = await gql(client, LINK, a=ref, b=other["sourceRecords"][0]["ref"])
        assert "erased" in linked["errors"][0]["message"]  # type: ignore[index]
        again = await gql(client, ERASE, id=target["id"], reason="twice")
        assert "erased" in again["errors"][0]["message"]  # type: ignore[index]
    async for client in serve_in_process(load_settings(config)):  # a restart
        await _hidden_everywhere(client, target, other)
        linked = await gql(client, LINK, a=other["sourceRecords"][0]["ref"], b=ref)
        assert "erased" in linked["errors"][0]["message"]  # type: ignore[index]
    assert _digests(demo_dir) == before  # no source was written
    with sqlite3.connect(config.parent / "registry.db") as db:
        stored = db.execute("SELECT action, a, b FROM custview_events").fetchall()
    assert {(a, b) for action, a, b in stored if action == "erase"} == {
        (r, target["id"]) for r in own
    }
    assert target["email"] not in json.dumps(stored), "the registry keeps ids only"


def test_erase_command_lists_what_to_delete(config: Path, demo_dir: Path) -> None:
    group = sorted(next(g for g in clusters(demo_dir) if len(g) == 2))
    from resolvers.records import RecordRef

    runner = CliRunner()
    customer = RecordRef.parse(group[0]).customer_id()
    args = ["erase", "--id", customer, "--reason", "DSR-18", "--config", str(config)]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert all(ref in result.stdout for ref in group)
    assert _entries()[-1]["reason"] == "DSR-18" and _entries()[-1]["channel"] == "cli"
    gone = runner.invoke(cli_app, ["sar", "--id", customer, "--config", str(config)])
    assert gone.exit_code == 1
    again = runner.invoke(cli_app, [*args, "--json"])
    assert again.exit_code == 1 and "erased" in again.stderr
    out = config.parent / "records.ndjson"  # an export of every customer leaves them out
    export = ["export", "source_records", "--format", "ndjson", "-o", str(out)]
    assert runner.invoke(cli_app, [*export, "--config", str(config)]).exit_code == 0
    refs = {json.loads(line)["ref"] for line in out.read_text().splitlines()}
    assert len(refs) > 1000 and refs.isdisjoint(group)
