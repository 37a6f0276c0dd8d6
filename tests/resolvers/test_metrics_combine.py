"""Exports combine a chunk's metrics a metric at a time (``combine_column``, the
customers' keys held as :class:`Owners`); the values must be those
:func:`resolvers.metrics.combine` gives one customer at a time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from resolvers.metrics import NO_KEY, Owners, combine, combine_column
from resolvers.model import MetricSpec

SPECS = [
    MetricSpec(relation="r", fn="count"),
    MetricSpec(relation="r", fn="sum", column="c", type="decimal"),
    MetricSpec(relation="r", fn="sum", column="c", type="float"),
    MetricSpec(relation="r", fn="min", column="c", type="int"),
    MetricSpec(relation="r", fn="max", column="c", type="datetime"),
    MetricSpec(relation="r", fn="max", column="c", type="string"),
    MetricSpec(relation="r", fn="avg", column="c", type="float"),
]

scalars = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6), max_value=10**6
    ),
    st.sampled_from(["2024-01-02 03:04:05", "2023-12-31T23:59:59Z", "", "x"]),
)
pairs = st.one_of(
    st.none(), st.tuples(st.one_of(st.none(), st.integers(-100, 100)), st.integers(0, 5))
)


def _safe(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except (TypeError, ValueError, ArithmeticError) as exc:
        return ("error", type(exc))


@given(st.data())
def test_combine_column_gives_what_combine_gives(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(SPECS))
    values = pairs if spec.fn == "avg" else scalars
    keys = data.draw(st.lists(st.integers(0, 9), max_size=8))
    partials = {k: data.draw(st.dictionaries(st.just("m"), values)) for k in set(keys)}
    owned = (
        data.draw(st.lists(st.lists(st.sampled_from(keys), max_size=3), max_size=6))
        if keys
        else [[]]
    )
    values = {k: p["m"] for k, p in partials.items() if "m" in p}
    column = _safe(combine_column, spec, Owners.of(owned), values)
    one_by_one = [_safe(combine, spec, [partials[k].get("m") for k in ks]) for ks in owned]
    if column[0] == "error":
        assert any(r[0] == "error" for r in one_by_one)
        return
    assert [("ok", v) for v in column[1]] == one_by_one
    for got, (_, want) in zip(column[1], one_by_one, strict=True):
        assert type(got) is type(want)
        if isinstance(want, Decimal):
            assert str(got) == str(want)


def test_owners_hold_sole_keys_and_the_keys_of_customers_with_several() -> None:
    owners = Owners.of([[1], [2, 1, 5], [], [3], [1]])
    assert owners.sole == [1, NO_KEY, NO_KEY, 3, 1]
    assert owners.more == {1: [2, 1, 5]}
    # every key once, the several keys' too
    assert owners.keys() == [1, 3, 2, 5]


def test_a_value_no_customer_reads_alone_fails_nobody() -> None:
    # key 7's value cannot be summed, but only a customer holding 7 would sum it
    spec = MetricSpec(relation="r", fn="sum", column="c", type="decimal")
    values = {1: Decimal("2.50"), 7: "x"}
    assert combine_column(spec, Owners.of([[1], [], [9]]), values) == [
        Decimal("2.50"),
        Decimal("0.00"),
        Decimal("0.00"),
    ]
