"""An export's chunk reads its customers' member keys (each customer's sole key, and
the keys of those with several) and record references in one pass over its records
(``_CustomerRows._owned``); they must be what reading each customer's records one
customer at a time gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from resolvers.export import SOURCE_RECORDS, _CustomerRows
from resolvers.metrics import Owners
from resolvers.model import UnifiedModel
from resolvers.records import Record
from resolvers.view import CustomerView

MAIL: dict[str, Any] = {"fields": {"email": "email"}, "identity": {"mail": ["email"]}}
MODEL = UnifiedModel.model_validate(
    {
        "customer": {
            "fields": {"email": {}},
            "members": [
                {"source": "db", "table": "people", **MAIL},
                {"source": "db", "table": "users", "key": "uid", "key_type": "string", **MAIL},
                {"source": "db", "table": "leads", **MAIL},
            ],
        },
        "identity": {"keys": {"mail": {"normalize": "email"}}},
        "relations": {
            name: {
                "entity": entity,
                "source": "db",
                "table": name,
                "parent": {"member": member, "column": "owner"},
                "fields": {"id": {"column": "id", "type": "id"}},
            }
            for name, entity, member in [
                ("orders", "Order", "db.people"),
                ("tickets", "Ticket", "db.users"),
            ]
        },
        "metrics": {
            "orderCount": {"relation": "orders", "fn": "count"},
            "ticketCount": {"relation": "tickets", "fn": "count"},
        },
    }
)
MEMBERS = MODEL.customer.members

keys = st.one_of(st.integers(-5, 5), st.text("ab1", max_size=2))
records = st.tuples(st.integers(0, len(MEMBERS) - 1), keys)


def _customer(found: list[tuple[int, Any]]) -> CustomerView:
    made = [
        Record(MEMBERS[rank], rank, {MEMBERS[rank].key: key, "email": None}) for rank, key in found
    ]
    return CustomerView(records=made, golden=None)  # type: ignore[arg-type]


@given(st.lists(st.lists(records, min_size=1, max_size=5), max_size=8), st.booleans())
def test_owned_keys_and_refs_are_each_customers_own(
    chunk: list[list[tuple[int, Any]]], with_refs: bool
) -> None:
    names = ["id", "orderCount", "ticketCount"] + ([SOURCE_RECORDS] if with_refs else [])
    rows = _CustomerRows(MODEL, names, None)
    customers = [_customer(found) for found in chunk]
    owned, refs = rows._owned(customers)
    assert sorted(owned) == [0, 1]  # the members the metrics' relations hang off
    for rank, owners in owned.items():
        expected = Owners.of([[r.key for r in c.records if r.rank == rank] for c in customers])
        assert owners.sole == expected.sole
        assert owners.more == expected.more
    assert refs == (
        [";".join(r.ref_text() for r in c.records) for c in customers] if with_refs else []
    )
