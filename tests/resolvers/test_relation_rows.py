"""A relation's rows as items: each value converted as its type's converter does."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from resolvers.coerce import converter
from resolvers.model import EntityFieldSpec, ParentSpec, RelationSpec
from resolvers.relation_rows import RelationShape

ORDERS = RelationSpec(
    entity="Order",
    source="sales",
    table="orders",
    parent=ParentSpec(member="sales.customers", column="customer_id"),
    fields={
        "createdAt": EntityFieldSpec(column="created_at", type="datetime"),
        "total": EntityFieldSpec(column="total", type="decimal"),
        "note": EntityFieldSpec(column="note"),
        "count": EntityFieldSpec(column="n", type="int"),
        "id": EntityFieldSpec(column="id", type="id"),
    },
)

TIMES = st.one_of(
    # SQLite's spelling (the short way), and the others (the long way)
    st.datetimes().map(lambda d: d.isoformat(sep=" ", timespec="seconds")),
    st.datetimes().map(lambda d: d.isoformat(sep="T", timespec="seconds")),
    st.datetimes(timezones=st.just(dt.UTC)).map(str),
    st.text(max_size=20),
    st.text(alphabet="0123456789-: T", min_size=19, max_size=19),
    st.none(),
    st.datetimes(),
)
AMOUNTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**12), 10**12),
    st.decimals(places=3, allow_nan=False),
    st.text(alphabet="0123456789.- ", max_size=8),
    st.none(),
)


def _same(a: Any, b: Any) -> bool:
    """Equal and of one type; times in the same zone (``==`` looks at neither)."""
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return (a, a.tzinfo, type(a)) == (b, b.tzinfo, type(b))
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return str(a) == str(b)
    return type(a) is type(b) and a == b


IDS = st.one_of(st.integers(), st.booleans(), st.text(max_size=5), st.floats(), st.none())


@given(created=TIMES, total=AMOUNTS, note=st.none() | st.text(max_size=5), key=IDS)
def test_items_convert_each_value_as_its_types_converter(
    created: Any, total: Any, note: Any, key: Any
) -> None:
    row = {"created_at": created, "total": total, "note": note, "n": "7", "id": key}
    (item,) = RelationShape.of(ORDERS, None).items([row])
    for field, spec in ORDERS.fields.items():
        value = row[spec.column]
        expected = None if value is None else converter(spec.type)(value)
        assert _same(item[field], expected), (field, value, item[field], expected)
