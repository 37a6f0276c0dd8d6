"""SQLAlchemy Core statements for the connector's reads.

Tables and columns are lightweight ``table()``/``column()`` constructs: no
reflection round trip, identifiers quoted by the dialect, and every value a
bound parameter. Nothing here touches a connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, table
from sqlalchemy.sql.elements import ColumnClause, ColumnElement
from sqlalchemy.sql.expression import TableClause, column

from connectors._base import Aggregate, Filter, LookupTransform, ScanRequest
from connectors.errors import QueryError
from connectors.sql.expressions import transformed
from connectors.sql.readonly import identifier

KEY_LABEL = "custview_lookup_key__"
"""The label of the transformed key in lookups; never a requested column."""


def table_ref(name: str, schema: str | None) -> TableClause:
    return table(identifier(name), schema=schema)


def col(name: str) -> ColumnClause[Any]:
    return column(identifier(name))


def unique(names: Sequence[str]) -> list[str]:
    """``names`` without repeats, in order: one result column per name."""
    return list(dict.fromkeys(names))


KEYS_PARAM = "custview_keys__"


@lru_cache(maxsize=1024)
def lookup(
    table_name: str,
    schema: str | None,
    key_column: str,
    columns: tuple[str, ...],
    transform: LookupTransform,
) -> Select[Any]:
    """``SELECT columns, transformed(key) FROM tbl WHERE transformed(key) IN (:keys)``.

    Built once per shape and reused: the keys travel as the expanding
    parameter :data:`KEYS_PARAM`, so repeated lookups skip statement
    construction and hit SQLAlchemy's compiled cache.
    """
    key = transformed(col(key_column), transform)
    return (
        select(*(col(c) for c in columns), key.label(KEY_LABEL))
        .select_from(table_ref(table_name, schema))
        .where(key.in_(bindparam(KEYS_PARAM, expanding=True)))
    )


@lru_cache(maxsize=1024)
def lookup_columns(
    table_name: str,
    schema: str | None,
    keys: tuple[tuple[str, LookupTransform], ...],
    columns: tuple[str, ...],
) -> Select[Any]:
    """``SELECT columns, key_0, key_1 ... WHERE key_0 IN (:keys_0) OR key_1 IN ...``:
    several lookups of one table in one statement, each transformed key labelled
    ``KEY_LABEL<i>`` so rows are grouped back per lookup."""
    exprs = [transformed(col(c), t) for c, t in keys]
    return (
        select(
            *(col(c) for c in columns), *(e.label(f"{KEY_LABEL}{i}") for i, e in enumerate(exprs))
        )
        .select_from(table_ref(table_name, schema))
        .where(
            or_(
                *(e.in_(bindparam(f"{KEYS_PARAM}{i}", expanding=True)) for i, e in enumerate(exprs))
            )
        )
    )


def scan(tbl: TableClause, request: ScanRequest) -> Select[Any]:
    """The filtered, keyset-continued, sorted, limited read of ``request``."""
    stmt = select(*(col(c) for c in unique(request.columns))).select_from(tbl)
    conditions = [condition(f) for f in request.filters]
    if request.after is not None:
        conditions.append(keyset(request))
    if conditions:
        stmt = stmt.where(*conditions)
    for sort in request.order_by:
        stmt = stmt.order_by(col(sort.column).desc() if sort.descending else col(sort.column))
    if request.limit is not None:
        stmt = stmt.limit(request.limit)
    return stmt


def keyset(request: ScanRequest) -> ColumnElement[bool]:
    """Rows strictly after ``request.after`` in ``request.order_by`` order.

    The row-value comparison is spelled out as ``(a > x) OR (a = x AND b < y)
    ...`` so each column keeps its own direction. Keyset columns must be
    non-null and, together, unique; a ``None`` cursor value is refused.
    """
    after = list(request.after or ())
    if not request.order_by:
        raise QueryError("a keyset cursor needs order_by columns")
    if len(after) != len(request.order_by):
        raise QueryError(
            f"the cursor has {len(after)} values for {len(request.order_by)} order_by columns"
        )
    if any(value is None for value in after):
        raise QueryError("keyset cursor values must not be null (order by non-null columns)")
    branches: list[ColumnElement[bool]] = []
    for i, sort in enumerate(request.order_by):
        equal = [col(s.column) == v for s, v in zip(request.order_by[:i], after, strict=False)]
        c = col(sort.column)
        beyond = c < after[i] if sort.descending else c > after[i]
        branches.append(and_(*equal, beyond))
    return or_(*branches)


def _like(method: str) -> Callable[[ColumnClause[Any], Any], ColumnElement[bool]]:
    def build(c: ColumnClause[Any], value: Any) -> ColumnElement[bool]:
        result: ColumnElement[bool] = getattr(c, method)(value, autoescape=True)
        return result

    return build


def _in(c: ColumnClause[Any], value: Any) -> ColumnElement[bool]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise QueryError(f"filter 'in' on '{c.name}' needs a list of values")
    return c.in_(list(value))


def _is_null(c: ColumnClause[Any], value: Any) -> ColumnElement[bool]:
    return c.is_(None) if value in (True, None) else c.is_not(None)


_OPERATORS: dict[str, Callable[[ColumnClause[Any], Any], ColumnElement[bool]]] = {
    "eq": lambda c, v: c == v,
    "ne": lambda c, v: c != v,
    "lt": lambda c, v: c < v,
    "le": lambda c, v: c <= v,
    "gt": lambda c, v: c > v,
    "ge": lambda c, v: c >= v,
    "in": _in,
    # Case-insensitive on every engine, like a search box; % and _ are literal.
    "contains": _like("icontains"),
    "startswith": _like("istartswith"),
    "is_null": _is_null,
}
OPERATORS = frozenset(_OPERATORS)


def condition(f: Filter) -> ColumnElement[bool]:
    build = _OPERATORS.get(f.op)
    if build is None:
        raise QueryError(f"unknown filter operator '{f.op}' on '{f.column}'")
    if f.op in ("lt", "le", "gt", "ge", "contains", "startswith") and f.value is None:
        raise QueryError(f"filter '{f.op}' on '{f.column}' needs a value")
    return build(col(f.column), f.value)


def aggregate(
    tbl: TableClause,
    group_by: Sequence[str],
    aggregates: Sequence[Aggregate],
    filters: Sequence[Filter],
) -> tuple[Select[Any], list[str]]:
    """The grouped statement and the names of its result columns, in order."""
    groups = unique(group_by)
    names = list(groups)
    exprs: list[ColumnElement[Any]] = []
    for agg in aggregates:
        name = agg.alias or (f"{agg.fn}_{agg.column}" if agg.column else agg.fn)
        if name in names:
            raise QueryError(f"aggregate name '{name}' is used twice")
        names.append(name)
        exprs.append(_aggregate_expr(agg).label(name))
    stmt = select(*(col(g) for g in groups), *exprs).select_from(tbl)
    if filters:
        stmt = stmt.where(*(condition(f) for f in filters))
    if groups:
        stmt = stmt.group_by(*(col(g) for g in groups)).order_by(*(col(g) for g in groups))
    return stmt, names


def _aggregate_expr(agg: Aggregate) -> ColumnElement[Any]:
    if agg.fn == "count":
        return func.count() if agg.column is None else func.count(col(agg.column))
    if agg.column is None:
        raise QueryError(f"aggregate '{agg.fn}' needs a column")
    if agg.fn == "sum":
        return func.sum(col(agg.column))
    if agg.fn == "min":
        return func.min(col(agg.column))
    if agg.fn == "max":
        return func.max(col(agg.column))
    raise QueryError(f"unknown aggregate function '{agg.fn}'")
