"""Survivorship: every rule, fallbacks, and the provenance each golden value carries."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from resolvers.golden import Survivorship
from resolvers.model import UnifiedModel
from resolvers.records import Record

MEMBERS = [("crm", "contacts"), ("sales", "customers"), ("support", "users")]


def model(rules: dict[str, Any], default: list[str] | None = None) -> UnifiedModel:
    fields = {
        "name": {},
        "street": {},
        "email": {"normalize": "email"},
        "orders": {"type": "int"},
        "score": {"type": "float"},
        "total": {"type": "decimal"},
    }
    return UnifiedModel.model_validate(
        {
            "customer": {
                "fields": fields,
                "members": [
                    {
                        "source": source,
                        "table": table,
                        "updated_at": "updated_at",
                        "fields": {f: f for f in fields},
                    }
                    for source, table in MEMBERS
                ],
            },
            "identity": {"keys": {"email": {"normalize": "email"}}},
            "survivorship": {"default": default or ["crm", "sales", "support"], "fields": rules},
        }
    )


def record(m: UnifiedModel, source: str, key: int, updated: str, **values: Any) -> Record:
    rank = next(i for i, (s, _) in enumerate(MEMBERS) if s == source)
    member = m.customer.members[rank]
    return Record(member, rank, {"id": key, "updated_at": updated, **values})


def pick(rules: dict[str, Any], records: list[dict[str, Any]], field: str) -> Any:
    m = model(rules)
    built = [
        record(m, r.pop("source"), r.pop("id"), r.pop("updated", "2026-01-01T00:00:00"), **r)
        for r in records
    ]
    golden = Survivorship(m).build(built)
    return golden.values[field], golden.provenance[field]


def test_source_priority_decides_and_keeps_the_conflicts_visible() -> None:
    value, prov = pick(
        {"name": {"sources": ["sales", "crm"]}},
        [
            {"source": "crm", "id": 1, "name": "Bob Smith"},
            {"source": "sales", "id": 2, "name": "Robert Smith"},
        ],
        "name",
    )
    assert value == "Robert Smith"
    assert (str(prov.ref), prov.rule) == ("sales/customers/2", "source_priority")
    assert prov.reason == "source priority sales > crm"
    assert [(v, str(ref)) for v, ref in prov.alternatives] == [("Bob Smith", "crm/contacts/1")]


def test_most_recent_takes_the_latest_update() -> None:
    value, prov = pick(
        {"street": {"rule": "most_recent"}},
        [
            {"source": "crm", "id": 1, "street": "1 Old Road", "updated": "2025-01-01T00:00:00"},
            {"source": "sales", "id": 2, "street": "9 New Lane", "updated": "2026-03-01T10:00:00"},
        ],
        "street",
    )
    assert (value, str(prov.ref), prov.rule) == ("9 New Lane", "sales/customers/2", "most_recent")
    assert "2026-03-01T10:00:00" in prov.reason


def test_most_complete_prefers_the_full_address() -> None:
    value, prov = pick(
        {"street": {"rule": "most_complete"}},
        [
            {"source": "crm", "id": 1, "street": "12 Main St"},
            {"source": "sales", "id": 2, "street": "12 Main Street, Apt 4"},
            {"source": "support", "id": 3, "street": "Main"},
        ],
        "street",
    )
    assert (value, prov.rule) == ("12 Main Street, Apt 4", "most_complete")
    assert prov.reason == "most complete value (5 words, 16 characters)"
    assert {v for v, _ in prov.alternatives} == {"12 Main St", "Main"}


def test_most_frequent_counts_values_after_normalisation() -> None:
    value, prov = pick(
        {"name": {"rule": "most_frequent"}},
        [
            {"source": "crm", "id": 1, "name": "Zoë O'Brien"},
            {"source": "sales", "id": 2, "name": "ZOE OBRIEN"},
            {"source": "support", "id": 3, "name": "Zoey Brien"},
        ],
        "name",
    )
    # crm wins the tie between the two spellings that agree (source priority)
    assert (value, str(prov.ref), prov.rule) == ("Zoë O'Brien", "crm/contacts/1", "most_frequent")
    assert prov.reason == "2 of 3 records agree"
    assert [v for v, _ in prov.alternatives] == ["ZOE OBRIEN", "Zoey Brien"]  # all but case


def test_most_frequent_uses_the_field_normaliser() -> None:
    value, prov = pick(
        {"email": {"rule": "most_frequent", "sources": ["support"]}},
        [
            {"source": "crm", "id": 1, "email": "a@x.example"},
            {"source": "sales", "id": 2, "email": " B@X.example"},
            {"source": "support", "id": 3, "email": "b@x.example "},
        ],
        "email",
    )
    assert (value, str(prov.ref), prov.rule) == ("b@x.example", "support/users/3", "most_frequent")


def test_fallbacks_are_tried_in_order_until_one_decides() -> None:
    rules = {"name": {"rule": "most_frequent", "fallbacks": ["most_recent", "source_priority"]}}
    # one record each: no majority, so the newest record decides
    value, prov = pick(
        rules,
        [
            {"source": "crm", "id": 1, "name": "Ann Lee", "updated": "2025-01-01T00:00:00"},
            {"source": "sales", "id": 2, "name": "Anne Lee", "updated": "2026-01-01T00:00:00"},
        ],
        "name",
    )
    assert (value, prov.rule) == ("Anne Lee", "most_recent")
    # a tie in recency too: source priority decides among the newest
    value, prov = pick(
        rules,
        [
            {"source": "support", "id": 3, "name": "A. Lee", "updated": "2026-01-01T00:00:00"},
            {"source": "sales", "id": 2, "name": "Anne Lee", "updated": "2026-01-01T00:00:00"},
            {"source": "crm", "id": 1, "name": "Ann Lee", "updated": "2025-01-01T00:00:00"},
        ],
        "name",
    )
    assert (value, str(prov.ref), prov.rule) == ("Anne Lee", "sales/customers/2", "source_priority")
    # and a majority wins before any fallback is asked
    value, prov = pick(
        rules,
        [
            {"source": "crm", "id": 1, "name": "Ann Lee", "updated": "2025-01-01T00:00:00"},
            {"source": "support", "id": 3, "name": "ann lee", "updated": "2025-02-01T00:00:00"},
            {"source": "sales", "id": 2, "name": "Anne Lee", "updated": "2026-01-01T00:00:00"},
        ],
        "name",
    )
    assert (value, prov.rule) == ("Ann Lee", "most_frequent")


def test_undecided_chain_ends_in_a_tie_break_by_priority_then_recency() -> None:
    value, prov = pick(
        {"name": {"rule": "most_frequent"}},
        [
            {"source": "sales", "id": 2, "name": "Anne Lee"},
            {"source": "crm", "id": 1, "name": "Ann Lee"},
        ],
        "name",
    )
    assert (value, prov.rule) == ("Ann Lee", "tie_break")
    assert prov.reason.startswith("no rule decided")


def test_min_and_max_decide_on_values() -> None:
    records = [
        {"source": "crm", "id": 1, "orders": 3},
        {"source": "sales", "id": 2, "orders": 7},
    ]
    assert pick({"orders": {"rule": "max"}}, [dict(r) for r in records], "orders")[0] == 7
    value, prov = pick({"orders": {"rule": "min"}}, [dict(r) for r in records], "orders")
    assert (value, prov.rule, prov.reason) == (3, "min", "minimum value across sources")


@pytest.mark.parametrize("rule", ["min", "max"])
@pytest.mark.parametrize(("field", "values"), [("score", ["nan", "2.5"]), ("total", ["NaN", "3"])])
def test_min_and_max_over_a_nan_keep_a_value(rule: str, field: str, values: list[str]) -> None:
    # a float NaN equals nothing, itself included; a decimal NaN cannot be ordered
    records = [
        {"source": "crm", "id": 1, field: values[0]},
        {"source": "sales", "id": 2, field: values[1]},
    ]
    for chosen in (records[:1], records):
        value, prov = pick({field: {"rule": rule}}, [dict(r) for r in chosen], field)
        assert str(value).lower() in {"nan", "2.5", "3.00"}
        assert str(prov.ref) in {"crm/contacts/1", "sales/customers/2"}


def test_a_single_value_is_decided_by_the_first_rule() -> None:
    value, prov = pick(
        {"street": {"rule": "most_complete", "fallbacks": ["most_recent"]}},
        [{"source": "sales", "id": 2, "street": "1 High St"}],
        "street",
    )
    assert (value, prov.rule, prov.alternatives) == ("1 High St", "most_complete", ())


@pytest.mark.parametrize(
    ("rule", "decided"),
    [
        ({}, ("source_priority", "source priority crm > sales > support")),
        ({"sources": ["support", "sales"]}, ("source_priority", "source priority support > sales")),
        ({"sources": []}, ("source_priority", "source priority member order")),
        (
            {"rule": "most_recent", "fallbacks": ["source_priority"]},
            ("most_recent", "most recently updated record (2026-02-01T00:00:00+00:00)"),
        ),
        ({"rule": "min"}, ("min", "minimum value across sources")),
    ],
)
def test_a_lone_value_is_explained_by_the_first_rule(
    rule: dict[str, Any], decided: tuple[str, str]
) -> None:
    """One candidate is decided by the chain's first rule, with that rule's reason
    (for ``source_priority`` without asking the rule: the same words)."""
    value, prov = pick(
        {"street": rule},
        [{"source": "sales", "id": 2, "street": "1 High St", "updated": "2026-02-01T00:00:00"}],
        "street",
    )
    assert (value, str(prov.ref), prov.alternatives) == ("1 High St", "sales/customers/2", ())
    assert (prov.rule, prov.reason) == decided


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"rule": "most_popular"}, "most_frequent"),
        ({"rule": "most_recent", "fallbacks": ["most_recent"]}, "already earlier in the chain"),
        ({"fallbacks": ["newest"]}, "most_complete"),
    ],
)
def test_bad_rules_are_located_errors(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model({"name": rule})
    error = caught.value.errors()[0]
    assert error["loc"][:3] == ("survivorship", "fields", "name")
    assert message in str(caught.value)


def test_external_ids_and_gmail_inboxes_are_presented_and_counted_normalised() -> None:
    m = UnifiedModel.model_validate(
        {
            "customer": {
                "fields": {
                    "taxId": {"normalize": "external_id"},
                    "email": {"normalize": "email_provider"},
                },
                "members": [
                    {"source": s, "table": t, "fields": {"taxId": "tax", "email": "email"}}
                    for s, t in MEMBERS
                ],
            },
            "identity": {"keys": {"email": {"normalize": "email_provider"}}},
            "survivorship": {
                "default": ["support"],
                "fields": {"taxId": {"rule": "most_frequent"}, "email": {"rule": "most_frequent"}},
            },
        }
    )
    rows = [
        ("crm", {"tax": "ab-12 34", "email": "J.Smith+shop@gmail.com"}),
        ("sales", {"tax": "AB1234", "email": "jsmith@googlemail.com"}),
        ("support", {"tax": "XY 99", "email": "js@example.com"}),
    ]
    records = [
        Record(m.customer.members[i], i, {"id": i + 1, **row}) for i, (_, row) in enumerate(rows)
    ]
    golden = Survivorship(m).build(records)
    assert golden.values["taxId"] == "AB1234"
    assert golden.values["email"] == "jsmith@gmail.com"
    assert golden.provenance["email"].reason == "2 of 3 records agree"


def test_text_fields_read_any_stored_value_as_text_and_list_each_other_value_once() -> None:
    """A text field keeps text as stored (blank included) and shows other stored
    types as text; the winner's value and its case variants are no alternative."""
    value, prov = pick(
        {"name": {"sources": ["support", "sales", "crm"]}},
        [
            {"source": "crm", "id": 1, "name": 42},
            {"source": "sales", "id": 2, "name": "ann lee"},
            {"source": "support", "id": 3, "name": "Ann Lee"},
        ],
        "name",
    )
    assert (value, str(prov.ref), prov.reason) == (
        "Ann Lee",
        "support/users/3",
        "source priority support > sales > crm",
    )
    assert [(v, str(ref)) for v, ref in prov.alternatives] == [("42", "crm/contacts/1")]
    value, prov = pick({}, [{"source": "sales", "id": 2, "name": " "}], "name")
    assert (value, prov.rule, prov.alternatives) == (" ", "source_priority", ())
