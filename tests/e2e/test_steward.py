"""Steward decisions through GraphQL: they change answers at once, are logged,
can be undone, survive a restart, and never touch a source."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.settings import DEMO_CONFIG, LoadedSettings, load_settings
from tests.e2e import oracle
from tests.e2e.conftest import gql, serve_in_process

DEMO_URL = '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/registry.db"'
PROBABILISTIC = """    probabilistic:
      model: config/demo-model.json
      link: 0.99
      candidate: 0.5
"""

CUSTOMER = """query($ref: String!) { customer(ref: $ref) {
  id sourceRecords { ref } matchExplanation { ref method }
  possibleDuplicates { ref customerId probability }
  identityDecisions { id action refs undone }
} }"""

LINK = """mutation($a: String!, $b: String!) { linkRecords(a: $a, b: $b) {
  decision { id action actor refs } customers { id sourceRecords { ref } } } }"""
UNLINK = """mutation($ref: String!) { unlinkRecord(ref: $ref) {
  decision { id action } customers { id sourceRecords { ref } } } }"""
APART = """mutation($a: String!, $b: String!) { markNotDuplicates(a: $a, b: $b) {
  decision { id action refs } customers { id } } }"""
UNDO = """mutation($id: Int!) { undoDecision(id: $id) {
  decision { id action undoes } customers { id sourceRecords { ref } } } }"""


def steward_config(tmp: Path, probabilistic: bool = False) -> LoadedSettings:
    """The demo config with its own registry in ``tmp`` (decisions stay in this test)."""
    text = DEMO_CONFIG.read_text()
    assert DEMO_URL in text
    text = text.replace(DEMO_URL, f'"sqlite+aiosqlite:///{tmp / "registry.db"}"')
    if probabilistic:
        anchor = "      phone: {normalize: phone, default_region: US}\n"
        text = text.replace(anchor, anchor + PROBABILISTIC, 1)
    path = tmp / "steward.yaml"
    path.write_text(text)
    return load_settings(path)


@pytest.fixture()
async def steward(demo_env: None, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve_in_process(steward_config(tmp_path)):
        yield c


def clusters(demo_dir: Path) -> list[frozenset[str]]:
    """The demo's customers by deterministic keys (the oracle), in a stable order."""
    model = load_settings(DEMO_CONFIG).settings.model
    return sorted(set(oracle.clusters(model, demo_dir).values()), key=lambda g: sorted(g))


def _data(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    data: dict[str, Any] = body["data"]
    return data


async def _customer(client: httpx.AsyncClient, ref: str) -> dict[str, Any]:
    customer: dict[str, Any] = _data(await gql(client, CUSTOMER, ref=ref))["customer"]
    return customer


def _refs(customer: dict[str, Any]) -> set[str]:
    return {r["ref"] for r in customer["sourceRecords"]}


def _digests(demo_dir: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(demo_dir.glob("*.db"))
        if p.name != "registry.db"
    }


async def test_link_then_undo(steward: httpx.AsyncClient, demo_dir: Path) -> None:
    groups = [sorted(g) for g in clusters(demo_dir) if len(g) == 1][:2]
    (a,), (b,) = groups
    before = _digests(demo_dir)
    linked = _data(await gql(steward, LINK, a=a, b=b))["linkRecords"]
    assert linked["decision"]["action"] == "LINK"
    assert linked["decision"]["refs"] == [a, b]
    assert linked["decision"]["actor"] == "api_key:demo"
    (merged,) = linked["customers"]
    assert _refs(merged) == {a, b}
    again = await _customer(steward, b)
    assert again["id"] == merged["id"] and _refs(again) == {a, b}
    assert {m["method"] for m in again["matchExplanation"]} == {"MANUAL"}
    assert again["identityDecisions"][0]["id"] == linked["decision"]["id"]

    undone = _data(await gql(steward, UNDO, id=linked["decision"]["id"]))["undoDecision"]
    assert undone["decision"]["undoes"] == linked["decision"]["id"]
    assert sorted(len(c["sourceRecords"]) for c in undone["customers"]) == [1, 1]
    assert _refs(await _customer(steward, a)) == {a}
    log = (await _customer(steward, a))["identityDecisions"]
    assert [d["action"] for d in log] == ["UNDO", "LINK"] and log[1]["undone"] is True
    assert _digests(demo_dir) == before  # the sources were never written


async def test_unlink_takes_a_record_out_and_undo_puts_it_back(
    steward: httpx.AsyncClient, demo_dir: Path
) -> None:
    group = sorted(next(g for g in clusters(demo_dir) if len(g) >= 3))
    whole = await _customer(steward, group[0])
    assert _refs(whole) == set(group)
    out = group[-1]
    result = _data(await gql(steward, UNLINK, ref=out))["unlinkRecord"]
    shapes = {frozenset(_refs(c)) for c in result["customers"]}
    assert shapes == {frozenset({out}), frozenset(set(group) - {out})}
    assert _refs(await _customer(steward, out)) == {out}
    # the record's keys still point at the others, but it follows none of them
    assert _refs(await _customer(steward, group[0])) == set(group) - {out}
    _data(await gql(steward, UNDO, id=result["decision"]["id"]))
    assert _refs(await _customer(steward, out)) == set(group)


async def test_a_key_held_only_by_an_unlinked_record_still_finds_it(
    steward: httpx.AsyncClient, demo_dir: Path
) -> None:
    """An unlinked record follows no key, yet a lookup by its own email answers it."""
    con = sqlite3.connect(demo_dir / "crm.db")
    taken = {g for g in clusters(demo_dir) if len(g) == 1}
    ref, email = next(
        (f"crm/contacts/{key}", email)
        for key, email in con.execute("SELECT id, email FROM contacts WHERE email IS NOT NULL")
        if frozenset({f"crm/contacts/{key}"}) in taken
    )
    con.close()
    by_email = """query($e: String!) { customer(email: $e) { id sourceRecords { ref } } }"""
    before = _data(await gql(steward, by_email, e=email))["customer"]
    assert _refs(before) == {ref}
    _data(await gql(steward, UNLINK, ref=ref))
    after = _data(await gql(steward, by_email, e=email))["customer"]
    assert after is not None and _refs(after) == {ref}


async def test_decisions_survive_a_restart_and_ids_stay(demo_env: None, tmp_path: Path) -> None:
    loaded = steward_config(tmp_path)
    singles = [sorted(g)[0] for g in clusters(tmp_path_demo(loaded)) if len(g) == 1][:2]
    async for client in serve_in_process(loaded):
        linked = _data(await gql(client, LINK, a=singles[0], b=singles[1]))["linkRecords"]
        merged_id = linked["customers"][0]["id"]
    async for client in serve_in_process(steward_config(tmp_path)):
        after = await _customer(client, singles[1])
        assert after["id"] == merged_id and _refs(after) == set(singles)


def tmp_path_demo(loaded: LoadedSettings) -> Path:
    url = str(loaded.settings.sources["crm"].options["url"])
    return Path(url.split("///", 1)[1]).parent


async def test_not_duplicates_suppresses_model_links(
    demo_env: None, tmp_path: Path, demo_dir: Path
) -> None:
    async for client in serve_in_process(steward_config(tmp_path, probabilistic=True)):
        found = None
        for group in clusters(demo_dir):
            seed = sorted(group)[0]
            customer = await _customer(client, seed)
            model = [m["ref"] for m in customer["matchExplanation"] if m["method"] == "MODEL"]
            if model:
                found = (seed, model[0])
                break
        assert found is not None, "the demo has records only the model links"
        seed, linked = found
        apart = _data(await gql(client, APART, a=seed, b=linked))["markNotDuplicates"]
        assert apart["decision"]["action"] == "NOT_DUPLICATE"
        assert apart["decision"]["refs"] == [seed, linked]
        after = await _customer(client, seed)
        assert linked not in _refs(after)
        assert all(d["ref"] != linked for d in after["possibleDuplicates"])
        _data(await gql(client, UNDO, id=apart["decision"]["id"]))
        assert linked in _refs(await _customer(client, seed))


async def test_bad_decisions_are_refused_with_a_reason(steward: httpx.AsyncClient) -> None:
    body = await gql(steward, LINK, a="crm/contacts/999999999", b="sales/customers/1")
    assert "crm/contacts/999999999' does not exist" in body["errors"][0]["message"]  # type: ignore[index]
    body = await gql(steward, LINK, a="nowhere/x/1", b="sales/customers/1")
    assert "does not name a customer table" in body["errors"][0]["message"]  # type: ignore[index]
    body = await gql(steward, UNDO, id=424242)
    assert "no identity decision 424242" in body["errors"][0]["message"]  # type: ignore[index]


async def test_deciding_needs_the_steward_or_admin_role(steward: httpx.AsyncClient) -> None:
    response = await steward.post(
        "/graphql",
        json={"query": LINK, "variables": {"a": "crm/contacts/1", "b": "sales/customers/1"}},
        headers={"X-API-Key": "support-key"},
    )
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    assert "'steward' or 'admin' role" in body["errors"][0]["message"]
    log = _data(await gql(steward, "{ identityDecisions { id } }"))["identityDecisions"]
    assert log == []  # nothing was recorded
