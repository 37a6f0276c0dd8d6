"""Evaluating connector filters in memory, for what a source cannot push down.

The semantics match the SQL connector's: ``contains``/``startswith`` are
case-insensitive, ``ne`` and ordering comparisons are false against NULL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from connectors import Capabilities, Filter, Row
from resolvers.model import FilterSpec


def to_filters(specs: Iterable[FilterSpec]) -> list[Filter]:
    return [Filter(s.column, s.op, s.value) for s in specs]


def _compare(left: Any, right: Any, op: str) -> bool:
    if left is None or right is None:
        return False
    try:
        if op == "lt":
            return bool(left < right)
        if op == "le":
            return bool(left <= right)
        if op == "gt":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return bool(_compare(str(left), str(right), op))


def matches(row: Row, where: Filter) -> bool:
    """Whether ``row`` satisfies one filter."""
    value = row.get(where.column)
    op, wanted = where.op, where.value
    if op == "is_null":
        return (value is None) == bool(wanted if wanted is not None else True)
    if value is None:
        return False
    if op == "eq":
        return bool(value == wanted)
    if op == "ne":
        return bool(value != wanted)
    if op == "in":
        return value in set(wanted or ())
    if op == "contains":
        return str(wanted).casefold() in str(value).casefold()
    if op == "startswith":
        return str(value).casefold().startswith(str(wanted).casefold())
    return _compare(value, wanted, op)


def matches_all(row: Row, filters: Sequence[Filter]) -> bool:
    return all(matches(row, f) for f in filters)


def pushable(capabilities: Capabilities, filters: Sequence[Filter]) -> bool:
    """Whether the source can evaluate every one of ``filters`` itself."""
    return all(capabilities.can_filter(f.column, f.op) for f in filters)
