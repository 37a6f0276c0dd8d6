"""Computed metrics agree with SQL over the source files, pushed down or not."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors import Capabilities, Connector
from gateway.settings import LoadedSettings
from resolvers.schema import build_schema
from resolvers.view import Federation
from tests.e2e.test_batching import statements_by_table

QUERY = """query($first: Int!) { customers(first: $first) { nodes {
    sourceRecords { ref } lifetimeValue orderCount openTickets lastTicketAt openPipeline } } }"""


def _keys(refs: list[str], prefix: str) -> list[int]:
    return [int(r.rsplit("/", 1)[1]) for r in refs if r.startswith(prefix)]


def _scalar(db: Path, sql: str, keys: list[int]) -> Any:
    if not keys:
        return None
    con = sqlite3.connect(db)
    value = con.execute(sql.format(",".join("?" * len(keys))), keys).fetchone()[0]
    con.close()
    return value


def expected(demo_dir: Path, refs: list[str]) -> dict[str, Any]:
    shoppers = _keys(refs, "sales/customers/")
    users = _keys(refs, "support/users/")
    contacts = _keys(refs, "crm/contacts/")
    ltv = _scalar(
        demo_dir / "sales.db",
        "SELECT sum(total) FROM orders WHERE customer_id IN ({}) "
        "AND status IN ('paid', 'fulfilled')",
        shoppers,
    )
    pipeline = _scalar(
        demo_dir / "crm.db",
        "SELECT sum(amount) FROM opportunities WHERE contact_id IN ({}) AND stage IN "
        "('prospecting', 'qualification', 'proposal', 'negotiation')",
        contacts,
    )
    last = _scalar(
        demo_dir / "support.db",
        "SELECT max(created_at) FROM tickets WHERE requester_id IN ({})",
        users,
    )
    return {
        "lifetimeValue": f"{Decimal(str(ltv or 0)):.2f}",
        "orderCount": _scalar(
            demo_dir / "sales.db", "SELECT count(*) FROM orders WHERE customer_id IN ({})", shoppers
        )
        or 0,
        "openTickets": _scalar(
            demo_dir / "support.db",
            "SELECT count(*) FROM tickets WHERE requester_id IN ({}) "
            "AND status IN ('new', 'open', 'pending', 'hold')",
            users,
        )
        or 0,
        "lastTicketAt": last.replace(" ", "T") + "+00:00" if last else None,
        "openPipeline": f"{Decimal(str(pipeline or 0)):.2f}",
    }


class _NoAggregates:
    """A source that cannot aggregate: metrics must fall back to memory."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def capabilities_for(self, table: str) -> Capabilities:
        return replace(self.inner.capabilities_for(table), supports_aggregates=False)

    async def aggregate(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("aggregate must not be called when it is not declared")


class _NoFilteredAggregates(_NoAggregates):
    """A source that aggregates, but not with a ``where`` per aggregate."""

    def capabilities_for(self, table: str) -> Capabilities:
        return replace(self.inner.capabilities_for(table), supports_filtered_aggregates=False)

    async def aggregate(self, *args: Any, **kwargs: Any) -> Any:
        assert not any(a.where for a in args[2]), "a where per aggregate, undeclared"
        return await self.inner.aggregate(*args, **kwargs)


def federation_of(settings: LoadedSettings, pushdown: bool) -> Federation:
    """The settings' federation; without ``pushdown`` no source aggregates."""
    connectors: dict[str, Any] = settings.create_connectors()
    if not pushdown:
        connectors = {name: _NoAggregates(c) for name, c in connectors.items()}
    return Federation(settings.settings.model, connectors)


async def _run(settings: LoadedSettings, pushdown: bool) -> list[dict[str, Any]]:
    model = settings.settings.model
    federation = federation_of(settings, pushdown)
    try:
        result = await build_schema(model).execute(
            QUERY, variable_values={"first": 120}, context_value={"view": federation.request()}
        )
    finally:
        await federation.aclose()
    assert result.errors is None, result.errors
    return result.data["customers"]["nodes"]  # type: ignore[index,no-any-return]


async def test_metrics_match_sql_over_the_sources(
    demo_settings: LoadedSettings, demo_dir: Path
) -> None:
    for pushdown in (True, False):
        nodes = await _run(demo_settings, pushdown)
        with_orders = 0
        for node in nodes:
            refs = [r["ref"] for r in node.pop("sourceRecords")]
            assert node == expected(demo_dir, refs), (pushdown, refs)
            with_orders += node["orderCount"] > 0
        assert with_orders > 20


async def test_a_relation_s_metrics_are_one_statement_when_the_source_filters_each(
    demo_settings: LoadedSettings, demo_dir: Path
) -> None:
    """GraphQL's metrics of one relation with different ``where`` filters (orders:
    lifetimeValue's paid ones, orderCount's all; tickets likewise) are one statement
    per relation, with the values of a statement per ``where``."""
    model = demo_settings.settings.model
    counts = []
    for filtered in (True, False):
        connectors: dict[str, Any] = demo_settings.create_connectors()
        if not filtered:
            connectors = {name: _NoFilteredAggregates(c) for name, c in connectors.items()}
        federation = Federation(model, connectors)
        try:
            with statements_by_table(federation) as seen:
                result = await build_schema(model).execute(
                    QUERY,
                    variable_values={"first": 120},
                    context_value={"view": federation.request()},
                )
        finally:
            await federation.aclose()
        assert result.errors is None, result.errors
        for node in result.data["customers"]["nodes"]:  # type: ignore[index]
            refs = [r["ref"] for r in node.pop("sourceRecords")]
            assert node == expected(demo_dir, refs), (filtered, refs)
        counts.append((seen["sales.orders"], seen["support.tickets"]))
    assert counts == [(1, 1), (2, 2)], counts
