"""Customer filters and orderings as plain values, independent of GraphQL.

The schema turns its input objects into these; the planner reduces them to
source-side candidate reads and evaluates them exactly in memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "startswith", "is_null"]


@dataclass(frozen=True, slots=True)
class Cond:
    op: Op
    value: Any


@dataclass(frozen=True, slots=True)
class FieldPred:
    """Conditions on a golden field or a metric of the customer."""

    field: str
    conds: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class RelationPred:
    """The customer has at least one related row satisfying every condition."""

    relation: str
    where: tuple[tuple[str, Cond], ...]
    """(entity field, condition) pairs."""


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


Expr = FieldPred | RelationPred | And | Or | Not


@dataclass(frozen=True, slots=True)
class Order:
    field: str
    descending: bool = False


def holds(value: Any, cond: Cond) -> bool:
    """Whether a (coerced) value satisfies one condition; NULL fails all but is_null.

    The same semantics as :func:`resolvers.filtering.matches` and the SQL
    connector on PostgreSQL and SQLite: ``eq``/``ne``/``in`` exact (so
    case-sensitive), ``contains``/``startswith`` case-insensitive. A source
    whose collation is case-insensitive (MariaDB) returns a superset, which
    this check narrows.
    """
    if cond.op == "is_null":
        return (value is None) == bool(cond.value)
    if value is None:
        return False
    wanted = _comparable(cond.value, value)
    if cond.op == "eq":
        return bool(value == wanted)
    if cond.op == "ne":
        return bool(value != wanted)
    if cond.op == "in":
        return any(value == _comparable(v, value) for v in wanted or ())
    if cond.op == "contains":
        return str(wanted).casefold() in str(value).casefold()
    if cond.op == "startswith":
        return str(value).casefold().startswith(str(wanted).casefold())
    try:
        if cond.op == "lt":
            return bool(value < wanted)
        if cond.op == "le":
            return bool(value <= wanted)
        if cond.op == "gt":
            return bool(value > wanted)
        return bool(value >= wanted)
    except TypeError:
        return False


def _comparable(wanted: Any, value: Any) -> Any:
    """Bring a filter value to the type of the field's value where that is safe."""
    if isinstance(wanted, Sequence) and not isinstance(wanted, str):
        return wanted
    if isinstance(value, dt.datetime) and isinstance(wanted, dt.datetime) and wanted.tzinfo is None:
        return wanted.replace(tzinfo=dt.UTC)
    if isinstance(value, Decimal) and isinstance(wanted, int | float):
        return Decimal(str(wanted))
    return wanted
