"""SQLAlchemy Core statements for the connector's reads.

Tables and columns are lightweight ``table()``/``column()`` constructs: no
reflection round trip, identifiers quoted by the dialect, and every value a
bound parameter. Nothing here touches a connection.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnClause, ColumnElement, FunctionFilter
from sqlalchemy.sql.expression import TableClause, column
from sqlalchemy.sql.sqltypes import _resolve_value_to_type
from sqlalchemy.types import TypeEngine

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


SCAN_PARAM = "custview_scan__"
"""Prefix of the bound values of a scan built once per shape (:func:`bound_scan`)."""
_COMPARE = frozenset(("eq", "ne", "lt", "le", "gt", "ge"))
_SHAPES: OrderedDict[Any, Select[Any]] = OrderedDict()
_SHAPES_KEPT = 256


def bound_scan(
    table_name: str, schema: str | None, request: ScanRequest
) -> tuple[Select[Any], dict[str, Any]] | None:
    """The read of :func:`scan` as a statement built once per *shape* (table,
    columns, filter columns and operators, sort, whether a cursor and a limit
    are given, and the SQL type each value binds as) and the values to bind
    into it: a page after a page costs no statement construction nor cache
    key. ``None`` when a filter's SQL depends on its value (``in``,
    ``contains``, ``startswith``, a comparison with null): build it with
    :func:`scan`.
    """
    shape: list[Any] = [table_name, schema, tuple(request.columns)]
    params: dict[str, Any] = {}
    for i, f in enumerate(request.filters):
        if f.op == "is_null":
            shape.append((f.column, f.op, f.value in (True, None)))
        elif f.op in _COMPARE and f.value is not None:
            shape.append((f.column, f.op, _resolve_value_to_type(f.value)))
            params[f"{SCAN_PARAM}f{i}"] = f.value
        else:
            return None
    shape.append(tuple((s.column, s.descending) for s in request.order_by))
    if request.after is not None:
        _check_keyset(request)
        shape.append(tuple(_resolve_value_to_type(v) for v in request.after))
        params.update((f"{SCAN_PARAM}a{i}", v) for i, v in enumerate(request.after))
    else:
        shape.append(None)
    if request.limit is not None:
        shape.append(True)
        params[f"{SCAN_PARAM}limit"] = request.limit
    key = tuple(shape)
    stmt = _SHAPES.get(key)
    if stmt is None:
        stmt = _scan_shape(table_name, schema, request)
        _SHAPES[key] = stmt
        if len(_SHAPES) > _SHAPES_KEPT:
            _SHAPES.popitem(last=False)
    return stmt, params


def _scan_shape(table_name: str, schema: str | None, request: ScanRequest) -> Select[Any]:
    """:func:`scan`'s statement with every value a named bind parameter."""
    stmt = select(*(col(c) for c in unique(request.columns))).select_from(
        table_ref(table_name, schema)
    )
    conditions: list[ColumnElement[bool]] = []
    for i, f in enumerate(request.filters):
        if f.op == "is_null":
            conditions.append(_is_null(col(f.column), f.value))
        else:
            bound = _bound(f"{SCAN_PARAM}f{i}", f.value)
            conditions.append(_OPERATORS[f.op](col(f.column), bound))
    if request.after is not None:
        after = [_bound(f"{SCAN_PARAM}a{i}", v) for i, v in enumerate(request.after)]
        conditions.append(_keyset(request, after))
    if conditions:
        stmt = stmt.where(*conditions)
    for sort in request.order_by:
        stmt = stmt.order_by(col(sort.column).desc() if sort.descending else col(sort.column))
    if request.limit is not None:
        stmt = stmt.limit(bindparam(f"{SCAN_PARAM}limit", type_=Integer()))
    return stmt


def _bound(name: str, value: Any) -> BindParameter[Any]:
    type_: TypeEngine[Any] = _resolve_value_to_type(value)
    return bindparam(name, value, type_=type_)


def keyset(request: ScanRequest) -> ColumnElement[bool]:
    """Rows strictly after ``request.after`` in ``request.order_by`` order.

    The row-value comparison is spelled out as ``(a > x) OR (a = x AND b < y)
    ...`` so each column keeps its own direction. Keyset columns must be
    non-null and, together, unique; a ``None`` cursor value is refused.
    """
    _check_keyset(request)
    return _keyset(request, list(request.after or ()))


def _check_keyset(request: ScanRequest) -> None:
    after = list(request.after or ())
    if not request.order_by:
        raise QueryError("a keyset cursor needs order_by columns")
    if len(after) != len(request.order_by):
        raise QueryError(
            f"the cursor has {len(after)} values for {len(request.order_by)} order_by columns"
        )
    if any(value is None for value in after):
        raise QueryError("keyset cursor values must not be null (order by non-null columns)")


def _keyset(request: ScanRequest, after: Sequence[Any]) -> ColumnElement[bool]:
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
        exprs.append(aggregate_expr(agg).label(name))
    stmt = select(*(col(g) for g in groups), *exprs).select_from(tbl)
    if filters:
        stmt = stmt.where(*(condition(f) for f in filters))
    if groups:
        stmt = stmt.group_by(*(col(g) for g in groups)).order_by(*(col(g) for g in groups))
    return stmt, names


AGGREGATE_PARAM = "custview_aggregate__"
"""Prefix of the bound values of an aggregate built once per shape (:func:`bound_aggregate`)."""
_AGGREGATES: OrderedDict[Any, tuple[Select[Any], list[str]]] = OrderedDict()


def bound_aggregate(
    table_name: str,
    schema: str | None,
    group_by: Sequence[str],
    aggregates: Sequence[Aggregate],
    filters: Sequence[Filter],
) -> tuple[Select[Any], list[str], dict[str, Any]] | None:
    """:func:`aggregate` as a statement built once per *shape* (table, groups,
    aggregates with their ``where`` and its values, filter columns and operators, the
    SQL type each value binds as),
    with the values to bind into it: an ``in`` list is one expanding parameter, so a
    metric's grouped aggregate over other keys (every request) costs no statement
    construction nor cache key. ``None`` when a filter's SQL depends on its value
    (``contains``, ``startswith``, a comparison with null, an empty or mixed list):
    build it with :func:`aggregate`."""
    wheres = [_where_shape(a.where) for a in aggregates]
    if None in wheres:
        return None
    shape: list[Any] = [
        table_name,
        schema,
        tuple(group_by),
        tuple((a.fn, a.column, a.alias, w) for a, w in zip(aggregates, wheres, strict=True)),
    ]
    params: dict[str, Any] = {}
    for i, f in enumerate(filters):
        name = f"{AGGREGATE_PARAM}f{i}"
        if f.op == "is_null":
            shape.append((f.column, f.op, f.value in (True, None)))
        elif f.op in _COMPARE and f.value is not None:
            shape.append((f.column, f.op, _resolve_value_to_type(f.value)))
            params[name] = f.value
        elif f.op == "in" and isinstance(f.value, list | tuple) and f.value:
            kinds = {type(v) for v in f.value}
            if len(kinds) != 1 or None in f.value:
                return None
            shape.append((f.column, f.op, _resolve_value_to_type(f.value[0])))
            params[name] = list(f.value)
        else:
            return None
    key = tuple(shape)
    found = _AGGREGATES.get(key)
    if found is None:
        found = _aggregate_shape(table_name, schema, group_by, aggregates, filters)
        _AGGREGATES[key] = found
        if len(_AGGREGATES) > _SHAPES_KEPT:
            _AGGREGATES.popitem(last=False)
    else:
        _AGGREGATES.move_to_end(key)
    stmt, names = found
    return stmt, names, params


def _where_shape(where: Sequence[Filter]) -> tuple[Any, ...] | None:
    """An aggregate's ``where`` as part of a shape: its values are bound into the
    statement built for the shape (a metric's ``where`` is the same every time), so
    they are part of it, each with its type (``1``, ``1.0`` and ``True`` are equal
    keys but bind differently; so do values equal by ``==`` that print differently).
    ``None`` for a value that cannot be a key."""
    shape: list[Any] = []
    for f in where:
        value = f.value
        # with each value's repr: equal values may bind differently (aware datetimes
        # of one instant in two offsets, Decimal('1.0') and Decimal('1.00'))
        if isinstance(value, list | tuple):
            value = tuple((type(v), v, repr(v)) for v in value)
        else:
            value = (type(value), value, repr(value))
        try:
            hash(value)
        except TypeError:
            return None
        shape.append((f.column, f.op, value))
    return tuple(shape)


def _aggregate_shape(
    table_name: str,
    schema: str | None,
    group_by: Sequence[str],
    aggregates: Sequence[Aggregate],
    filters: Sequence[Filter],
) -> tuple[Select[Any], list[str]]:
    """:func:`aggregate`'s statement with every value a named bind parameter."""
    bound: list[Filter] = []
    conditions: list[ColumnElement[bool]] = []
    for i, f in enumerate(filters):
        name = f"{AGGREGATE_PARAM}f{i}"
        if f.op == "is_null":
            conditions.append(_is_null(col(f.column), f.value))
        elif f.op == "in":
            type_: TypeEngine[Any] = _resolve_value_to_type(f.value[0])
            conditions.append(col(f.column).in_(bindparam(name, expanding=True, type_=type_)))
        else:
            conditions.append(_OPERATORS[f.op](col(f.column), _bound(name, f.value)))
    stmt, names = aggregate(table_ref(table_name, schema), group_by, aggregates, bound)
    return (stmt.where(*conditions) if conditions else stmt), names


def aggregate_expr(agg: Aggregate) -> ColumnElement[Any]:
    """``fn(column)``; with a ``where``, ``fn(column) FILTER (WHERE where)``, which
    MySQL and MariaDB (no ``FILTER``) get as ``fn(CASE WHEN where THEN column END)``
    (:func:`_case_filter`).

    A row the ``where`` does not pass (false or NULL) is left out, as ``WHERE``
    leaves it out, so over no passing rows ``count`` is 0 and the others NULL, as
    over no rows. ``FILTER`` where the engine has it: SQLite's ``CASE`` is an
    expression without the column's collation, so ``min``/``max`` of a ``COLLATE
    NOCASE`` column would compare bytes (PostgreSQL's and MariaDB's ``CASE`` keep
    it; on SQLite both took the same time over the demo's orders).
    """
    if agg.fn not in ("count", "sum", "min", "max"):
        raise QueryError(f"unknown aggregate function '{agg.fn}'")
    if agg.column is None and agg.fn != "count":
        raise QueryError(f"aggregate '{agg.fn}' needs a column")
    function: Callable[..., ColumnElement[Any]] = getattr(func, agg.fn)
    value = function() if agg.column is None else function(col(agg.column))
    if agg.where:
        return value.filter(and_(*(condition(f) for f in agg.where)))  # type: ignore[no-any-return]
    return value


@compiles(FunctionFilter, "mysql")
@compiles(FunctionFilter, "mariadb")
def _case_filter(element: FunctionFilter[Any], compiler: SQLCompiler, **kw: Any) -> str:
    """``fn(x) FILTER (WHERE c)`` as ``fn(CASE WHEN c THEN x END)`` (``count(*)``:
    ``count(CASE WHEN c THEN 1 END)``): ``CASE`` takes its branch only when ``c``
    is true, and every aggregate skips the NULL of the others."""
    function = element.func
    [argument] = function.clauses.clauses
    if isinstance(argument, ColumnClause) and argument.name == "*":
        argument = literal_column("1")
    assert element.criterion is not None, "FILTER without a condition"
    rewritten = getattr(func, function.name)(case((element.criterion, argument)))
    return compiler.process(rewritten, **kw)
