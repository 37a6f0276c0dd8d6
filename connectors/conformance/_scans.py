"""Scans: every declared filter operator, sorting, keyset pagination and limits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args

import pytest

from connectors._base import Connector, Filter, FilterOp, Row, ScanRequest, Sort
from connectors.conformance import reference
from connectors.conformance._support import SuiteBase, collect, skip_unless
from connectors.conformance.planning import check_request_allowed, scan_problems
from connectors.errors import CustviewError, UnsupportedOperation

FILTER_OPS: tuple[str, ...] = get_args(FilterOp)
PAGE_SIZES = (1, 3, 7, 40, 100)
_ABSENT: dict[str, Any] = {
    "int": -999,
    "str": "no such value",
    "decimal": Decimal("-1.5"),
    "datetime": datetime(1999, 1, 1),
}


class ScanTests(SuiteBase):
    def filter_values(self, column: str, op: str) -> list[Any]:
        """Values worth filtering ``column`` by with ``op``, taken from the dataset."""
        kind = self.dataset.columns[column]
        present = [r[column] for r in self.dataset.rows if r[column] is not None]
        ordered = sorted(present, key=lambda v: reference.sort_key(v, kind, self.text_key))
        low, mid, high = ordered[0], ordered[len(ordered) // 2], ordered[-1]
        if op == "is_null":
            return [True, False]
        if op in ("contains", "startswith"):
            if kind != "str":
                return []
            sample = str(mid)
            part = sample[1:4] if op == "contains" else sample[:3]
            return [part, part.swapcase(), "%", "no-such-text"]
        if op == "in":
            return [[low, mid, _ABSENT[kind]], [high], []]
        values = [low, mid, high, _ABSENT[kind]]
        if kind == "str":
            values.append(str(mid).swapcase())
        return values

    async def check_scan(self, connector: Connector, filters: Sequence[Filter]) -> None:
        rows = await collect(connector, self.request(filters=list(filters)))
        self.assert_rows(rows, self.expected(filters))

    @pytest.mark.asyncio
    async def test_scan_returns_every_row_with_the_requested_columns(
        self, connector: Connector
    ) -> None:
        self.assert_rows(await collect(connector, self.request()), self.dataset.rows)
        narrow = ScanRequest(self.table, [self.key, "email"])
        self.assert_rows(await collect(connector, narrow), self.dataset.rows, [self.key, "email"])

    @pytest.mark.asyncio
    @pytest.mark.parametrize("op", FILTER_OPS)
    async def test_filter(self, connector: Connector, op: FilterOp) -> None:
        caps = self.caps(connector)
        columns = [c for c in self.columns if caps.can_filter(c, op)]
        skip_unless(bool(columns), f"the '{op}' filter on any column")
        tried = 0
        for column in columns:
            for value in self.filter_values(column, op):
                filters = [Filter(column, op, value)]
                rows = await collect(connector, self.request(filters=filters))
                try:
                    self.assert_rows(rows, self.expected(filters))
                except AssertionError as exc:
                    raise AssertionError(f"{column} {op} {value!r}: {exc}") from None
                tried += 1
        skip_unless(tried > 0, f"the '{op}' filter on a text column")

    @pytest.mark.asyncio
    async def test_filters_combine_with_and(self, connector: Connector) -> None:
        caps = self.caps(connector)
        skip_unless(
            caps.can_filter("country", "eq") and caps.can_filter("score", "ge"),
            "'eq' on 'country' and 'ge' on 'score'",
        )
        await self.check_scan(
            connector, [Filter("country", "eq", "US"), Filter("score", "ge", Decimal(2))]
        )

    @pytest.mark.asyncio
    @pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
    async def test_sort(self, connector: Connector, descending: bool) -> None:
        caps = self.caps(connector)
        skip_unless(caps.supports_sort, "sorting")
        columns = [c for c in self.columns if caps.can_sort(c)]
        skip_unless(bool(columns), "any sortable column")
        multi = caps.can_sort(self.key) and (caps.max_sort_columns or 2) >= 2
        for column in columns:
            order = [Sort(column, descending)]
            if multi and column != self.key:
                order.append(Sort(self.key))
            rows = await collect(connector, self.request(order_by=order))
            self.assert_rows(rows, self.dataset.rows)
            self.assert_sorted(rows, column, descending, tie_break=len(order) > 1)

    def assert_sorted(
        self, rows: Sequence[Row], column: str, descending: bool, tie_break: bool
    ) -> None:
        kind = self.dataset.columns[column]
        nulls = [i for i, r in enumerate(rows) if r[column] is None]
        if nulls:
            at_start = nulls == list(range(len(nulls)))
            at_end = nulls == list(range(len(rows) - len(nulls), len(rows)))
            assert at_start or at_end, f"NULLs of '{column}' are not together at one end"
        present = [r for r in rows if r[column] is not None]
        keys = [reference.sort_key(r[column], kind, self.text_key) for r in present]
        for i in range(1, len(present)):
            a, b = keys[i - 1], keys[i]
            ordered = a >= b if descending else a <= b
            assert ordered, (
                f"'{column}' out of order: {present[i - 1][column]!r}, {present[i][column]!r}"
            )
            if tie_break and a == b:
                first, second = self.keys_of([present[i - 1], present[i]])
                assert first < second, f"ties on '{column}' are not broken by '{self.key}'"

    def keyset_orders(self, connector: Connector) -> list[list[Sort]]:
        caps = self.caps(connector)
        orders = [[Sort(self.key)], [Sort(self.key, descending=True)]]
        if (caps.max_sort_columns or 2) >= 2:
            for column, descending in (("created_at", True), ("name", False)):
                if caps.can_sort(column):
                    orders.append([Sort(column, descending), Sort(self.key)])
        return [o for o in orders if all(caps.can_sort(s.column) for s in o)]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("page_size", PAGE_SIZES)
    async def test_keyset_pagination_has_no_gaps_or_repeats(
        self, connector: Connector, page_size: int
    ) -> None:
        caps = self.caps(connector)
        skip_unless(caps.supports_keyset and caps.supports_sort, "keyset pagination")
        skip_unless(caps.supports_limit, "limit (pages need one)")
        filter_sets: list[list[Filter]] = [[]]
        if caps.can_filter("score", "ge"):
            filter_sets.append([Filter("score", "ge", Decimal(2))])
        for order in self.keyset_orders(connector):
            for filters in filter_sets:
                whole = await collect(connector, self.request(order_by=order, filters=filters))
                pages = await self.walk_pages(connector, order, filters, page_size)
                assert self.keys_of(pages) == self.keys_of(whole), (
                    f"pages of {page_size} ordered by {order} differ from one scan"
                )
                self.assert_rows(pages, self.expected(filters))

    async def walk_pages(
        self, connector: Connector, order: list[Sort], filters: list[Filter], size: int
    ) -> list[Row]:
        seen: list[Row] = []
        after: list[Any] | None = None
        for _ in range(len(self.dataset.rows) + 2):
            request = self.request(order_by=order, filters=filters, limit=size, after=after)
            page = await collect(connector, request)
            assert len(page) <= size, f"a page of {size} returned {len(page)} rows"
            seen += page
            if len(page) < size:
                return seen
            after = [page[-1][s.column] for s in order]
        raise AssertionError("keyset pagination does not end")

    @pytest.mark.asyncio
    async def test_limit(self, connector: Connector) -> None:
        caps = self.caps(connector)
        skip_unless(caps.supports_limit, "limit")
        total = len(self.dataset.rows)
        order = [Sort(self.key)] if caps.can_sort(self.key) else []
        for limit in (0, 1, 5, total, total + 10):
            rows = await collect(connector, self.request(order_by=order, limit=limit))
            assert len(rows) == min(limit, total), f"limit {limit} gave {len(rows)} rows"
            if order:
                first = sorted(self.keys_of(self.dataset.rows))[:limit]
                assert self.keys_of(rows) == first

    @pytest.mark.asyncio
    async def test_undeclared_filters_are_refused(self, connector: Connector) -> None:
        caps = self.caps(connector)
        refused = [(c, op) for c in self.columns for op in FILTER_OPS if not caps.can_filter(c, op)]
        if not refused:
            pytest.skip("connector declares every filter operator on every column")
        for column, op in refused:
            value: Any = True if op == "is_null" else self.dataset.rows[0][column]
            if op == "in":
                value = [value]
            with pytest.raises(UnsupportedOperation):
                await collect(connector, self.request(filters=[Filter(column, op, value)]))  # type: ignore[arg-type]

    @pytest.mark.asyncio
    async def test_undeclared_sort_keyset_and_limit_are_refused(self, connector: Connector) -> None:
        caps = self.caps(connector)
        requests = []
        if not caps.supports_sort:
            requests.append(self.request(order_by=[Sort(self.key)]))
        else:
            requests += [
                self.request(order_by=[Sort(c)]) for c in self.columns if not caps.can_sort(c)
            ]
        if not caps.supports_keyset:
            requests.append(self.request(order_by=[Sort(self.key)], after=[1]))
        if not caps.supports_limit:
            requests.append(self.request(limit=1))
        if not requests:
            pytest.skip("connector declares sorting on every column, keyset and limit")
        for request in requests:
            with pytest.raises(UnsupportedOperation):
                await collect(connector, request)

    @pytest.mark.asyncio
    async def test_planner_check_follows_the_declared_capabilities(
        self, connector: Connector
    ) -> None:
        caps = self.caps(connector)
        for column in self.columns:
            for op in FILTER_OPS:
                request = self.request(filters=[Filter(column, op, None)])  # type: ignore[arg-type]
                declared = caps.can_filter(column, op)
                assert (scan_problems(caps, request) == []) is declared
                if not declared:
                    with pytest.raises(UnsupportedOperation):
                        check_request_allowed(caps, request, source=connector.name)
        paged = self.request(order_by=[Sort(self.key)], after=[1], limit=2)
        allowed = caps.supports_keyset and caps.can_sort(self.key) and caps.supports_limit
        assert (scan_problems(caps, paged) == []) is allowed

    @pytest.mark.asyncio
    async def test_scan_of_a_missing_table_fails_clearly(self, connector: Connector) -> None:
        with pytest.raises(CustviewError):
            await collect(connector, ScanRequest(self.missing_table, [self.key]))
