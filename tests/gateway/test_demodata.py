"""The demo data generator: deterministic, consistent with its ground truth, and noisy."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import phonenumbers
import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite as sqlite_dialect

from connectors.sql.expressions import transformed
from gateway.demodata.generate import GENERATOR_VERSION, GenerationSummary, generate, upgrade
from gateway.demodata.schema import METADATA, SYSTEMS
from gateway.demodata.writer import IDENTITY_COLUMNS, index_name

MEMBER_TABLES = {
    ("crm", "contacts"): "person",
    ("crm", "leads"): "person",
    ("support", "users"): "person",
    ("sales", "customers"): "person",
    ("feedback", "respondents"): "person",
    ("crm", "accounts"): "business",
    ("support", "organizations"): "business",
}
CORE_SYSTEMS = ("crm", "support", "sales")
"""The three systems of record; feedback respondents come on top of them."""
LOCALE_REGION = {"en-US": "US", "en-GB": "GB", "de-DE": "DE", "fr-FR": "FR", "en-CA": "CA"}
LOCALE_REGION |= {"fr-CA": "CA", "en-AU": "AU"}
PHONE_STYLES = {
    "parenthesised": re.compile(r"^\(\d+\) [\d -]+$"),
    "international": re.compile(r"^\+\d+ [\d -]+$"),
    "e164": re.compile(r"^\+\d+$"),
    "idd00": re.compile(r"^00\d+ [\d ]+$"),
    "dotted": re.compile(r"^\d+(\.\d+)+$"),
    "digits": re.compile(r"^\d+$"),
    "spaced national": re.compile(r"^0[\d ]+$"),
    "dashed": re.compile(r"^\d{3}-\d{3}-\d{4}$"),
}

Record = tuple[str, str, str]
"""``(source, table, record_id)``."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    out = tmp_path_factory.mktemp("demo") / "data"
    calls: list[tuple[int, int]] = []
    summary = generate(out, customers=5000, seed=42, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (5000, 5000)
    return out, summary


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def truth(out: Path) -> dict[Record, tuple[str, str]]:
    with (out / "ground_truth.csv").open(newline="", encoding="utf-8") as handle:
        return {
            (row["source"], row["table"], row["record_id"]): (row["entity_id"], row["kind"])
            for row in csv.DictReader(handle)
        }


def dump_hash(out: Path) -> str:
    digest = hashlib.sha256()
    for system in SYSTEMS:
        for table in METADATA[system].sorted_tables:
            rows = query(out / f"{system}.db", f"SELECT * FROM {table.name} ORDER BY id")
            digest.update(repr((system, table.name, rows)).encode())
    digest.update((out / "ground_truth.csv").read_bytes())
    digest.update((out / "manifest.json").read_bytes())
    return digest.hexdigest()


def identity_rows(out: Path) -> Iterator[tuple[Record, str | None, list[str | None]]]:
    """Every person record with its email and its phones parsed to E.164 (None if unusable)."""
    contacts = "SELECT id, email, phone, mobile, country FROM contacts"
    for id_, email, phone, mobile, country in query(out / "crm.db", contacts):
        yield ("crm", "contacts", str(id_)), email, [e164(phone, country), e164(mobile, country)]
    for id_, email, phone in query(out / "crm.db", "SELECT id, email, phone FROM leads"):
        yield ("crm", "leads", str(id_)), email, [e164(phone, None)]
    users = "SELECT id, email, phone, locale FROM users"
    for id_, email, phone, locale in query(out / "support.db", users):
        region = LOCALE_REGION.get(str(locale), "US")
        yield ("support", "users", str(id_)), email, [e164(phone, region)]
    customers = "SELECT id, email, phone, country FROM customers"
    spoiled = planted(out)
    for id_, email, phone, country in query(out / "sales.db", customers):
        record = ("sales", "customers", str(id_))
        yield record, email, [None if (*record, "phone") in spoiled else e164(phone, country)]


def planted(out: Path) -> set[tuple[str, str, str, str]]:
    """(source, table, id, column) of the values planted to fail quality checks."""
    with (out / "quality_truth.csv").open(newline="", encoding="utf-8") as handle:
        return {
            (row["source"], row["table"], row["record_id"], row["column"])
            for row in csv.DictReader(handle)
        }


def e164(raw: object, region: object) -> str | None:
    if raw is None:
        return None
    number = phonenumbers.parse(str(raw), str(region) if region else "US")
    assert phonenumbers.is_valid_number(number), raw
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def deterministic_components(out: Path) -> tuple[dict[Record, int], dict[Record, str]]:
    """Records stitched by trimmed lower-case email and E.164 phone, transitively."""
    records = list(identity_rows(out))
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, (_, email, phones) in enumerate(records):
        keys = [f"p:{p}" for p in phones if p]
        if email and email.strip():
            keys.append(f"e:{email.strip().lower()}")
        for key in keys:
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    components = {record: find(i) for i, (record, _, _) in enumerate(records)}
    emails = {record: email for record, email, _ in records if email}
    return components, emails


def test_same_seed_gives_identical_data_and_other_seed_differs(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", customers=1200, seed=7)
    second = generate(tmp_path / "b", customers=1200, seed=7)
    other = generate(tmp_path / "c", customers=1200, seed=8)
    assert first.counts == second.counts
    assert dump_hash(tmp_path / "a") == dump_hash(tmp_path / "b")
    assert dump_hash(tmp_path / "a") != dump_hash(tmp_path / "c")
    assert other.seed == 8


def test_row_counts_scale_with_customers(tmp_path: Path, demo: tuple[Path, object]) -> None:
    small = generate(tmp_path / "small", customers=1000, seed=42)
    _, summary = demo
    assert isinstance(summary, GenerationSummary)
    for table in ("crm.contacts", "support.users", "sales.customers", "sales.orders"):
        ratio = summary.counts[table] / small.counts[table]
        assert 3.5 < ratio < 6.5, (table, ratio)


def test_summary_and_manifest_match_the_files(demo: tuple[Path, GenerationSummary]) -> None:
    out, summary = demo
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["customers"] == 5000
    assert manifest["as_of"] == "2026-11-01"
    assert manifest["counts"] == summary.counts
    for key, expected in summary.counts.items():
        system, table = key.split(".")
        assert query(out / f"{system}.db", f"SELECT count(*) FROM {table}") == [(expected,)]
    assert summary.out_dir == out and summary.seconds > 0


def test_ground_truth_and_member_tables_agree(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    known = truth(out)
    in_tables = {
        (system, table, str(id_))
        for (system, table) in MEMBER_TABLES
        for (id_,) in query(out / f"{system}.db", f"SELECT id FROM {table}")
    }
    assert in_tables == set(known)
    for (system, table, _), (entity, kind) in known.items():
        expected = MEMBER_TABLES[system, table]
        if table == "users" and kind == "agent":
            assert entity.startswith("A")
        else:
            assert kind == expected
            assert entity.startswith("P" if kind == "person" else "B")


def test_people_appear_in_one_two_and_three_systems(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    systems: defaultdict[str, set[str]] = defaultdict(set)
    for (source, _, _), (entity, kind) in truth(out).items():
        if kind == "person" and source in CORE_SYSTEMS:
            systems[entity].add(source)
    spread = Counter(len(s) for s in systems.values())
    assert set(spread) == {1, 2, 3}
    assert 0.10 < spread[1] / len(systems) < 0.20
    for system in CORE_SYSTEMS:
        share = sum(system in s for s in systems.values()) / len(systems)
        assert 0.5 < share < 0.8, (system, share)


def test_noise_is_present(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    _, emails = deterministic_components(out)
    values = list(emails.values())
    assert sum(e != e.lower() for e in values) > 0.05 * len(values)
    assert sum(e != e.strip() for e in values) > 0.02 * len(values)
    sales = [e for (s, _, _), e in emails.items() if s == "sales" and "@gmail.com" in e.lower()]
    assert sum("+" in e for e in sales) > 0.05 * len(sales)
    assert query(out / "support.db", "SELECT count(*) FROM users WHERE email IS NULL")[0][0] > 50
    names = query(out / "crm.db", "SELECT first_name FROM contacts")
    assert {"Bob", "Bill", "Liz", "Kate", "Mike", "Jim"} & {n for (n,) in names}
    support_names = [n for (n,) in query(out / "support.db", "SELECT name FROM users")]
    assert sum(", " in n for n in support_names) > 100


def test_phones_come_in_many_styles(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    phones = [p for (p,) in query(out / "crm.db", "SELECT mobile FROM contacts") if p]
    phones += [p for (p,) in query(out / "sales.db", "SELECT phone FROM customers") if p]
    styles = Counter(
        next((name for name, pattern in PHONE_STYLES.items() if pattern.match(str(p))), "other")
        for p in phones
    )
    assert len([s for s, n in styles.items() if n > 20 and s != "other"]) >= 5, styles


def test_in_system_duplicates_exist(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    records: defaultdict[tuple[str, str, str], list[str]] = defaultdict(list)
    for (system, table, record_id), (entity, _) in truth(out).items():
        records[system, table, entity].append(record_id)
    duplicated = Counter((s, t) for (s, t, _), ids in records.items() if len(ids) > 1)
    assert duplicated["sales", "customers"] > 50
    assert duplicated["support", "users"] > 50
    assert duplicated["crm", "contacts"] > 20
    same_email_other_case = 0
    sales = dict(query(out / "sales.db", "SELECT id, email FROM customers"))
    for (system, _, _), ids in records.items():
        if system == "sales" and len(ids) > 1:
            emails = [str(sales[int(i)]) for i in ids]
            folded = {e.strip().lower() for e in emails}
            same_email_other_case += len(folded) == 1 and len(set(emails)) > 1
    assert same_email_other_case > 50


def test_businesses_have_several_contacts(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    sql = "SELECT account_id, count(*) FROM contacts WHERE account_id IS NOT NULL GROUP BY 1"
    sizes = [n for _, n in query(out / "crm.db", sql)]
    assert sum(n >= 2 for n in sizes) > 100
    main_lines = [p for (p,) in query(out / "crm.db", "SELECT phone FROM accounts") if p]
    assert len(main_lines) > 300


def test_deterministic_keys_never_merge_different_people(
    demo: tuple[Path, GenerationSummary],
) -> None:
    out, _ = demo
    known = truth(out)
    components, _ = deterministic_components(out)
    entities: defaultdict[int, set[str]] = defaultdict(set)
    for record, component in components.items():
        entities[component].add(known[record][0])
    assert all(len(e) == 1 for e in entities.values())


def test_phones_of_different_entities_are_distinct(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    known = truth(out)
    owners: defaultdict[str, set[str]] = defaultdict(set)
    for record, _, phones in identity_rows(out):
        for phone in phones:
            if phone:
                owners[phone].add(known[record][0])
    accounts = "SELECT id, phone, billing_country FROM accounts WHERE phone IS NOT NULL"
    for id_, phone, country in query(out / "crm.db", accounts):
        owners[str(e164(phone, country))].add(known["crm", "accounts", str(id_)][0])
    assert len(owners) > 5000
    assert all(len(entities) == 1 for entities in owners.values())


def test_most_cross_system_appearances_link_deterministically(
    demo: tuple[Path, GenerationSummary],
) -> None:
    out, _ = demo
    known = truth(out)
    components, _ = deterministic_components(out)
    by_person: defaultdict[str, list[tuple[str, int]]] = defaultdict(list)
    for record, component in components.items():
        entity, kind = known[record]
        if kind == "person":
            by_person[entity].append((record[0], component))
    linked = total = 0
    for appearances in by_person.values():
        if len({system for system, _ in appearances}) < 2:
            continue
        for system, component in appearances:
            total += 1
            linked += any(s != system and c == component for s, c in appearances)
    assert 0.72 < linked / total < 0.92, linked / total


def test_expression_indexes_serve_identity_lookups(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    for system, tables in IDENTITY_COLUMNS.items():
        names = {n for (n,) in query(out / f"{system}.db", "SELECT name FROM sqlite_master")}
        for table, columns in tables.items():
            assert {index_name(table, c) for c in columns} <= names
    assert query(out / "crm.db", "SELECT count(*) FROM sqlite_stat1")[0][0] > 0
    contacts = METADATA["crm"].tables["contacts"]
    users = METADATA["support"].tables["users"]
    cases = [
        (
            "crm",
            select(contacts.c.id).where(
                transformed(contacts.c.email, "casefold").in_(["a@example.com", "b@example.com"])
            ),
            "ix_contacts_email_cf",
        ),
        (
            "support",
            select(users.c.id).where(
                transformed(users.c.phone, "digits").in_(["14155550123", "442079460958"])
            ),
            "ix_users_phone_digits",
        ),
    ]
    for system, statement, index in cases:
        sql = statement.compile(
            dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True}
        )
        plan = query(out / f"{system}.db", f"EXPLAIN QUERY PLAN {sql}")
        assert any(index in str(row[-1]) for row in plan), plan


DATED = {
    "support": ("tickets", "ix_tickets_created_at"),
    "sales": ("orders", "ix_orders_created_at"),
    "crm": ("opportunities", "ix_opportunities_close_date"),
    "feedback": ("responses", "ix_responses_created_at"),
}


def test_dated_relations_are_indexed_by_date(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    for system, (_, index) in DATED.items():
        names = {n for (n,) in query(out / f"{system}.db", "SELECT name FROM sqlite_master")}
        assert index in names
    # a date window is read through its index; a customer's tickets through the parent's
    window = (
        "SELECT requester_id FROM tickets WHERE priority = 'urgent' "
        "AND status = 'open' AND created_at >= '2026-10-25 00:00:00'"
    )
    children = (
        "SELECT id FROM tickets WHERE requester_id IN (1, 2, 3) "
        "ORDER BY created_at DESC, id DESC LIMIT 21"
    )
    for sql, index in ((window, "ix_tickets_created_at"), (children, "ix_tickets_requester_id")):
        plan = query(out / "support.db", f"EXPLAIN QUERY PLAN {sql}")
        assert any(index in str(row[-1]) for row in plan), plan


def test_an_earlier_set_gains_the_indexes_and_keeps_its_rows(tmp_path: Path) -> None:
    out = tmp_path / "data"
    generate(out, customers=300, seed=3)
    for system, (_, index) in DATED.items():
        if system != "feedback":  # version 2 had this one
            connection = sqlite3.connect(out / f"{system}.db")
            connection.execute(f"DROP INDEX {index}")
            connection.close()
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(manifest | {"generator_version": "2"}))
    rows = dump_hash(out)

    assert sorted(upgrade(out)) == [
        "crm.ix_opportunities_close_date",
        "sales.ix_orders_created_at",
        "support.ix_tickets_created_at",
    ]
    assert json.loads((out / "manifest.json").read_text())["generator_version"] == (
        GENERATOR_VERSION
    )
    assert upgrade(out) == []
    (out / "manifest.json").write_text(json.dumps(manifest | {"generator_version": "2"}))
    assert dump_hash(out) == rows
    stats = query(out / "support.db", "SELECT idx FROM sqlite_stat1")
    assert ("ix_tickets_created_at",) in stats


def test_an_interrupted_run_leaves_no_partial_set(tmp_path: Path) -> None:
    target = tmp_path / "data"

    def fail(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(target, customers=200, seed=1, progress=fail)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_set_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "data"
    generate(target, customers=300, seed=1)
    (target / "stale.txt").write_text("old")
    summary = generate(target, customers=400, seed=2)
    assert not (target / "stale.txt").exists()
    assert json.loads((target / "manifest.json").read_text())["customers"] == 400
    assert summary.customers == 400
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_rows_are_internally_consistent(demo: tuple[Path, GenerationSummary]) -> None:
    out, _ = demo
    sales, support = out / "sales.db", out / "support.db"
    mismatched_totals = """
        SELECT count(*) FROM orders o
        WHERE abs(o.total - (SELECT sum(quantity * unit_price) FROM order_lines l
                             WHERE l.order_id = o.id)) > 0.005"""
    assert query(sales, mismatched_totals) == [(0,)]
    assert query(sales, "SELECT count(*) FROM orders WHERE order_number NOT LIKE '#1%'") == [(0,)]
    solved = """SELECT count(*) FROM tickets
        WHERE (solved_at IS NOT NULL) != (status IN ('solved', 'closed'))"""
    assert query(support, solved) == [(0,)]
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
    times = query(out / "crm.db", "SELECT created_at, updated_at FROM contacts")
    times += query(support, "SELECT created_at, updated_at FROM tickets")
    for created, updated in times:
        assert stamp.match(str(created)) and stamp.match(str(updated))
        assert str(created) <= str(updated) < "2026-11-01"
    per_customer = query(sales, "SELECT count(*) FROM orders GROUP BY customer_id")
    assert max(n for (n,) in per_customer) >= 10


def test_feedback_respondents_are_customers_of_the_shop_or_the_desk(
    demo: tuple[Path, GenerationSummary],
) -> None:
    out, _ = demo
    known = truth(out)
    entities: defaultdict[str, set[str]] = defaultdict(set)
    for (source, _, _), (entity, _) in known.items():
        entities[entity].add(source)
    respondents = query(out / "feedback.db", "SELECT id, email FROM respondents")
    assert len(respondents) > 0.2 * out_customers(out)
    for id_, email in respondents:
        assert email == email.strip().lower()
        sources = entities[known["feedback", "respondents", str(id_)][0]]
        assert sources & {"sales", "support"}
    scores = query(
        out / "feedback.db", "SELECT survey, min(score), max(score) FROM responses GROUP BY survey"
    )
    assert dict((s, (lo, hi)) for s, lo, hi in scores) == {"nps": (0, 10), "csat": (1, 5)}


def out_customers(out: Path) -> int:
    return int(json.loads((out / "manifest.json").read_text())["customers"])


def test_quality_flaws_are_planted_and_listed(demo: tuple[Path, GenerationSummary]) -> None:
    from resolvers.quality import email_problem, phone_problem, postcode_problem

    out, _ = demo
    with (out / "quality_truth.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_column = Counter((r["source"], r["table"], r["column"]) for r in rows)
    assert set(by_column) == {
        ("crm", "leads", "email"),
        ("sales", "customers", "phone"),
        ("sales", "customers", "postcode"),
    }
    for row in rows:
        table = row["table"]
        (stored,) = query(
            out / f"{row['source']}.db",
            f'SELECT "{row["column"]}" FROM "{table}" WHERE id = {int(row["record_id"])}',
        )
        assert stored == (row["value"],), "the list says what the database holds"
        problem = {
            "email": lambda v: email_problem(v),
            "phone": lambda v: phone_problem(v, "US"),
            "postcode": lambda v: postcode_problem(v, "US"),
        }[row["check"]](row["value"])
        assert problem, row


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("homes") / "data"
    generate(out, customers=1200, seed=7)  # households are the default
    return out


def test_households_add_records_and_change_none(homes: Path, tmp_path: Path) -> None:
    generate(tmp_path / "plain", customers=1200, seed=7, households=False)
    for system in SYSTEMS:
        for table in METADATA[system].sorted_tables:
            sql = f"SELECT * FROM {table.name} ORDER BY id"
            plain = query(tmp_path / "plain" / f"{system}.db", sql)
            assert query(homes / f"{system}.db", sql)[: len(plain)] == plain, table.name
    plain_truth = (tmp_path / "plain" / "ground_truth.csv").read_text()
    assert (homes / "ground_truth.csv").read_text().startswith(plain_truth)
    assert json.loads((tmp_path / "plain" / "manifest.json").read_text())["households"] == 0


def test_groups_name_businesses_and_households(homes: Path) -> None:
    out = homes
    manifest = json.loads((out / "manifest.json").read_text())
    with (out / "groups.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    kinds = Counter(row["kind"] for row in rows)
    assert set(kinds) == {"business", "household"}
    households: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        assert row["entity_id"].startswith("P")
        assert row["group_id"].startswith("B" if row["kind"] == "business" else "H")
        if row["kind"] == "household":
            households[row["group_id"]].append(row["entity_id"])
    assert len(households) == manifest["households"] > 30
    assert all(2 <= len(people) <= 3 for people in households.values())
    assert kinds["household"] == manifest["households"] + manifest["household_partners"]

    # the shop stores addresses as given: everyone of a household there lives at one address
    known = truth(out)
    homes: dict[str, set[tuple[object, ...]]] = defaultdict(set)
    person_home = {p: h for h, people in households.items() for p in people}
    for id_, street, postcode in query(
        out / "sales.db", "SELECT id, street, postcode FROM customers"
    ):
        entity = known["sales", "customers", str(id_)][0]
        if entity in person_home:
            homes[person_home[entity]].add((street, postcode))
    # apart from a move or a planted postcode flaw, a household has one address
    assert sum(len(h) == 1 for h in homes.values()) / len(homes) > 0.9


def test_household_partners_come_after_every_other_record(homes: Path) -> None:
    out = homes
    first_partner = f"P{out_customers(out) + 1:07d}"
    by_table: dict[tuple[str, str], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for (source, table, record_id), (entity, kind) in truth(out).items():
        if kind == "person":
            partner = entity >= first_partner
            by_table[source, table][partner].append(int(record_id))
    for (source, table), (others, partners) in by_table.items():
        assert partners, (source, table)
        assert min(partners) > max(others), (source, table)
