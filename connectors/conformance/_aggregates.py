"""Grouped aggregates (count, sum, min, max), filtered or not, against the reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
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
        self,
        connector: Connector,
        group_by: Sequence[str],
        filters: Sequence[Filter] = (),
        aggregates: Sequence[Aggregate] = AGGREGATES,
    ) -> None:
        rows = await connector.aggregate(self.table, group_by, aggregates, filters)
        expected = reference.aggregate(
            reference.select(self.dataset.rows, filters, self.dataset.columns, self.text_key),
            group_by,
            aggregates,
            self.dataset.columns,
            self.text_key,
        )
        got: dict[tuple[Any, ...], Any] = {}
        for row in rows:
            assert set(row) == {*group_by, *(a.alias for a in aggregates)}, sorted(row)
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
            for agg in aggregates:
                self.assert_aggregate(agg, want[agg.alias], got[key][agg.alias], key)

    def assert_aggregate(self, agg: Aggregate, want: Any, value: Any, group: Any) -> None:
        where = f"{agg.fn}({agg.column or '*'}) where {list(agg.where)} for group {group}"
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
    async def test_filtered_aggregates_match_the_reference(self, connector: Connector) -> None:
        caps = self.caps(connector)
        skip_unless(caps.supports_filtered_aggregates, "filtered aggregates")
        wheres: list[list[Filter]] = [
            [Filter("country", "eq", "US")],  # some rows; NULL countries never pass
            [Filter("country", "in", ["US", "GB"]), Filter("score", "ge", Decimal(2))],
            [Filter("score", "gt", Decimal(1000))],  # none
            [Filter("id", "ge", 1)],  # all
            [Filter("country", "is_null", True)],
            [Filter("country", "ne", "US")],  # NULL countries do not pass either
        ]
        usable = [w for w in wheres if all(caps.can_filter(f.column, f.op) for f in w)]
        if not usable:
            pytest.skip("the connector declares none of the filters this test uses")
        aggregates = [
            replace(agg, alias=f"{agg.alias}_{i}", where=where)
            for i, where in enumerate(usable)
            for agg in AGGREGATES
        ]
        aggregates.append(Aggregate("count", None, "unfiltered"))
        await self.check_aggregate(connector, [], aggregates=aggregates)
        await self.check_aggregate(connector, ["country"], aggregates=aggregates)
        if caps.can_filter("score", "gt"):
            over_one = [Filter("score", "gt", Decimal(1))]
            await self.check_aggregate(connector, ["country"], over_one, aggregates)

    @pytest.mark.asyncio
    async def test_undeclared_aggregates_are_refused(self, connector: Connector) -> None:
        if self.caps(connector).supports_aggregates:
            pytest.skip("connector declares aggregates: nothing to refuse")
        with pytest.raises(UnsupportedOperation):
            await connector.aggregate(self.table, ["country"], AGGREGATES)
