"""One comparison semantics everywhere: the planner's exact check
(:func:`resolvers.expr.holds`) and the in-memory connector filter
(:func:`resolvers.filtering.matches`) agree, so a predicate answered at a
source or in memory gives the same customers."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import Filter
from resolvers.expr import Cond, holds
from resolvers.filtering import matches

words = st.sampled_from(["urgent", "Urgent", "URGENT", "high", "DE", "de", "", "ur"])
ops = st.sampled_from(["eq", "ne", "in", "contains", "startswith", "lt", "le", "gt", "ge"])


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.none(), words), op=ops, wanted=words, more=st.lists(words, max_size=3))
def test_holds_and_matches_agree(value: Any, op: Any, wanted: str, more: list[str]) -> None:
    target: Any = [wanted, *more] if op == "in" else wanted
    assert holds(value, Cond(op, target)) == matches({"c": value}, Filter("c", op, target))


def test_eq_is_exact_and_contains_ignores_case() -> None:
    assert not holds("urgent", Cond("eq", "URGENT"))
    assert not holds("DE", Cond("in", ["de"]))
    assert holds("DE", Cond("ne", "de"))
    assert holds("Smith", Cond("contains", "smi"))
    assert holds("Smith", Cond("startswith", "SM"))
