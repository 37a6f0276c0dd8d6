"""Grouped aggregates (count, sum, min, max) against the reference."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from connectors._base import Aggregate, Connector, Filter
from connectors.conformance import reference
from connectors.conformance._support import SuiteBase, skip_unless
from connectors.errors import UnsupportedOperation

AGGREGATES = (
    Aggregate("count", None, "rows"),
    Aggregate("count", "score", "scored"),
    Aggregate("sum", "score", "total"),
    Aggregate("min", "score", "lowest"),
    Aggregate("max", "score", "highest"),
    Aggregate("min", "created_at", "first_seen"),
    Aggregate("max", "name", "last_name"),
)


class AggregateTests(SuiteBase):
    async def check_aggregate(
        self, connector: Connector, group_by: Sequence[str], filters: Sequence[Filter] = ()
    ) -> None:
        rows = await connector.aggregate(self.table, group_by, AGGREGATES, filters)
        expected = reference.aggregate(
            reference.select(self.dataset.rows, filters, self.dataset.columns, self.text_key),
            group_by,
            AGGREGATES,
            self.dataset.columns,
            self.text_key,
        )
        got: dict[tuple[Any, ...], Any] = {}
        for row in rows:
            assert set(row) == {*group_by, *(a.alias for a in AGGREGATES)}, sorted(row)
            key = tuple(
                None
                if row[g] is None
                else reference.sort_key(row[g], self.dataset.columns[g], self.text_key)
                for g in group_by
            )
            assert key not in got, f"group {key} appears twice"
            got[key] = row
        assert set(got) == set(expected), f"groups: got {sorted(got, key=str)}"
        for key, want in expected.items():
            for agg in AGGREGATES:
                self.assert_aggregate(agg, want[agg.alias], got[key][agg.alias], key)

    def assert_aggregate(self, agg: Aggregate, want: Any, value: Any, group: Any) -> None:
        where = f"{agg.fn}({agg.column or '*'}) for group {group}"
        if agg.fn == "count":
            assert int(value) == want, f"{where}: {value} != {want}"
        elif agg.fn == "sum":
            assert (value is None) == (want is None), f"{where}: {value} != {want}"
            if want is not None:
                assert abs(Decimal(str(value)) - want) < Decimal("1e-6"), (
                    f"{where}: {value} != {want}"
                )
        else:
            kind = self.dataset.columns[agg.column or self.key]
            assert (value is None) == (want is None), f"{where}: {value} != {want}"
            if want is not None:
                assert reference.sort_key(value, kind, self.text_key) == reference.sort_key(
                    want, kind, self.text_key
                ), f"{where}: {value!r} != {want!r}"

    @pytest.mark.asyncio
    async def test_aggregates_match_the_reference(self, connector: Connector) -> None:
        caps = self.caps(connector)
        skip_unless(caps.supports_aggregates, "aggregates")
        await self.check_aggregate(connector, [])
        await self.check_aggregate(connector, ["country"])
        if caps.can_filter("score", "gt"):
            await self.check_aggregate(connector, ["country"], [Filter("score", "gt", Decimal(1))])
            await self.check_aggregate(connector, [], [Filter("score", "gt", Decimal(1000))])

    @pytest.mark.asyncio
    async def test_undeclared_aggregates_are_refused(self, connector: Connector) -> None:
        if self.caps(connector).supports_aggregates:
            pytest.skip("connector declares aggregates: nothing to refuse")
        with pytest.raises(UnsupportedOperation):
            await connector.aggregate(self.table, ["country"], AGGREGATES)
