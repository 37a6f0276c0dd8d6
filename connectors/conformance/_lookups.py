"""Batched key lookups and the DataLoader contract: one list per key, in key order."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from connectors._base import Connector, KeyLookup, LookupTransform, Row
from connectors.conformance import reference
from connectors.conformance._support import SuiteBase, skip_unless
from connectors.errors import UnsupportedOperation

TRANSFORMS: tuple[LookupTransform, ...] = ("exact", "casefold", "digits")
_FOLD: dict[str, Callable[[str], str]] = {
    "exact": lambda v: v,
    "casefold": lambda v: v.strip().lower(),
    "digits": lambda v: re.sub(r"[ \-().+/]", "", v),
}


class LookupTests(SuiteBase):
    def expected_lookup(
        self, column: str, keys: Sequence[Any], transform: str = "exact"
    ) -> list[list[Row]]:
        kind = self.dataset.columns[column]
        fold = _FOLD[transform]

        def key_of(value: Any) -> Any:
            if isinstance(value, str):
                folded = fold(value)
                return self.text_key(folded) if transform == "exact" else folded
            return reference.normalize(value, kind)

        return [
            []
            if k is None
            else [
                r
                for r in self.dataset.rows
                if r[column] is not None and key_of(r[column]) == key_of(k)
            ]
            for k in keys
        ]

    async def check_lookup(
        self,
        connector: Connector,
        column: str,
        keys: Sequence[Any],
        transform: LookupTransform = "exact",
        columns: Sequence[str] | None = None,
    ) -> None:
        wanted = list(columns or self.columns)
        result = await connector.lookup_many(self.table, column, keys, wanted, transform)
        assert isinstance(result, list)
        assert len(result) == len(keys), "one list per key (the DataLoader contract)"
        for key, rows, expected in zip(
            keys, result, self.expected_lookup(column, keys, transform), strict=True
        ):
            assert isinstance(rows, list), f"key {key!r}: a list of rows, got {type(rows)}"
            self.assert_rows(rows, expected, wanted)

    @pytest.mark.asyncio
    async def test_lookup_returns_one_list_per_key_in_key_order(self, connector: Connector) -> None:
        skip_unless(self.caps(connector).can_lookup(self.key), f"lookups on '{self.key}'")
        await self.check_lookup(connector, self.key, [5, 999, 1, 5, 40, -1, 3])

    @pytest.mark.asyncio
    async def test_lookup_of_no_keys_and_null_keys(self, connector: Connector) -> None:
        skip_unless(self.caps(connector).can_lookup(self.key), f"lookups on '{self.key}'")
        assert await connector.lookup_many(self.table, self.key, [], self.columns) == []
        await self.check_lookup(connector, self.key, [None, 2, None])

    @pytest.mark.asyncio
    async def test_lookup_returns_every_row_sharing_a_key(self, connector: Connector) -> None:
        skip_unless(self.caps(connector).can_lookup("email"), "lookups on 'email'")
        by_key = self.dataset.by_key()
        keys = [by_key[2]["email"], "nobody@example.com", by_key[1]["email"], by_key[2]["email"]]
        await self.check_lookup(connector, "email", keys)

    @pytest.mark.asyncio
    async def test_lookup_returns_exactly_the_requested_columns(self, connector: Connector) -> None:
        skip_unless(self.caps(connector).can_lookup(self.key), f"lookups on '{self.key}'")
        await self.check_lookup(connector, self.key, [3, 4], columns=[self.key, "name"])

    @pytest.mark.asyncio
    async def test_lookup_splits_batches_beyond_max_batch_size(self, connector: Connector) -> None:
        caps = self.caps(connector)
        skip_unless(caps.can_lookup(self.key), f"lookups on '{self.key}'")
        count = min(caps.max_batch_size * 2 + 1, 3000)
        keys = list(range(count, 0, -1))
        await self.check_lookup(connector, self.key, keys, columns=[self.key, "email"])

    @pytest.mark.asyncio
    async def test_lookup_casefold(self, connector: Connector) -> None:
        skip_unless(self.caps(connector).can_lookup("email", "casefold"), "casefold lookups")
        keys = ["ben.jones1@example.com", "dev.khan21@example.com", "nobody@example.com"]
        await self.check_lookup(connector, "email", keys, "casefold")

    @pytest.mark.asyncio
    async def test_lookup_digits(self, connector: Connector) -> None:
        skip_unless(self.caps(connector).can_lookup("phone", "digits"), "digits lookups")
        keys = ["15550100002", "15550100007", "0"]
        await self.check_lookup(connector, "phone", keys, "digits")

    @pytest.mark.asyncio
    async def test_lookup_of_several_columns_agrees_with_one_lookup_each(
        self, connector: Connector
    ) -> None:
        caps = self.caps(connector)
        skip_unless(caps.can_lookup(self.key) and caps.can_lookup("email"), "key and email lookups")
        by_key = self.dataset.by_key()
        keys = [by_key[2]["email"], "nobody@example.com", None, by_key[1]["email"]]
        lookups = [KeyLookup(self.key, [5, 999, 2, 5]), KeyLookup("email", keys)]
        found = await connector.lookup_many_columns(self.table, lookups, self.columns)
        assert len(found) == 2, "one result per lookup"
        for lookup, groups in zip(lookups, found, strict=True):
            expected = self.expected_lookup(lookup.column, lookup.keys)
            assert len(groups) == len(lookup.keys), "one list per key (the DataLoader contract)"
            for rows, wanted in zip(groups, expected, strict=True):
                self.assert_rows(rows, wanted, self.columns)

    @pytest.mark.asyncio
    async def test_undeclared_lookups_are_refused(self, connector: Connector) -> None:
        caps = self.caps(connector)
        refused = [
            (column, transform)
            for column in self.columns
            for transform in TRANSFORMS
            if not caps.can_lookup(column, transform)
        ]
        if not refused:
            pytest.skip("connector declares lookups on every column with every transform")
        for column, transform in refused:
            with pytest.raises(UnsupportedOperation):
                await connector.lookup_many(self.table, column, ["x"], [self.key], transform)
