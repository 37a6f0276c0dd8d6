"""Exports combine a chunk's metrics a metric at a time (``combine_column``); the values
must be those :func:`resolvers.metrics.combine` gives one customer at a time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from resolvers.metrics import combine, combine_column
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
    column = _safe(combine_column, spec, owned, partials, "m")
    one_by_one = [_safe(combine, spec, [partials[k].get("m") for k in ks]) for ks in owned]
    if column[0] == "error":
        assert any(r[0] == "error" for r in one_by_one)
        return
    assert [("ok", v) for v in column[1]] == one_by_one
    for got, (_, want) in zip(column[1], one_by_one, strict=True):
        assert type(got) is type(want)
        if isinstance(want, Decimal):
            assert str(got) == str(want)
