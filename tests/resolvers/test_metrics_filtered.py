"""A relation's metrics with different ``where`` filters are one grouped statement when
the source declares filtered aggregates; each customer's values are those of a
statement per ``where`` (a source without the flag) and of rows folded in memory (a
source without aggregates), on every engine, whether a customer's rows pass a
metric's ``where`` all, some, none, or only through NULLs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from connectors import Capabilities, Connector
from connectors.sql import SQLConnector, SQLOptions
from resolvers import metrics
from resolvers.model import (
    EntityFieldSpec,
    FilterSpec,
    MetricSpec,
    ParentSpec,
    RelationSpec,
)
from tests.connectors.test_sql_filtered_aggregates import orders_url

__all__ = ["orders_url"]  # the module fixture: the orders table on every engine

RELATION = RelationSpec(
    entity="Order",
    source="shop_db",
    table="orders",
    parent=ParentSpec(member="shop_db.owners", column="owner"),
    fields={"id": EntityFieldSpec(column="id", type="int")},
)
PAID = [FilterSpec(column="status", op="in", value=["paid", "fulfilled"])]
METRICS = {
    "spent": MetricSpec(relation="orders", fn="sum", column="total", type="decimal", where=PAID),
    "paidOrders": MetricSpec(relation="orders", fn="count", where=PAID),
    "orders": MetricSpec(relation="orders", fn="count"),
    "lastOrderAt": MetricSpec(relation="orders", fn="max", column="created_at", type="datetime"),
    "kept": MetricSpec(
        relation="orders",
        fn="count",
        where=[FilterSpec(column="status", op="ne", value="refunded")],
    ),
    "averagePaid": MetricSpec(
        relation="orders",
        fn="avg",
        column="total",
        type="float",
        where=[FilterSpec(column="status", op="eq", value="paid")],
    ),
    "leastUnknown": MetricSpec(
        relation="orders",
        fn="min",
        column="total",
        type="decimal",
        where=[FilterSpec(column="status", op="is_null", value=True)],
    ),
    "bigPaid": MetricSpec(
        relation="orders",
        fn="max",
        column="total",
        type="decimal",
        where=[
            FilterSpec(column="status", op="eq", value="paid"),
            FilterSpec(column="total", op="gt", value=4),
        ],
    ),
    "nothing": MetricSpec(
        relation="orders",
        fn="sum",
        column="total",
        type="decimal",
        where=[FilterSpec(column="status", op="eq", value="nothing")],
    ),
}
CUSTOMERS = [[1], [2], [3], [4], [5], [6], [1, 3], [2, 4, 5], [5, 6], []]
"""Each customer's owner keys (see the orders' rows: 1 all paid, 2 some, 3 none, 4 a
NULL status only, 5 no rows, 6 paid with NULL totals)."""


class _Declaring:
    """The connector, declaring less: no filtered aggregates, or no aggregates."""

    def __init__(self, inner: SQLConnector, **declared: bool) -> None:
        self.inner = inner
        self.declared = declared

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def capabilities_for(self, table: str) -> Capabilities:
        return replace(self.inner.capabilities_for(table), **self.declared)


@pytest.fixture()
async def connector(orders_url: str) -> AsyncIterator[SQLConnector]:
    conn = SQLConnector("shop_db", SQLOptions(url=orders_url, timeout=5))
    yield conn
    await conn.aclose()


async def _values(connector: Any) -> tuple[dict[str, list[Any]], dict[str, list[Any]], int]:
    """Each metric per customer, through :func:`metrics.compute` (GraphQL's way) and
    :func:`metrics.compute_columns` (an export's), and the statements they took."""
    keys = list(dict.fromkeys(k for ks in CUSTOMERS for k in ks))
    before = connector.statements
    partials = await metrics.compute(connector, RELATION, METRICS, keys)
    found = dict(zip(keys, partials, strict=True))
    one_by_one = {
        name: [metrics.combine(spec, [found[k].get(name) for k in ks]) for ks in CUSTOMERS]
        for name, spec in METRICS.items()
    }
    columns = await metrics.compute_columns(connector, RELATION, METRICS, keys)
    owners = metrics.Owners.of(CUSTOMERS)
    by_column = {
        name: metrics.combine_column(spec, owners, columns[name]) for name, spec in METRICS.items()
    }
    return one_by_one, by_column, connector.statements - before


async def test_one_statement_gives_each_customer_what_one_per_where_gives(
    connector: SQLConnector,
) -> None:
    merged, merged_columns, statements = await _values(connector)
    separate, separate_columns, separately = await _values(
        _Declaring(connector, supports_filtered_aggregates=False)
    )
    folded, folded_columns, _ = await _values(_Declaring(connector, supports_aggregates=False))
    assert statements == 2, "one statement for compute, one for compute_columns"
    assert separately == 2 * len({metrics.where_key(m) for m in METRICS.values()})
    for name in METRICS:
        for got in (merged[name], merged_columns[name], separate_columns[name]):
            assert got == separate[name], name
            assert [type(v) for v in got] == [type(v) for v in separate[name]], name
        assert folded[name] == folded_columns[name] == separate[name], name
    assert merged["spent"][:3] == [Decimal("12.75"), Decimal("5.00"), Decimal("0.00")]
    assert merged["paidOrders"] == [2, 2, 0, 0, 0, 2, 2, 2, 2, 0]
    assert merged["kept"] == [2, 2, 0, 0, 0, 2, 2, 2, 2, 0]
    assert merged["leastUnknown"][:6] == [None, 3, None, 4, None, None]
    assert merged["nothing"] == [0] * len(CUSTOMERS)
    assert merged["averagePaid"][5] is None  # paid rows, but no totals


async def test_a_loader_of_one_metric_loads_its_statement_s_metrics(
    connector: SQLConnector,
) -> None:
    """GraphQL's loader of a metric computes what the same statement computes: every
    pushed metric of the relation, or only those sharing its ``where`` without the flag."""
    with_flag = metrics.computed_with(connector, RELATION, METRICS, "orders")
    assert list(with_flag) == list(METRICS)
    plain: Connector = _Declaring(connector, supports_filtered_aggregates=False)  # type: ignore[assignment]
    assert list(metrics.computed_with(plain, RELATION, METRICS, "spent")) == ["spent", "paidOrders"]
    assert list(metrics.computed_with(plain, RELATION, METRICS, "orders")) == [
        "orders",
        "lastOrderAt",
    ]
