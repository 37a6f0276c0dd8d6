"""SQL WHERE clauses become the planner's filters: exact where the filter language
says the same thing, wider (and re-checked row by row) where it cannot."""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot

from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.expr import Cond, FieldPred, Not, Or, RelationPred
from resolvers.model import UnifiedModel
from resolvers.sqlview import SqlError, build_catalog
from resolvers.sqlview.where import parse_where, pushdown, row_check


@pytest.fixture(scope="module")
def model() -> UnifiedModel:
    return load_settings(DEMO_CONFIG).settings.model


def _where(model: UnifiedModel, table: str, clause: str) -> tuple[Any, bool, Any]:
    select = sqlglot.parse_one(f"SELECT * FROM {table} WHERE {clause}", read="postgres")
    pred = parse_where(build_catalog(model)[table], select.args["where"].this)
    expr, exact = pushdown(model, build_catalog(model)[table], pred)
    return expr, exact, row_check(pred)


def test_comparisons_and_in_are_exact_planner_filters(model: UnifiedModel) -> None:
    expr, exact, _ = _where(model, "customers", "country IN ('DE', 'GB') AND order_count >= 1")
    assert exact
    assert expr.items == (
        FieldPred("country", (Cond("in", ["DE", "GB"]),)),
        FieldPred("orderCount", (Cond("ge", 1),)),
    )
    expr, exact, _ = _where(model, "customers", "country = 'DE' OR lifetime_value IS NULL")
    assert exact and isinstance(expr, Or)


def test_like_is_pushed_wider_and_checked_exactly(model: UnifiedModel) -> None:
    expr, exact, check = _where(model, "customers", "email LIKE '%Gmail%'")
    assert expr == FieldPred("email", (Cond("contains", "Gmail"),))  # case-insensitive
    assert not exact
    assert check({"email": "a@Gmail.com"}) is True
    assert check({"email": "a@gmail.com"}) is False  # LIKE is case-sensitive
    assert check({"email": None}) is None


def test_not_keeps_sqls_null_logic(model: UnifiedModel) -> None:
    expr, exact, check = _where(model, "customers", "NOT country = 'DE'")
    assert isinstance(expr, Not) and not exact
    assert check({"country": "FR"}) is True
    assert check({"country": None}) is None  # SQL drops it; the filter language keeps it


def test_related_rows_narrow_customers_then_rows(model: UnifiedModel) -> None:
    expr, exact, check = _where(model, "tickets", "status = 'open' AND priority = 'high'")
    assert expr == RelationPred(
        "tickets", (("status", Cond("eq", "open")), ("priority", Cond("eq", "high")))
    )
    assert not exact, "customers with such a ticket: their other tickets are checked out"
    assert check({"status": "open", "priority": "low"}) is False


def test_what_the_planner_cannot_say_is_not_pushed(model: UnifiedModel) -> None:
    expr, exact, check = _where(model, "customers", "id = 'cus_x' OR country = 'DE'")
    assert expr is None and not exact
    assert check({"id": "cus_y", "country": "DE"}) is True


@pytest.mark.parametrize(
    ("clause", "sqlstate"),
    [
        ("upper(country) = 'DE'", "42601"),
        ("country = city", "0A000"),
        ("shoe_size = 42", "42703"),
        ("created_at > 'soon'", "22P02"),
        ("country IN (SELECT 1)", "0A000"),
        ("order_count + 1 > 2", "42601"),
    ],
)
def test_unsupported_conditions_are_located_errors(
    model: UnifiedModel, clause: str, sqlstate: str
) -> None:
    with pytest.raises(SqlError) as caught:
        _where(model, "customers", clause)
    assert caught.value.sqlstate == sqlstate
