"""SQL ``WHERE`` clauses as planner filters (pushed down) plus an exact row check.

A condition becomes the planner's :mod:`resolvers.expr` filter where that
says the same thing, so the planner pushes it to the sources exactly as it
does ``customers(filter:)``. What the filter language cannot say exactly
(``LIKE`` patterns, SQL's ``NOT`` over ``NULL``, the customer id, rows of a
related table rather than customers having one) is pushed down as a wider
filter, and the rows that come back are checked against the clause in
memory with SQL's three-valued logic.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlglot import exp

from resolvers.export import CUSTOMERS
from resolvers.expr import And, Cond, Expr, FieldPred, Not, Or, RelationPred, holds
from resolvers.model import FieldType, UnifiedModel
from resolvers.sqlview.catalog import SqlColumn, SqlTable
from resolvers.sqlview.errors import SqlError

# -- the clause, parsed --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Atom:
    column: SqlColumn
    op: str
    """eq ne lt le gt ge in like ilike is_null"""
    value: Any


@dataclass(frozen=True, slots=True)
class Both:
    items: tuple[Pred, ...]


@dataclass(frozen=True, slots=True)
class Either:
    items: tuple[Pred, ...]


@dataclass(frozen=True, slots=True)
class Negated:
    item: Pred


Pred = Atom | Both | Either | Negated

_COMPARISONS: dict[type[exp.Expr], str] = {
    exp.EQ: "eq", exp.NEQ: "ne", exp.LT: "lt", exp.LTE: "le", exp.GT: "gt", exp.GTE: "ge",
}  # fmt: skip
_FLIPPED = {"eq": "eq", "ne": "ne", "lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}


def column_of(table: SqlTable, node: exp.Expr, where: str) -> SqlColumn:
    """The table's column a ``Column`` node names, or a located error."""
    if not isinstance(node, exp.Column):
        raise SqlError(f"{where}: expected a column of {table.name}, got {node.sql('postgres')}")
    found = table.column(node.name.lower() if not node.this.quoted else node.name)
    if found is None:
        raise SqlError(
            f'column "{node.name}" does not exist in {table.name} '
            f"(columns: {', '.join(c.name for c in table.columns)})",
            "42703",
        )
    return found


def literal(node: exp.Expr) -> Any:
    """A constant's Python value (strings stay strings; typing comes later)."""
    if isinstance(node, exp.Paren):
        return literal(node.this)
    if isinstance(node, exp.Cast):
        return literal(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Neg):
        value = literal(node.this)
        if isinstance(value, int | Decimal):
            return -value
    if isinstance(node, exp.RawString):
        return node.this
    if isinstance(node, exp.StrToTime | exp.StrToDate):
        return _to_timestamp(node)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if re.fullmatch(r"\d+", text) else Decimal(text)
    raise SqlError(
        f"only constants can be compared with a column, not {node.sql('postgres')}", "0A000"
    )


def _to_timestamp(node: exp.StrToTime | exp.StrToDate) -> dt.datetime | dt.date:
    """``TO_TIMESTAMP(text, format)`` / ``TO_DATE(text, format)`` of constants (BI
    tools' time bounds), read in the session's time zone, UTC."""
    value, form = literal(node.this), node.args.get("format")
    if form is None:
        raise SqlError(f"{node.sql('postgres')}: give the format", "42883")
    pattern = str(literal(form))
    try:
        parsed = dt.datetime.strptime(str(value), pattern)
    except ValueError:
        raise SqlError(
            f'invalid value "{value}" for the format of {node.sql("postgres")}', "22007"
        ) from None
    return parsed.date() if isinstance(node, exp.StrToDate) else parsed.replace(tzinfo=dt.UTC)


def typed(value: Any, type_: FieldType) -> Any:
    """A constant as a value of the column's type; ``22P02`` when it is not one."""
    if value is None:
        return None
    try:
        if type_ in ("string", "id"):
            return value if isinstance(value, str) else str(value)
        if type_ == "int":
            if isinstance(value, Decimal) and value != value.to_integral_value():
                raise ValueError
            return int(value)
        if type_ == "float":
            return float(value)
        if type_ == "decimal":
            return Decimal(str(value))
        if type_ == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("t", "true", "yes", "on", "1", "y"):
                return True
            if text in ("f", "false", "no", "off", "0", "n"):
                return False
            raise ValueError
        if type_ == "date":
            return dt.date.fromisoformat(str(value).strip()[:10])
        stamp = dt.datetime.fromisoformat(str(value).strip())
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    except (ValueError, InvalidOperation, ArithmeticError):
        raise SqlError(f'invalid input syntax for type {type_}: "{value}"', "22P02") from None


def parse_where(table: SqlTable, node: exp.Expr) -> Pred:
    """The clause as :data:`Pred`; anything but AND/OR/NOT, comparisons, IN, LIKE,
    BETWEEN and IS NULL between a column and constants is ``0A000``."""
    if isinstance(node, exp.Paren):
        return parse_where(table, node.this)
    if isinstance(node, exp.And):
        return Both((parse_where(table, node.this), parse_where(table, node.expression)))
    if isinstance(node, exp.Or):
        return Either((parse_where(table, node.this), parse_where(table, node.expression)))
    if isinstance(node, exp.Not):
        return Negated(parse_where(table, node.this))
    if type(node) in _COMPARISONS:
        op = _COMPARISONS[type(node)]
        left, right = node.this, node.expression
        if not isinstance(left, exp.Column) and isinstance(right, exp.Column):
            left, right, op = right, left, _FLIPPED[op]
        column = column_of(table, left, "WHERE")
        return Atom(column, op, typed(literal(right), column.type))
    if isinstance(node, exp.In):
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise SqlError("subqueries are not supported; list the values: IN ('a', 'b')", "0A000")
        column = column_of(table, node.this, "IN")
        values = tuple(typed(literal(v), column.type) for v in node.expressions)
        return _negate_if(node, Atom(column, "in", values))
    if isinstance(node, exp.Like | exp.ILike):
        column = column_of(table, node.this, "LIKE")
        pattern = literal(node.expression)
        if not isinstance(pattern, str):
            raise SqlError("LIKE needs a string pattern", "42883")
        op = "ilike" if isinstance(node, exp.ILike) else "like"
        return _negate_if(node, Atom(column, op, pattern))
    if isinstance(node, exp.Is):
        column = column_of(table, node.this, "IS")
        if not isinstance(node.expression, exp.Null):
            raise SqlError("only IS NULL and IS NOT NULL are supported", "0A000")
        return Atom(column, "is_null", not node.args.get("negate"))
    if isinstance(node, exp.Between):
        column = column_of(table, node.this, "BETWEEN")
        low = Atom(column, "ge", typed(literal(node.args["low"]), column.type))
        high = Atom(column, "le", typed(literal(node.args["high"]), column.type))
        return _negate_if(node, Both((low, high)))
    if isinstance(node, exp.Column):
        column = column_of(table, node, "WHERE")
        if column.type == "bool":
            return Atom(column, "eq", True)
    raise SqlError(
        f"unsupported condition: {node.sql('postgres')}; use comparisons, IN, LIKE, "
        "BETWEEN and IS NULL on columns, combined with AND, OR and NOT",
        "0A000",
    )


def _negate_if(node: exp.Expr, pred: Pred) -> Pred:
    return Negated(pred) if node.args.get("negate") else pred


def columns_of(pred: Pred) -> set[SqlColumn]:
    if isinstance(pred, Atom):
        return {pred.column}
    if isinstance(pred, Negated):
        return columns_of(pred.item)
    return {c for p in pred.items for c in columns_of(p)}


# -- pushed down -----------------------------------------------------------


def pushdown(model: UnifiedModel, table: SqlTable, pred: Pred) -> tuple[Expr | None, bool]:
    """The planner filter that selects at least the customers the clause needs
    (``None``: no narrowing), and whether it selects exactly the rows."""
    if isinstance(pred, Atom):
        return _atom(model, table, pred)
    if isinstance(pred, Negated):
        inner, exact = pushdown(model, table, pred.item)
        # the filter language's NOT keeps NULLs, SQL's drops them: wider, not exact
        if inner is None or not exact or table.export in model.relations:
            return None, False
        return Not(inner), False
    parts = [pushdown(model, table, p) for p in pred.items]
    exact = all(e for _, e in parts)
    exprs = [x for x, _ in parts if x is not None]
    if isinstance(pred, Either):
        if len(exprs) < len(parts):
            return None, False
        return Or(tuple(exprs)), exact
    exprs = _merge_relations(exprs)
    if not exprs:
        return None, False
    return (exprs[0] if len(exprs) == 1 else And(tuple(exprs))), exact


def _merge_relations(exprs: list[Expr]) -> list[Expr]:
    """Conditions on one related row, ANDed, are conditions on the same row."""
    out: list[Expr] = []
    merged: dict[str, int] = {}
    for item in exprs:
        if isinstance(item, RelationPred) and item.relation in merged:
            at = merged[item.relation]
            previous = out[at]
            assert isinstance(previous, RelationPred)
            out[at] = RelationPred(item.relation, previous.where + item.where)
            continue
        if isinstance(item, RelationPred):
            merged[item.relation] = len(out)
        out.append(item)
    return out


def _cond(atom: Atom) -> tuple[Cond | None, bool]:
    if atom.op == "is_null":
        return Cond("is_null", atom.value), True
    if atom.op == "in":
        values = [v for v in atom.value if v is not None]
        return Cond("in", values), len(values) == len(atom.value)
    if atom.op in ("like", "ilike"):
        return _like(atom.value, atom.op == "ilike")
    if atom.value is None:
        return None, False
    return Cond(atom.op, atom.value), True  # type: ignore[arg-type]


def _like(pattern: str, insensitive: bool) -> tuple[Cond | None, bool]:
    body = pattern.strip("%")
    if not body or re.search(r"[%_\\]", body):
        return None, False
    if pattern == body:
        return (None, False) if insensitive else (Cond("eq", body), True)
    if pattern == f"%{body}%":
        return Cond("contains", body), False
    if pattern == f"{body}%":
        return Cond("startswith", body), False
    return Cond("contains", body), False


def _atom(model: UnifiedModel, table: SqlTable, atom: Atom) -> tuple[Expr | None, bool]:
    cond, exact = _cond(atom)
    if cond is None:
        return None, False
    field = atom.column.field
    if table.export in model.relations:
        if field not in model.relations[table.export].fields:
            return None, False
        # customers having such a row: the rows themselves are checked afterwards
        return RelationPred(table.export, ((field, cond),)), False
    if field in model.customer.fields or field in model.metrics:
        return FieldPred(field, (cond,)), exact
    return None, False


def customer_ids(table: SqlTable, pred: Pred) -> list[str] | None:
    """The customer ids the clause requires (``id = ...``/``IN`` on ``customers`` or a
    view, ``customer_id`` on the others), ANDed at its top: those customers are
    looked up by id rather than searched for. ``None``: the clause names none."""
    key = "id" if table.export == CUSTOMERS else "customer_id"
    atoms = pred.items if isinstance(pred, Both) else (pred,)
    for atom in atoms:
        if isinstance(atom, Atom) and atom.column.field == key and atom.op in ("eq", "in"):
            values = atom.value if atom.op == "in" else (atom.value,)
            return [str(v) for v in values if v is not None]
    return None


# -- checked in memory -------------------------------------------------------

Check = Callable[[Mapping[str, Any]], bool | None]


def row_check(pred: Pred) -> Check:
    """The clause over one row (SQL column name -> value): True, False or None."""
    if isinstance(pred, Atom):
        return _atom_check(pred)
    if isinstance(pred, Negated):
        inner = row_check(pred.item)

        def negated(row: Mapping[str, Any]) -> bool | None:
            value = inner(row)
            return None if value is None else not value

        return negated
    checks = [row_check(p) for p in pred.items]
    if isinstance(pred, Both):

        def both(row: Mapping[str, Any]) -> bool | None:
            values = [c(row) for c in checks]
            return False if False in values else None if None in values else True

        return both

    def either(row: Mapping[str, Any]) -> bool | None:
        values = [c(row) for c in checks]
        return True if True in values else None if None in values else False

    return either


def _like_regex(pattern: str, insensitive: bool) -> re.Pattern[str]:
    out, escaped = "", False
    for char in pattern:
        if escaped:
            out += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out += ".*"
        elif char == "_":
            out += "."
        else:
            out += re.escape(char)
    return re.compile(out, re.DOTALL | (re.IGNORECASE if insensitive else 0))


def _atom_check(atom: Atom) -> Check:
    name = atom.column.name
    if atom.op == "is_null":
        return lambda row: (row.get(name) is None) == atom.value
    if atom.op in ("like", "ilike"):
        regex = _like_regex(atom.value, atom.op == "ilike")

        def like(row: Mapping[str, Any]) -> bool | None:
            value = row.get(name)
            return None if value is None else regex.fullmatch(str(value)) is not None

        return like
    if atom.op == "in":
        present = [v for v in atom.value if v is not None]
        has_null = len(present) < len(atom.value)

        def within(row: Mapping[str, Any]) -> bool | None:
            value = row.get(name)
            if value is None:
                return None
            if holds(value, Cond("in", present)):
                return True
            return None if has_null else False

        return within
    cond = Cond(atom.op, atom.value)  # type: ignore[arg-type]

    def compare(row: Mapping[str, Any]) -> bool | None:
        value = row.get(name)
        if value is None or atom.value is None:
            return None
        return holds(value, cond)

    return compare
