"""SQL forms of the lookup transforms, shared by queries and index DDL.

A source that wants its identity lookups indexed creates an expression
index on exactly these expressions (SQLite and PostgreSQL match expression
indexes structurally), e.g. ``Index("ix", transformed(t.c.email, "casefold"))``.
The constants are inlined, not bound: an index on ``replace(phone, ' ', '')``
does not match ``replace(phone, ?, ?)``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, func, literal
from sqlalchemy.sql.elements import ColumnElement

from connectors._base import LookupTransform

PHONE_SEPARATORS = (" ", "-", "(", ")", ".", "/", "+", "\t")
"""Removed from a phone column by the ``digits`` transform."""
BLANKS = ("\t", "\n", "\r")
"""Turned into spaces before trimming by the ``casefold`` transform."""


def _const(text: str) -> ColumnElement[Any]:
    # rendered inline when the statement runs, so it matches the index text
    return literal(text, String(), literal_execute=True)


def transformed(column: ColumnElement[Any], transform: LookupTransform) -> ColumnElement[Any]:
    """``column`` as the lookup ``transform`` compares it."""
    if transform == "exact":
        return column
    if transform == "casefold":
        expr: ColumnElement[Any] = column
        for blank in BLANKS:
            expr = func.replace(expr, _const(blank), _const(" "))
        return func.lower(func.trim(expr))
    if transform == "digits":
        expr = column
        for sep in PHONE_SEPARATORS:
            expr = func.replace(expr, _const(sep), _const(""))
        return expr
    raise ValueError(f"unknown lookup transform {transform!r}")
