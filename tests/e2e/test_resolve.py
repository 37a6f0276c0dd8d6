"""Stable ids as sources change, and ``custview resolve`` (full and incremental)
over a private copy of the demo sources (the test plays the source systems'
users; custview itself only reads them)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import LoadedSettings
from resolvers.resolve import resolve
from tests.e2e.conftest import gql, serve_in_process
from tests.e2e.test_steward import CUSTOMER, _data, _refs, clusters, steward_config


@pytest.fixture()
def own_demo(demo_dir: Path, tmp_path: Path, demo_env: None) -> Iterator[Path]:
    """A private copy of the demo sources, pointed to by CUSTVIEW_DEMO_DIR."""
    import os

    copy = tmp_path / "sources"
    shutil.copytree(demo_dir, copy, ignore=shutil.ignore_patterns("registry.db"))
    old = os.environ["CUSTVIEW_DEMO_DIR"]
    os.environ["CUSTVIEW_DEMO_DIR"] = str(copy)
    yield copy
    os.environ["CUSTVIEW_DEMO_DIR"] = old


def _insert_contact(demo: Path, email: str, created: str) -> int:
    with sqlite3.connect(demo / "crm.db") as conn:
        (top,) = conn.execute("SELECT max(id) FROM contacts").fetchone()
        conn.execute(
            "INSERT INTO contacts (id, first_name, last_name, email, created_at, updated_at)"
            " VALUES (?, 'New', 'Record', ?, ?, ?)",
            (top + 1, email, created, created),
        )
    return int(top + 1)


def _email(demo: Path, ref: str) -> str:
    source, table, key = ref.split("/")
    with sqlite3.connect(demo / f"{source}.db") as conn:
        (email,) = conn.execute(f"SELECT email FROM {table} WHERE id = ?", (int(key),)).fetchone()
    return str(email)


async def _customer(loaded: LoadedSettings, ref: str) -> dict[str, Any]:
    async for client in serve_in_process(loaded):
        found: dict[str, Any] = _data(await gql(client, CUSTOMER, ref=ref))["customer"]
        return found
    raise AssertionError("unreachable")


async def test_ids_survive_new_records_and_merges(own_demo: Path, tmp_path: Path) -> None:
    loaded = steward_config(tmp_path)
    singles = [
        sorted(g)[0]
        for g in clusters(own_demo)
        if len(g) == 1
        and sorted(g)[0].startswith("sales/customers/")
        and _email(own_demo, sorted(g)[0])
    ][:2]
    first, second = singles
    ids = [(await _customer(loaded, ref))["id"] for ref in singles]
    # a brand-new CRM contact (a lower-ranked table) with the first one's email joins it
    new = _insert_contact(own_demo, _email(own_demo, first), "2030-01-01 00:00:00")
    after = await _customer(loaded, first)
    assert f"crm/contacts/{new}" in _refs(after)
    assert after["id"] == ids[0]
    # a link merges the two: the older id survives, the other still resolves to it
    async for client in serve_in_process(loaded):
        body = await gql(
            client,
            "mutation($a: String!, $b: String!) { linkRecords(a: $a, b: $b) { decision { id } } }",
            a=first,
            b=second,
        )
        _data(body)
        by_old_id = _data(
            await gql(
                client,
                "query($id: ID!) { customer(id: $id) { id sourceRecords { ref } } }",
                id=ids[1],
            )
        )["customer"]
        assert set(singles) <= _refs(by_old_id)
        assert by_old_id["id"] in ids


def _probabilistic(tmp: Path) -> LoadedSettings:
    return steward_config(tmp, probabilistic=True)


async def test_resolve_full_then_incremental(own_demo: Path, tmp_path: Path) -> None:
    loaded = _probabilistic(tmp_path)
    federation = loaded.create_federation()
    await federation.open()
    try:
        report = await resolve(federation)
        assert report.mode == "full" and report.records > 3000
        assert report.links > 50 and report.written == report.links + report.candidates
        # nothing changed: an incremental run scores nothing new and writes nothing
        again = await resolve(federation)
        assert again.mode == "incremental" and again.changed == 0 and again.written == 0
        # a new record: only it is scored
        target = sorted(
            next(g for g in clusters(own_demo) if any(r.startswith("crm/contacts/") for r in g))
        )
        contact = next(r for r in target if r.startswith("crm/contacts/"))
        with sqlite3.connect(own_demo / "crm.db") as conn:
            row = conn.execute(
                "SELECT first_name, last_name, street, city, postcode, country, birth_date"
                " FROM contacts WHERE id = ?",
                (int(contact.rsplit("/", 1)[1]),),
            ).fetchone()
            (top,) = conn.execute("SELECT max(id) FROM contacts").fetchone()
            conn.execute(
                "INSERT INTO contacts (id, first_name, last_name, street, city, postcode,"
                " country, birth_date, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '2031-01-01', '2031-01-01')",
                (top + 1, *row),
            )
        third = await resolve(federation)
        assert third.mode == "incremental" and third.changed == 1 and third.pairs_scored >= 1
        new_ref = f"crm/contacts/{top + 1}"
        assert federation.registry is not None
        partners = federation.registry.machine_edges(new_ref)
        assert contact in partners and partners[contact] >= 0.99
    finally:
        await federation.aclose()
    # lists and lookups now see the batch link: the twin (no shared email or phone)
    # is in the contact's customer, explained as MODEL
    async for client in serve_in_process(_probabilistic(tmp_path)):
        customer = _data(await gql(client, CUSTOMER, ref=new_ref))["customer"]
        assert contact in _refs(customer)
        methods = {m["ref"]: m["method"] for m in customer["matchExplanation"]}
        assert methods[new_ref] == "MODEL"


async def test_a_renamed_account_rescores_its_members_incrementally(
    own_demo: Path, tmp_path: Path
) -> None:
    loaded = _probabilistic(tmp_path)
    federation = loaded.create_federation()
    await federation.open()
    try:
        assert (await resolve(federation)).mode == "full"
        with sqlite3.connect(own_demo / "crm.db") as conn:
            account, members = conn.execute(
                "SELECT account_id, count(*) FROM contacts WHERE account_id IS NOT NULL"
                " GROUP BY account_id HAVING count(*) >= 2 ORDER BY account_id LIMIT 1"
            ).fetchone()
            # the source's users rename the company (its contacts' rows are untouched)
            conn.execute(
                "UPDATE accounts SET name = 'Renamed Holdings GmbH', updated_at = '2031-06-01'"
                " WHERE id = ?",
                (account,),
            )
        renamed = await resolve(federation)
        # exactly that account's contacts are re-scored: nothing else changed
        assert renamed.mode == "incremental" and renamed.changed == members
        assert renamed.pairs_scored >= 1
        # the watermark moved on: the next run finds nothing new
        again = await resolve(federation)
        assert again.mode == "incremental" and again.changed == 0 and again.written == 0
    finally:
        await federation.aclose()


async def test_the_registry_keeps_no_attribute_values(own_demo: Path, tmp_path: Path) -> None:
    loaded = _probabilistic(tmp_path)
    federation = loaded.create_federation()
    await federation.open()
    try:
        await resolve(federation)
    finally:
        await federation.aclose()
    values: set[str] = set()
    for db in ("crm", "sales", "support"):
        with sqlite3.connect(own_demo / f"{db}.db") as conn:
            for table, column in (
                ("contacts", "email"),
                ("customers", "email"),
                ("users", "email"),
                ("contacts", "last_name"),
                ("customers", "last_name"),
                ("users", "name"),
            ):
                try:
                    values |= {
                        str(v).lower()
                        for (v,) in conn.execute(
                            f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
                        )
                    }
                except sqlite3.OperationalError:
                    continue
    registry = sqlite3.connect(tmp_path / "registry.db")
    stored = set()
    for (table,) in registry.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        for row in registry.execute(f"SELECT * FROM {table}"):
            stored |= {str(v).lower() for v in row if isinstance(v, str)}
    assert stored and not (stored & values)


def test_resolve_command_reports_and_refuses_without_a_model(
    own_demo: Path, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from gateway.cli import app

    runner = CliRunner()
    config = str(_probabilistic(tmp_path).path)
    result = runner.invoke(app, ["resolve", "--config", config, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "full" and report["records"] > 3000 and report["links"] > 50
    result = runner.invoke(app, ["resolve", "--config", config, "--json"])
    assert json.loads(result.stdout)["mode"] == "incremental"
    plain = tmp_path / "plain"
    plain.mkdir()
    result = runner.invoke(app, ["resolve", "--config", str(steward_config(plain).path)])
    assert result.exit_code == 2
    assert "model.identity.probabilistic" in result.output


EXPLAIN = """query($ref: String!) { customer(ref: $ref) {
  sourceRecords { ref }
  matchExplanation { ref method matchedRef probability
    contributions } } }"""


def _colleagues(demo: Path, name: tuple[str, str], company: str | None) -> tuple[str, str]:
    """A CRM contact of a new account (on its work email) and a lead (on a personal
    one) sharing only a full name and, when ``company`` is given, the account's
    company typed another way: their refs."""
    with sqlite3.connect(demo / "crm.db") as conn:
        (account,) = conn.execute("SELECT max(id) + 1 FROM accounts").fetchone()
        conn.execute(
            "INSERT INTO accounts (id, name, domain, created_at, updated_at)"
            " VALUES (?, 'Quillfeather Analytics Ltd', 'quillfeather.io', '2031-01-01',"
            " '2031-01-01')",
            (account,),
        )
        (contact,) = conn.execute("SELECT max(id) + 1 FROM contacts").fetchone()
        conn.execute(
            "INSERT INTO contacts (id, account_id, first_name, last_name, email, country,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'GB', '2031-01-01', '2031-01-01')",
            (contact, account, *name, f"{name[0]}.{name[1]}@quillfeather.io".lower()),
        )
        (lead,) = conn.execute("SELECT max(id) + 1 FROM leads").fetchone()
        conn.execute(
            "INSERT INTO leads (id, first_name, last_name, company, email, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, '2031-01-01', '2031-01-01')",
            (lead, *name, company, f"{name[0][0]}{name[1]}@outlook.com".lower()),
        )
    return f"crm/contacts/{contact}", f"crm/leads/{lead}"


async def test_a_shared_company_links_a_shared_name(own_demo: Path, tmp_path: Path) -> None:
    """The contact's company is its account's name, read by ``custview resolve`` and
    at read time alike: with the lead's company (typed another way) it links two
    records sharing nothing else but a rare full name; without it they stay apart."""
    together = _colleagues(own_demo, ("Ottoline", "Brackenridge"), "QUILLFEATHER ANALYTICS, Ltd.")
    apart = _colleagues(own_demo, ("Peregrine", "Fotheringay"), None)
    # read time, before any batch run: the live model links them
    async for client in serve_in_process(_probabilistic(tmp_path)):
        for (contact, lead), linked in ((together, True), (apart, False)):
            customer = _data(await gql(client, EXPLAIN, ref=contact))["customer"]
            assert (lead in _refs(customer)) is linked
            if linked:
                reason = next(m for m in customer["matchExplanation"] if m["ref"] == lead)
                levels = {c["comparison"]: c["level"] for c in reason["contributions"]}
                assert reason["method"] == "MODEL" and levels["business"] == "same company"
    loaded = _probabilistic(tmp_path)
    federation = loaded.create_federation()
    await federation.open()
    try:
        await resolve(federation)
        assert federation.registry is not None
        links = federation.registry.stored_links()
    finally:
        await federation.aclose()
    assert links[min(together), max(together)] >= 0.99
    assert links.get((min(apart), max(apart)), 0.0) < 0.99
    # a list or a lookup now follows the batch link, explained by the same score
    async for client in serve_in_process(_probabilistic(tmp_path)):
        contact, lead = together
        customer = _data(await gql(client, EXPLAIN, ref=lead))["customer"]
        assert contact in _refs(customer)
        reason = next(m for m in customer["matchExplanation"] if m["method"] == "MODEL")
        assert reason["probability"] == links[min(together), max(together)]
        levels = {c["comparison"]: c["level"] for c in reason["contributions"]}
        assert levels["business"] == "same company"


async def test_read_time_asks_a_name_column_for_the_full_name(
    own_demo: Path, tmp_path: Path
) -> None:
    """A help desk keeps one free-text name per user, so no surname probe reaches
    it: read time also asks that column for the customer's full name (as typed,
    either way round), and the user, sharing a mailbox number with the contact,
    joins the contact's customer, while a namesake with another number does not."""
    with sqlite3.connect(own_demo / "crm.db") as conn:
        (contact,) = conn.execute("SELECT max(id) + 1 FROM contacts").fetchone()
        conn.execute(
            "INSERT INTO contacts (id, first_name, last_name, email, country, created_at,"
            " updated_at) VALUES (?, 'Ottoline', 'Brackenridge', 'obrackenridge4471@gmail.com',"
            " 'GB', '2031-01-01', '2031-01-01')",
            (contact,),
        )
    with sqlite3.connect(own_demo / "support.db") as conn:
        (user,) = conn.execute("SELECT max(id) + 1 FROM users").fetchone()
        for offset, name, email in (
            (0, "Brackenridge, Ottoline", "ottoline.b4471@outlook.com"),
            (1, "Ottoline Brackenridge", "ottoline.b9012@outlook.com"),
        ):
            conn.execute(
                "INSERT INTO users (id, name, email, locale, role, created_at, updated_at)"
                " VALUES (?, ?, ?, 'en-GB', 'end-user', '2031-01-01', '2031-01-01')",
                (user + offset, name, email),
            )
    async for client in serve_in_process(_probabilistic(tmp_path)):
        customer = _data(await gql(client, EXPLAIN, ref=f"crm/contacts/{contact}"))["customer"]
        refs = _refs(customer)
        assert f"support/users/{user}" in refs and f"support/users/{user + 1}" not in refs
        reason = next(m for m in customer["matchExplanation"] if m["method"] == "MODEL")
        levels = {c["comparison"]: c["level"] for c in reason["contributions"]}
        assert levels["email"] == "same number in personal local parts"
