"""An export's metrics, worked out a metric at a time for a whole chunk, agree with
SQL over the source files, pushed down or not, including for the customers with
several records of the member the relation hangs off."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.sql import SQLConnector, SQLOptions
from gateway.settings import LoadedSettings
from resolvers.export import columns, rows
from resolvers.model import UnifiedModel
from resolvers.view import Federation
from tests.e2e.test_metrics import _NoAggregates, expected, federation_of

NAMES = ["source_records", "lifetimeValue", "orderCount", "openTickets", "lastTicketAt"]
NAMES += ["openPipeline"]


async def _export(settings: LoadedSettings, pushdown: bool) -> list[dict[str, Any]]:
    model = settings.settings.model
    federation = federation_of(settings, pushdown)
    try:
        wanted = columns(model, "customers", NAMES)
        found = [row async for chunk in rows(federation, "customers", wanted) for row in chunk]
    finally:
        await federation.aclose()
    return [dict(zip(NAMES, row, strict=True)) for row in found]


def _as_graphql(row: dict[str, Any]) -> dict[str, Any]:
    """The row's metrics written as :func:`tests.e2e.test_metrics.expected` writes them."""
    last = row["lastTicketAt"]
    return {
        "lifetimeValue": f"{row['lifetimeValue']:.2f}",
        "orderCount": row["orderCount"],
        "openTickets": row["openTickets"],
        "lastTicketAt": last.isoformat() if last is not None else None,
        "openPipeline": f"{row['openPipeline']:.2f}",
    }


async def test_exported_metrics_match_sql_over_the_sources(
    demo_settings: LoadedSettings, demo_dir: Path
) -> None:
    for pushdown in (True, False):
        exported = await _export(demo_settings, pushdown)
        several = 0
        for at, row in enumerate(exported):
            refs = row["source_records"].split(";")
            tables = [r.rsplit("/", 1)[0] for r in refs]
            if len(set(tables)) == len(tables) and at % 5:
                continue  # every customer with several records of a table, a fifth of the rest
            assert _as_graphql(row) == expected(demo_dir, refs), (pushdown, refs)
            several += tables.count("sales/customers") > 1 and row["orderCount"] > 0
        # the combined path (a customer with several keys of one member) was taken
        assert several > 0, pushdown
        assert sum(r["orderCount"] > 0 for r in exported) > 100


def _small_model() -> UnifiedModel:
    mapping = {"fields": {"email": "email"}, "identity": {"mail": ["email"]}}
    return UnifiedModel.model_validate(
        {
            "customer": {
                "fields": {"email": {"normalize": "email"}},
                "members": [{"source": "db", "table": "people", **mapping}],
            },
            "identity": {"keys": {"mail": {"normalize": "email"}}},
            "relations": {
                "orders": {
                    "entity": "Order",
                    "source": "db",
                    "table": "orders",
                    "parent": {"member": "db.people", "column": "person_id"},
                    "fields": {"id": {"column": "id", "type": "id"}},
                }
            },
            "metrics": {
                "orderCount": {"relation": "orders", "fn": "count"},
                "spent": {"relation": "orders", "fn": "sum", "column": "total", "type": "decimal"},
                "meanTotal": {
                    "relation": "orders",
                    "fn": "avg",
                    "column": "total",
                    "type": "float",
                },
            },
        }
    )


@pytest.mark.parametrize("pushdown", [True, False], ids=["pushed", "in-memory"])
async def test_a_customer_with_three_records_has_the_metrics_of_all_three(
    tmp_path: Path, pushdown: bool
) -> None:
    path = tmp_path / "db.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, person_id INTEGER, total REAL);
        INSERT INTO people VALUES (1, 'ann@x.example'), (2, 'ANN@x.example'),
            (3, 'bob@x.example'), (4, ' ann@x.example'), (5, 'cy@x.example');
        INSERT INTO orders VALUES (10, 1, 1.5), (11, 2, 20), (12, 4, 300), (13, 4, 0.25),
            (14, 3, 7), (15, 9, 1000);
        """
    )
    con.commit()
    con.close()
    connector: Any = SQLConnector("db", SQLOptions(url=f"sqlite+aiosqlite:///{path}", timeout=5))
    if not pushdown:
        connector = _NoAggregates(connector)
    model = _small_model()
    federation = Federation(model, {"db": connector})
    names = ["source_records", "orderCount", "spent", "meanTotal"]
    try:
        wanted = columns(model, "customers", names)
        found = [row async for chunk in rows(federation, "customers", wanted) for row in chunk]
    finally:
        await federation.aclose()
    assert found == [
        # people 1, 2 and 4 are one customer: its second and third keys count too
        ("db/people/1;db/people/2;db/people/4", 4, Decimal("321.75"), 321.75 / 4),
        ("db/people/3", 1, Decimal("7.00"), 7.0),
        ("db/people/5", 0, Decimal("0.00"), None),
    ]
