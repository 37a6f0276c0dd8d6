"""``SELECT`` over one curated table: planned into an export read, then projected,
aggregated, sorted and sliced.

Rows come from :func:`resolvers.export.rows`, the same governed path as the
exports: the planner's filter (from ``WHERE``), the grant's row rules and
masking, one audit entry per chunk. Aggregates (``COUNT``, ``SUM``, ``AVG``,
``MIN``, ``MAX`` with ``GROUP BY``) are computed over those governed rows,
so a hidden customer is never counted and a masked value never summed in
clear. ``date_trunc('unit', column)`` of a date or timestamp column may be
selected, grouped by and sorted by (BI tools' time grains), in UTC. Without
``ORDER BY`` or aggregates, rows stream and ``LIMIT`` stops the source reads
early.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from resolvers.export import column_action, governed_columns, rows
from resolvers.expr import And, Expr
from resolvers.governance import check_expr
from resolvers.policy import ForbiddenField, Grant
from resolvers.sqlview.catalog import PG_TYPES, SqlColumn, SqlTable
from resolvers.sqlview.errors import SqlError
from resolvers.sqlview.where import (
    Pred,
    columns_of,
    customer_ids,
    literal,
    parse_where,
    pushdown,
    row_check,
)

if TYPE_CHECKING:
    from resolvers.audit import Auditor
    from resolvers.view import Federation

_AGGREGATES: dict[type[exp.Expr], str] = {
    exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
}  # fmt: skip
_NUMERIC = ("int", "float", "decimal")
_CHUNK = 500
TRUNC_UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
"""``date_trunc`` units, as PostgreSQL names them (weeks start on Monday)."""
_UNIT_ALIASES = {"mon": "month", "qtr": "quarter", "yr": "year", "sec": "second", "min": "minute"}
_TIMESTAMPTZ = 1184


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    column: SqlColumn | None
    """``None`` for ``COUNT(*)``."""
    fn: str | None = None
    distinct: bool = False
    sql: str = ""
    unit: str | None = None
    """``date_trunc(unit, column)``."""

    @property
    def type_oid(self) -> int:
        if self.fn == "count":
            return 20
        if self.unit is not None:
            return _TIMESTAMPTZ
        assert self.column is not None
        if (self.fn == "sum" and self.column.type == "int") or self.fn == "avg":
            return 701 if self.column.type == "float" else 1700
        return self.column.type_oid


Key = tuple[str, Any]
"""An ORDER BY key: ("out", output index) or ("col", column name)."""
Grouping = tuple[SqlColumn, str | None]
"""A GROUP BY key: a column, truncated to a ``date_trunc`` unit or not (``None``)."""


@dataclass
class SelectPlan:
    table: SqlTable
    outputs: list[Output]
    group_by: list[Grouping] = field(default_factory=list)
    where: Pred | None = None
    expr: Expr | None = None
    exact: bool = True
    order: list[tuple[Key, bool, bool]] = field(default_factory=list)
    """(key, descending, nulls first)"""
    limit: int | None = None
    offset: int = 0
    ids: list[str] | None = None
    """Customers named by id in WHERE: looked up, not searched for."""

    @property
    def grouped(self) -> bool:
        return bool(self.group_by) or any(o.fn for o in self.outputs)

    def reads(self) -> list[SqlColumn]:
        wanted = [o.column for o in self.outputs if o.column is not None]
        wanted += [column for column, _ in self.group_by]
        if self.where is not None and not self.exact:
            wanted += sorted(columns_of(self.where), key=lambda c: c.name)
        wanted += [self.table.column(k[1]) for k, _, _ in self.order if k[0] == "col"]  # type: ignore[misc]
        if not wanted:  # COUNT(*) alone: one column, the cheapest
            wanted = [self.table.columns[0]]
        return list(dict.fromkeys(c for c in wanted if c is not None))


def plan_select(
    select: exp.Select,
    table: SqlTable,
    federation: Federation,
    grant: Grant,
    segment: Expr | None,
) -> SelectPlan:
    """Check and plan one SELECT over ``table`` for ``grant``."""
    model = federation.model
    plan = SelectPlan(table, _outputs(select, table, model, grant))
    # COUNT reads no values; the other aggregates and date_trunc would work on masked text
    valued = {
        o.column for o in plan.outputs if (o.fn not in (None, "count") or o.unit) and o.column
    }
    _check_readable(model, table, grant, valued, "aggregate")
    where = select.args.get("where")
    if where is not None:
        plan.where = parse_where(table, where.this)
        plan.expr, plan.exact = pushdown(model, table, plan.where)
        plan.ids = customer_ids(table, plan.where)
        _check_readable(model, table, grant, columns_of(plan.where), "filter by")
    if segment is not None:
        plan.expr = segment if plan.expr is None else And((segment, plan.expr))
    if plan.expr is not None:
        check_expr(grant, model, plan.expr)
    group = select.args.get("group")
    if group is not None:
        plan.group_by = [_group_column(table, plan.outputs, g) for g in group.expressions]
    if plan.grouped:
        loose = [
            o.name for o in plan.outputs if o.fn is None and (o.column, o.unit) not in plan.group_by
        ]
        if loose:
            raise SqlError(
                f'column "{loose[0]}" must appear in the GROUP BY clause or be used in an '
                "aggregate function",
                "42803",
            )
    order = select.args.get("order")
    if order is not None:
        plan.order = [_order_key(table, plan, o) for o in order.expressions]
        used = {table.column(k[1]) for k, _, _ in plan.order if k[0] == "col"}
        _check_readable(model, table, grant, {c for c, _ in plan.group_by}, "group by")
        used |= {plan.outputs[k[1]].column for k, _, _ in plan.order if k[0] == "out"}
        _check_readable(model, table, grant, {c for c in used if c is not None}, "sort by")
    plan.limit = _count(select.args.get("limit"), "LIMIT")
    plan.offset = _count(select.args.get("offset"), "OFFSET") or 0
    if not grant.full:
        if table.export in model.relations and grant.action(table.export) == "deny":
            raise ForbiddenField(f"your role may not read {table.name}")
        for column in plan.reads():
            if column_action(model, grant, table.export, column.field) == "deny":
                raise ForbiddenField(f"your role may not read {table.name}.{column.name}")
    return plan


def _check_readable(
    model: Any, table: SqlTable, grant: Grant, columns: set[SqlColumn], what: str
) -> None:
    """Filters and sorts read values in clear: only columns the grant shows in clear."""
    if grant.full:
        return
    for column in sorted(columns, key=lambda c: c.name):
        if column_action(model, grant, table.export, column.field) != "allow":
            raise ForbiddenField(f"your role may not {what} {table.name}.{column.name}")


def _outputs(select: exp.Select, table: SqlTable, model: Any, grant: Grant) -> list[Output]:
    outputs: list[Output] = []
    for item in select.expressions:
        node = item.this if isinstance(item, exp.Alias) else item
        alias = item.alias if isinstance(item, exp.Alias) else None
        if isinstance(node, exp.Star) or (
            isinstance(node, exp.Column) and isinstance(node.this, exp.Star)
        ):
            outputs += [
                Output(c.name, c, sql=c.name)
                for c in table.columns
                if grant.full or column_action(model, grant, table.export, c.field) != "deny"
            ]
            continue
        if isinstance(node, exp.Column):
            plain = _column(table, node)
            outputs.append(Output(alias or plain.name, plain, sql=plain.name))
            continue
        if isinstance(node, exp.TimestampTrunc | exp.DateTrunc):
            truncated, unit = _truncation(table, node)
            outputs.append(Output(alias or "date_trunc", truncated, sql=_text(node), unit=unit))
            continue
        fn = _AGGREGATES.get(type(node))
        if fn is None:
            raise SqlError(
                f"unsupported select item: {node.sql('postgres')}; select columns, "
                "COUNT/SUM/AVG/MIN/MAX of a column or date_trunc('unit', column)",
                "0A000",
            )
        argument, distinct = node.this, False
        if isinstance(argument, exp.Distinct):
            argument, distinct = argument.expressions[0], True
        column: SqlColumn | None = (
            None if isinstance(argument, exp.Star) else _column(table, argument)
        )
        if column is None and fn != "count":
            raise SqlError(f"{fn}(*) is not valid; name a column", "42601")
        if fn in ("sum", "avg") and column is not None and column.type not in _NUMERIC:
            type_name = PG_TYPES[column.type][1]
            raise SqlError(f"function {fn}({type_name}) does not exist", "42883")
        outputs.append(Output(alias or fn, column, fn, distinct, _text(node)))
    return outputs


def _text(node: exp.Expr) -> str:
    """An expression's text for matching it elsewhere in the statement (case ignored)."""
    return node.sql("postgres").lower()


def _truncation(table: SqlTable, node: exp.Expr) -> Grouping:
    """``date_trunc('unit', column)``: the column (a date or timestamp) and the unit."""
    column = _column(table, node.this)
    unit_node = node.args.get("unit")
    if unit_node is None:
        raise SqlError("date_trunc needs a unit, e.g. date_trunc('month', column)", "42601")
    unit = str(literal(unit_node) if isinstance(unit_node, exp.Literal) else unit_node.name)
    unit = unit.lower()
    unit = _UNIT_ALIASES.get(unit, unit)
    if unit.endswith("s") and unit[:-1] in TRUNC_UNITS + tuple(_UNIT_ALIASES):
        unit = _UNIT_ALIASES.get(unit[:-1], unit[:-1])  # "months", "mons", "hours"
    if column.type not in ("date", "datetime"):
        type_name = PG_TYPES[column.type][1]
        raise SqlError(f"function date_trunc(unknown, {type_name}) does not exist", "42883")
    if unit not in TRUNC_UNITS:
        raise SqlError(
            f'unit "{unit}" not recognized for date_trunc; use one of {", ".join(TRUNC_UNITS)}',
            "22023",
        )
    return column, unit


def truncate(value: Any, unit: str) -> datetime | None:
    """PostgreSQL's ``date_trunc(unit, value)`` in UTC; a date is midnight UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        raise SqlError(f"date_trunc needs a date or timestamp, not {value!r}", "22007")
    if unit == "second":
        return moment.replace(microsecond=0)
    if unit == "minute":
        return moment.replace(second=0, microsecond=0)
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def _column(table: SqlTable, node: exp.Expr) -> SqlColumn:
    from resolvers.sqlview.where import column_of

    return column_of(table, node, "select list")


def _group_column(table: SqlTable, outputs: list[Output], node: exp.Expr) -> Grouping:
    if isinstance(node, exp.Literal) and not node.is_string:
        index = int(node.this) - 1
        if not 0 <= index < len(outputs) or outputs[index].fn or outputs[index].column is None:
            raise SqlError(f"GROUP BY position {node.this} is not a column in the select list")
        column = outputs[index].column
        assert column is not None
        return column, outputs[index].unit
    if isinstance(node, exp.Column) and not node.table:
        for out in outputs:
            if out.name == node.name and out.fn is None and out.column is not None:
                return out.column, out.unit
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc):
        return _truncation(table, node)
    return _column(table, node), None


def _order_key(table: SqlTable, plan: SelectPlan, node: exp.Expr) -> tuple[Key, bool, bool]:
    assert isinstance(node, exp.Ordered)
    descending = bool(node.args.get("desc"))
    nulls_first = node.args.get("nulls_first")
    first = descending if nulls_first is None else bool(nulls_first)
    target = node.this
    if isinstance(target, exp.Literal) and not target.is_string:
        index = int(target.this) - 1
        if not 0 <= index < len(plan.outputs):
            raise SqlError(f"ORDER BY position {target.this} is not in select list", "42P10")
        return ("out", index), descending, first
    if isinstance(target, exp.Column) and not target.table:
        for i, out in enumerate(plan.outputs):
            if out.name == target.name:
                return ("out", i), descending, first
    if isinstance(target, exp.Column):
        column = _column(table, target)
        if plan.grouped and (column, None) not in plan.group_by:
            raise SqlError(
                f'column "{column.name}" must appear in the GROUP BY clause to sort by it', "42803"
            )
        return ("col", column.name), descending, first
    text = _text(target)
    for i, out in enumerate(plan.outputs):
        if (out.fn or out.unit) and out.sql == text:
            return ("out", i), descending, first
    raise SqlError(f"ORDER BY {target.sql('postgres')}: sort by a column or an output", "0A000")


def _count(node: exp.Expr | None, what: str) -> int | None:
    if node is None:
        return None
    value = literal(node.args.get("expression") or node.this)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SqlError(f"{what} must be a whole number", "22P02") from None
    if number < 0:
        raise SqlError(f"{what} must not be negative", "2201W" if what == "LIMIT" else "2201X")
    return number


# -- running -------------------------------------------------------------------------


async def run_select(
    plan: SelectPlan, federation: Federation, grant: Grant, auditor: Auditor | None
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The answer's rows, a chunk at a time."""
    reads = plan.reads()
    wanted = governed_columns(federation.model, plan.table.export, [c.field for c in reads], grant)
    check = row_check(plan.where) if plan.where is not None and not plan.exact else None
    chunk = None
    if plan.limit is not None and not plan.grouped and not plan.order:
        chunk = max(1, min(_CHUNK, plan.offset + plan.limit))  # LIMIT 10 stitches ten
    chunks: Any = rows(
        federation,
        plan.table.export,
        wanted,
        plan.expr,
        (),
        chunk=chunk,
        grant=grant,
        auditor=auditor,
        ids=plan.ids,
    )
    names = [c.name for c in reads]

    async def records() -> AsyncIterator[list[dict[str, Any]]]:
        async for chunk in chunks:
            found = [dict(zip(names, row, strict=True)) for row in chunk]
            yield [r for r in found if check(r) is True] if check else found

    try:
        if plan.grouped:
            yield_all = _slice(_sort(plan, await _aggregate(plan, records())), plan)
        elif plan.order:
            every = [r async for chunk in records() for r in chunk]
            yield_all = _slice(_sort(plan, [(_project(plan, r), r) for r in every]), plan)
        else:
            async for out in _stream(plan, records()):
                yield out
            return
        for start in range(0, len(yield_all), _CHUNK):
            yield yield_all[start : start + _CHUNK]
    finally:
        await chunks.aclose()


def _project(plan: SelectPlan, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        row[o.column.name] if o.unit is None else truncate(row[o.column.name], o.unit)
        for o in plan.outputs
        if o.column is not None
    )


async def _stream(
    plan: SelectPlan, records: AsyncIterator[list[dict[str, Any]]]
) -> AsyncIterator[list[tuple[Any, ...]]]:
    skip, left = plan.offset, plan.limit
    if left == 0:
        return
    async for chunk in records:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        out = [_project(plan, r) for r in chunk[skip:]]
        skip = 0
        if left is not None:
            out, left = out[:left], left - len(out[:left])
        if out:
            yield out
        if left == 0:
            return


Result = tuple[tuple[Any, ...], dict[str, Any]]
"""An output row and the values its ORDER BY keys may name."""


async def _aggregate(
    plan: SelectPlan, records: AsyncIterator[list[dict[str, Any]]]
) -> list[Result]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    async for chunk in records:
        for row in chunk:
            key = tuple(
                row[c.name] if unit is None else truncate(row[c.name], unit)
                for c, unit in plan.group_by
            )
            groups.setdefault(key, []).append(row)
    if not groups and not plan.group_by:
        groups[()] = []
    out: list[Result] = []
    for key, members in groups.items():
        by_group = dict(zip(plan.group_by, key, strict=True))
        # ORDER BY a plain column names it; a truncated one is sorted by its output
        values = {c.name: v for (c, unit), v in by_group.items() if unit is None}
        out_row = tuple(
            _fold(o, members) if o.fn else by_group[(o.column, o.unit)]  # type: ignore[index]
            for o in plan.outputs
        )
        out.append((out_row, values))
    return out


def _fold(output: Output, members: list[dict[str, Any]]) -> Any:
    if output.column is None:
        return len(members)
    values = [m[output.column.name] for m in members if m[output.column.name] is not None]
    if output.distinct:
        values = list(dict.fromkeys(values))
    if output.fn == "count":
        return len(values)
    if not values:
        return None
    if output.fn == "min":
        return min(values)
    if output.fn == "max":
        return max(values)
    if output.column.type == "float":
        total: Any = sum(float(v) for v in values)
        return total if output.fn == "sum" else total / len(values)
    total = sum((Decimal(str(v)) for v in values), Decimal(0))
    return total if output.fn == "sum" else total / len(values)


def _sort(plan: SelectPlan, results: list[Result]) -> list[tuple[Any, ...]]:
    for key, descending, nulls_first in reversed(plan.order):

        def value(result: Result, key: Key = key) -> Any:
            return result[0][key[1]] if key[0] == "out" else result[1].get(key[1])

        present = [r for r in results if value(r) is not None]
        missing = [r for r in results if value(r) is None]
        present.sort(key=value, reverse=descending)
        results = missing + present if nulls_first else present + missing
    return [row for row, _ in results]


def _slice(found: Sequence[tuple[Any, ...]], plan: SelectPlan) -> list[tuple[Any, ...]]:
    end = None if plan.limit is None else plan.offset + plan.limit
    return list(found[plan.offset : end])
