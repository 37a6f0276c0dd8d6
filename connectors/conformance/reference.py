"""The reference semantics the suite checks a connector against, in plain Python.

Filters follow SQL: a NULL column value matches no operator but
``is_null``; ``in`` is ``eq`` against any listed value; ``contains`` and
``startswith`` match text case-insensitively (``%`` and ``_`` are
literal) unless a suite says otherwise. How a source compares text
(binary, case-insensitive, pad-space) is the suite's ``text_key``.
Values a source returns are compared loosely by type: numbers by value
(``Decimal`` or ``float``), datetimes parsed from ISO text when a source
returns text, because drivers differ there and the planner does not care.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connectors._base import Aggregate, Filter, Row
from connectors.conformance.dataset import ColumnType

TextKey = Callable[[str], Any]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def normalize(value: Any, kind: ColumnType | None = None) -> Any:
    """``value`` as Python compares it: numbers as ``float``, datetimes parsed."""
    if value is None:
        return None
    if kind == "datetime" or isinstance(value, datetime):
        return _as_datetime(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | Decimal) and kind != "str":
        return float(value)
    if kind in ("int", "decimal") and isinstance(value, str):
        return float(value)
    return value


def same(expected: Any, actual: Any, kind: ColumnType | None = None) -> bool:
    """Whether a source returned ``expected`` as ``actual`` (loosely typed)."""
    left, right = normalize(expected, kind), normalize(actual, kind)
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-9)
    return bool(left == right)


def sort_key(value: Any, kind: ColumnType, text_key: TextKey) -> Any:
    """How a non-null value orders: by number, by time, or by ``text_key``."""
    plain = normalize(value, kind)
    return text_key(plain) if isinstance(plain, str) else plain


def matches(
    row: Row,
    f: Filter,
    kind: ColumnType,
    text_key: TextKey,
    casefold_match: bool = True,
) -> bool:
    """Whether ``row`` passes ``f`` under the reference semantics."""
    value = row[f.column]
    if f.op == "is_null":
        wanted = True if f.value is None else bool(f.value)
        return (value is None) is wanted
    if value is None:
        return False
    if f.op in ("contains", "startswith"):
        text, needle = str(value), str(f.value)
        if casefold_match:
            text, needle = text.casefold(), needle.casefold()
        return needle in text if f.op == "contains" else text.startswith(needle)
    if f.op == "in":
        return any(_compare("eq", value, v, kind, text_key) for v in f.value)
    return _compare(f.op, value, f.value, kind, text_key)


def _compare(op: str, value: Any, other: Any, kind: ColumnType, text_key: TextKey) -> bool:
    if other is None:
        return False
    return _COMPARE[op](sort_key(value, kind, text_key), sort_key(other, kind, text_key))


def select(
    rows: Iterable[Row],
    filters: Sequence[Filter],
    kinds: Mapping[str, ColumnType],
    text_key: TextKey,
    casefold_match: bool = True,
) -> list[Row]:
    """The rows passing every filter, in input order."""
    return [
        row
        for row in rows
        if all(matches(row, f, kinds[f.column], text_key, casefold_match) for f in filters)
    ]


def aggregate(
    rows: Sequence[Row],
    group_by: Sequence[str],
    aggregates: Sequence[Aggregate],
    kinds: Mapping[str, ColumnType],
    text_key: TextKey,
) -> dict[tuple[Any, ...], Row]:
    """Grouped aggregates keyed by the groups' ``sort_key`` values (NULL is a group),
    each over its group's rows that pass its ``where``."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        key = tuple(
            None if row[g] is None else sort_key(row[g], kinds[g], text_key) for g in group_by
        )
        groups.setdefault(key, []).append(row)
    if not group_by and not groups:
        groups[()] = []
    return {
        key: {
            a.alias: _aggregate_one(select(members, a.where, kinds, text_key), a, kinds, text_key)
            for a in aggregates
        }
        for key, members in groups.items()
    }


def _aggregate_one(
    rows: Sequence[Row], agg: Aggregate, kinds: Mapping[str, ColumnType], text_key: TextKey
) -> Any:
    if agg.column is None:
        return len(rows)
    values = [row[agg.column] for row in rows if row[agg.column] is not None]
    if agg.fn == "count":
        return len(values)
    if not values:
        return None
    if agg.fn == "sum":
        return sum(Decimal(str(v)) for v in values)
    kind = kinds[agg.column]
    pick = min if agg.fn == "min" else max
    return pick(values, key=lambda v: sort_key(v, kind, text_key))
