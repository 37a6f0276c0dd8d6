"""The conformance suite's own parts: the planner check, the reference, the
dataset, and the suite against a deliberately limited in-memory connector
(so the "refuse what is not declared" tests run) and a broken one (so the
suite is seen to fail)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from connectors import (
    Aggregate,
    Capabilities,
    Connector,
    ConnectorOptions,
    Filter,
    Health,
    LookupTransform,
    Row,
    ScanRequest,
    Sort,
    UnsupportedOperation,
)
from connectors.conformance import (
    DATASET,
    ConnectorConformance,
    check_aggregate_allowed,
    check_request_allowed,
    reference,
    scan_problems,
)
from connectors.errors import SchemaMismatch

LIMITED = Capabilities(
    supports_batch_lookup=True,
    supports_sort=True,
    supports_keyset=False,
    supports_limit=True,
    supports_aggregates=False,
    filter_operators=frozenset({"eq", "in"}),
    column_filter_operators={"name": frozenset({"startswith"}), "score": frozenset()},
    sortable_columns=frozenset({"id", "created_at"}),
    lookup_columns=frozenset({"id"}),
    max_sort_columns=1,
)


class MemoryConnector(Connector):
    """Serves DATASET from memory and refuses everything LIMITED does not declare."""

    kind = "memory"

    def __init__(self) -> None:
        super().__init__("memory", ConnectorOptions(timeout=1))
        self.rows = list(DATASET.rows)

    @property
    def capabilities(self) -> Capabilities:
        return LIMITED

    async def lookup_many(
        self,
        table: str,
        column: str,
        keys: Sequence[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[list[Row]]:
        if not LIMITED.can_lookup(column, transform):
            raise UnsupportedOperation(f"no lookups on '{column}'", source=self.name)
        await asyncio.sleep(0)
        return [[self._pick(r, columns) for r in self.rows if r[column] == k] for k in keys]

    async def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        check_request_allowed(LIMITED, request, source=self.name)
        if request.table != DATASET.table:
            raise SchemaMismatch("no such table", source=self.name, table=request.table)
        rows = reference.select(self.rows, request.filters, DATASET.columns, str)
        for sort in reversed(request.order_by):
            rows.sort(key=lambda r, c=sort.column: r[c], reverse=sort.descending)
        for row in rows[: request.limit]:
            await asyncio.sleep(0)
            yield self._pick(row, request.columns)

    @staticmethod
    def _pick(row: Row, columns: Sequence[str]) -> Row:
        return {c: row[c] for c in columns}

    async def health(self, tables: Sequence[str] = ()) -> Health:
        return Health(ok=True, tables={t: t == DATASET.table for t in tables})

    async def aclose(self) -> None:
        self.rows = list(DATASET.rows)


@pytest.fixture
async def connector() -> AsyncIterator[Connector]:
    conn = MemoryConnector()
    yield conn
    await conn.aclose()


class TestLimitedMemoryConnector(ConnectorConformance):
    """Everything undeclared is refused; what is declared passes."""


# --- the planner's check ---------------------------------------------------------------


def test_declared_requests_pass_the_planner_check() -> None:
    request = ScanRequest(
        "people",
        ["id"],
        filters=[Filter("country", "eq", "US"), Filter("name", "startswith", "An")],
        order_by=[Sort("created_at", descending=True)],
        limit=10,
    )
    assert scan_problems(LIMITED, request) == []
    check_request_allowed(LIMITED, request)


def test_every_undeclared_part_is_named() -> None:
    request = ScanRequest(
        "people",
        ["id"],
        filters=[Filter("score", "eq", 1), Filter("name", "eq", "Ana")],
        order_by=[Sort("name"), Sort("id")],
        after=["Ana", 1],
    )
    with pytest.raises(UnsupportedOperation) as caught:
        check_request_allowed(LIMITED, request, source="crm")
    message = caught.value.message
    assert caught.value.source == "crm"
    for part in (
        "filter 'eq' on 'score'",
        "filter 'eq' on 'name'",
        "sorting by 'name'",
        "at most 1 sort column",
        "keyset pagination",
    ):
        assert part in message


def test_sort_and_limit_refused_when_not_declared() -> None:
    bare = Capabilities(supports_sort=False, supports_limit=False)
    request = ScanRequest("t", ["id"], order_by=[Sort("id")], limit=1)
    assert scan_problems(bare, request) == ["sorting is not supported", "limit is not supported"]


def test_aggregates_need_the_flag_and_declared_filters() -> None:
    agg = [Aggregate("count", None, "n")]
    with pytest.raises(UnsupportedOperation, match="aggregates are not supported"):
        check_aggregate_allowed(LIMITED, "people", agg)
    able = Capabilities(supports_aggregates=True, filter_operators=frozenset({"eq"}))
    check_aggregate_allowed(able, "people", agg, [Filter("country", "eq", "US")])
    with pytest.raises(UnsupportedOperation, match="filter 'gt' on 'score'"):
        check_aggregate_allowed(able, "people", agg, [Filter("score", "gt", 1)])


def test_filtered_aggregates_need_their_own_flag_and_declared_filters() -> None:
    paid = [Aggregate("sum", "score", "s", where=[Filter("country", "eq", "US")])]
    able = Capabilities(supports_aggregates=True, filter_operators=frozenset({"eq"}))
    with pytest.raises(UnsupportedOperation, match="aggregates with their own where"):
        check_aggregate_allowed(able, "people", paid)
    filtered = replace(able, supports_filtered_aggregates=True)
    check_aggregate_allowed(filtered, "people", paid)
    late = [Aggregate("count", None, "n", where=[Filter("score", "gt", 1)])]
    with pytest.raises(UnsupportedOperation, match="filter 'gt' on 'score'"):
        check_aggregate_allowed(filtered, "people", late)


def test_the_planner_check_imports_without_the_suite() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from connectors.conformance import check_request_allowed, DATASET\n"
        "print(len(DATASET.rows))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "40"


# --- the dataset and the reference ------------------------------------------------------


def test_the_dataset_has_the_noise_it_promises() -> None:
    rows = DATASET.rows
    assert len(rows) == 40
    assert len({r["id"] for r in rows}) == 40
    for column in DATASET.nullable:
        assert any(r[column] is None for r in rows), column
    emails = [r["email"].strip().lower() for r in rows if r["email"]]
    assert len(emails) > len(set(emails)), "duplicate emails up to case"
    assert any(r["name"].isupper() for r in rows) and any(r["name"].islower() for r in rows)
    assert len({r["created_at"] for r in rows}) < 40, "ties in created_at"
    text = DATASET.as_text_rows()
    assert text[2]["score"] == "" and text[3]["score"] == str(rows[3]["score"])
    assert text[3]["created_at"] == "2024-01-02 00:00:00"


def test_reference_filters_follow_sql_null_semantics() -> None:
    row: Row = {"country": None, "name": "Ana"}
    kinds: dict[str, Any] = {"country": "str", "name": "str"}
    for op in ("eq", "ne", "lt", "in", "contains"):
        value: Any = ["US"] if op == "in" else "US"
        assert not reference.matches(row, Filter("country", op, value), kinds["country"], str)
    assert reference.matches(row, Filter("country", "is_null", True), "str", str)
    assert reference.matches(row, Filter("name", "contains", "NA"), "str", str)
    assert not reference.matches(row, Filter("name", "contains", "NA"), "str", str, False)


def test_reference_compares_values_loosely_by_type() -> None:
    assert reference.same(Decimal("1.5"), 1.5, "decimal")
    assert reference.same(DATASET.rows[0]["created_at"], "2024-01-01 05:00:00", "datetime")
    assert not reference.same("a", "A", "str")


# --- the suite fails a broken connector ---------------------------------------------------


class BrokenLookups(MemoryConnector):
    async def lookup_many(
        self,
        table: str,
        column: str,
        keys: Sequence[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[list[Row]]:
        found = await super().lookup_many(table, column, sorted(set(keys), key=str), columns)
        return [rows for rows in found if rows]  # drops missing keys, loses key order


class SilentFilters(MemoryConnector):
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(filter_operators=frozenset({"eq", "in"}), supports_keyset=False)

    async def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        for row in self.rows[: request.limit]:  # ignores every filter
            yield {c: row[c] for c in request.columns}


async def test_the_suite_catches_a_broken_dataloader_contract() -> None:
    suite = TestLimitedMemoryConnector()
    with pytest.raises(AssertionError, match="one list per key"):
        await suite.test_lookup_returns_one_list_per_key_in_key_order(BrokenLookups())


async def test_the_suite_catches_ignored_filters() -> None:
    suite = TestLimitedMemoryConnector()
    with pytest.raises(AssertionError, match="id eq 1: rows by id"):
        await suite.test_filter(SilentFilters(), "eq")
