"""A dead source degrades the answer instead of failing it."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import serve_in_process
from tests.e2e.oracle import clusters

DEAD = "postgresql+asyncpg://custview:hunter2@127.0.0.1:1/support"
QUERY = """query($email: String) { customer(email: $email) {
    id name sourceRecords { source } tickets { id } orders { id }
    timeline(first: 50) { nodes { source } } } }"""


def _three_system_email(demo_dir: Path) -> str:
    model = load_settings(DEMO_CONFIG).settings.model
    for cluster in sorted(set(clusters(model, demo_dir).values()), key=sorted):
        if {r.split("/")[0] for r in cluster} != {"crm", "support", "sales"}:
            continue
        sales = [r for r in cluster if r.startswith("sales/customers/")]
        con = sqlite3.connect(demo_dir / "sales.db")
        rows = con.execute(
            "SELECT email FROM customers WHERE id = ? AND email IS NOT NULL",
            (int(sales[0].split("/")[2]),),
        ).fetchall()
        orders = con.execute(
            "SELECT count(*) FROM orders WHERE customer_id = ?", (int(sales[0].split("/")[2]),)
        ).fetchone()[0]
        con.close()
        if rows and orders:
            return str(rows[0][0])
    raise AssertionError("no person in all three systems with orders")


async def test_a_dead_source_gives_partial_data_and_one_error_naming_it(
    demo_dir: Path, tmp_path: Path, demo_env: None
) -> None:
    email = _three_system_email(demo_dir)
    config = tmp_path / "dead.yaml"
    config.write_text(
        DEMO_CONFIG.read_text().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"', f'"{DEAD}"'
        )
    )
    assert os.environ["CUSTVIEW_DEMO_DIR"] == str(demo_dir)
    async for client in serve_in_process(load_settings(config)):
        response = await client.post(
            "/graphql", json={"query": QUERY, "variables": {"email": email}}
        )
        await _check(response)


async def test_a_dead_source_is_logged_as_one_line_per_error_without_a_traceback(
    demo_dir: Path, tmp_path: Path, demo_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "dead.yaml"
    config.write_text(
        DEMO_CONFIG.read_text().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"', f'"{DEAD}"'
        )
    )
    caplog.set_level(logging.WARNING)
    async for client in serve_in_process(load_settings(config)):
        response = await client.post(
            "/graphql", json={"query": "{ customers(first: 3) { nodes { name tickets { id } } } }"}
        )
        assert response.status_code == 200
        assert len(response.json()["errors"]) == 3
    graphql = [r for r in caplog.records if r.name == "strawberry.execution"]
    assert [r.levelno for r in graphql] == [logging.WARNING] * 3
    assert all(r.exc_info is None for r in graphql), "an expected failure, not a bug"
    assert graphql[0].getMessage().endswith("(at customers.nodes.0.tickets)")
    assert "source 'support'" in graphql[0].getMessage()
    assert "hunter2" not in caplog.text and "Traceback" not in caplog.text


async def _check(response: httpx.Response) -> None:
    assert response.status_code == 200
    body = response.json()
    customer = body["data"]["customer"]
    assert {r["source"] for r in customer["sourceRecords"]} == {"crm", "sales"}
    assert customer["orders"], "the other sources still answer"
    assert customer["tickets"] is None, "the dead source's field is null, not empty"
    timeline = {e["source"] for e in customer["timeline"]["nodes"]}
    assert "sales" in timeline and "support" not in timeline, "the timeline degrades too"
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "SOURCE_UNAVAILABLE", "source": "support"}
    assert error["path"] == ["customer", "tickets"]
    assert "hunter2" not in response.text and "127.0.0.1:1" not in response.text
    assert body["extensions"]["custview"] == {
        "incomplete": True,
        "failedSources": {"support": "SOURCE_UNAVAILABLE"},
    }


async def test_a_dead_rest_source_degrades_the_same_way(
    demo_dir: Path, demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feedback service (REST) refuses connections: its surveys are null, one
    error names it, the SQL sources answer in full."""
    email = _three_system_email(demo_dir)
    monkeypatch.setenv("CUSTVIEW_FEEDBACK_URL", "http://127.0.0.1:1/api")
    query = """query($email: String) { customer(email: $email) {
        id sourceRecords { source } surveys { score } orders { id } tickets { id } } }"""
    async for client in serve_in_process(load_settings(DEMO_CONFIG)):
        response = await client.post(
            "/graphql", json={"query": query, "variables": {"email": email}}
        )
        assert response.status_code == 200
        body = response.json()
        customer = body["data"]["customer"]
        assert {"crm", "support", "sales"} <= {r["source"] for r in customer["sourceRecords"]}
        assert customer["orders"] and customer["tickets"] is not None
        assert customer["surveys"] is None
        assert {e["extensions"]["source"] for e in body["errors"]} == {"feedback"}
        assert {e["extensions"]["code"] for e in body["errors"]} == {"SOURCE_UNAVAILABLE"}
        assert "127.0.0.1:1" not in response.text
        assert body["extensions"]["custview"]["failedSources"] == {"feedback": "SOURCE_UNAVAILABLE"}


def _every_customer_field(schema: object) -> str:
    """A selection of every Customer field (objects by ``__typename``)."""
    from graphql import GraphQLNonNull, get_named_type, is_leaf_type

    customer = schema._schema.type_map["Customer"]  # type: ignore[attr-defined]
    parts = []
    for name, field in customer.fields.items():
        if any(isinstance(a.type, GraphQLNonNull) for a in field.args.values()):
            continue
        parts.append(
            name if is_leaf_type(get_named_type(field.type)) else f"{name} {{ __typename }}"
        )
    return " ".join(parts)


async def test_no_customer_field_lets_a_dead_source_null_the_whole_customer(
    demo_dir: Path, tmp_path: Path, demo_env: None
) -> None:
    """Fields added later must degrade too: nullable, or answering without the source."""
    email = _three_system_email(demo_dir)
    config = tmp_path / "dead.yaml"
    config.write_text(
        DEMO_CONFIG.read_text().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"', f'"{DEAD}"'
        )
    )
    async for client in serve_in_process(load_settings(config)):
        selection = _every_customer_field(client.app.state.schema)  # type: ignore[attr-defined]
        query = f"query($email: String) {{ customer(email: $email) {{ {selection} }} }}"
        body = (
            await client.post("/graphql", json={"query": query, "variables": {"email": email}})
        ).json()
        assert body["data"]["customer"] is not None, body["errors"]
        assert {e["extensions"].get("source") for e in body["errors"]} == {"support"}
