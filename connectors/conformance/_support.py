"""What every part of the suite shares: the author's settings and small helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from connectors._base import Capabilities, Connector, Filter, Row, ScanRequest
from connectors.conformance import reference
from connectors.conformance.dataset import DATASET, Dataset


@dataclass(frozen=True)
class LargeTable:
    """A table of :func:`~connectors.conformance.dataset.large_rows` (``id``, ``label``)."""

    name: str
    rows: int


@dataclass(frozen=True)
class SlowTable:
    """A table whose reads take longer than the connector's ``options.timeout``."""

    name: str
    column: str


def skip_unless(condition: bool, what: str) -> None:
    """Skip with the suite's standard reason when the connector does not declare ``what``."""
    if not condition:
        pytest.skip(f"connector does not declare {what}")


async def collect(connector: Connector, request: ScanRequest) -> list[Row]:
    return [row async for row in connector.scan(request)]


class SuiteBase:
    """Settings a connector's test class overrides (like SQLAlchemy's requirements)."""

    dataset: ClassVar[Dataset] = DATASET
    """The rows the ``connector`` fixture's source holds."""
    table: ClassVar[str] = DATASET.table
    """Where the source holds them."""
    missing_table: ClassVar[str] = "custview_conformance_missing"
    """A table the source does not have."""
    large_table: ClassVar[LargeTable | None] = None
    """A large-ish table for the streaming test; ``None`` skips it."""
    slow_table: ClassVar[SlowTable | None] = None
    """A table slower than ``options.timeout``; ``None`` skips timeout tests."""
    casefold_match: ClassVar[bool] = True
    """``contains``/``startswith`` ignore case (the contract); ``False`` to check case."""

    def text_key(self, value: str) -> Any:
        """How the source compares text (``eq``, ``lt``, sorting, grouping).

        Binary by default; a case-insensitive, pad-space collation (MySQL's
        default) is ``value.upper().rstrip(" ")``.
        """
        return value

    # --- helpers -----------------------------------------------------------------------

    def caps(self, connector: Connector) -> Capabilities:
        return connector.capabilities_for(self.table)

    @property
    def columns(self) -> list[str]:
        return list(self.dataset.columns)

    @property
    def key(self) -> str:
        return self.dataset.key

    def request(self, **changes: Any) -> ScanRequest:
        return ScanRequest(table=self.table, columns=self.columns, **changes)

    def expected(self, filters: Sequence[Filter]) -> list[Row]:
        return reference.select(
            self.dataset.rows, filters, self.dataset.columns, self.text_key, self.casefold_match
        )

    def keys_of(self, rows: Sequence[Row]) -> list[Any]:
        return [reference.normalize(row[self.key]) for row in rows]

    def assert_rows(
        self, actual: Sequence[Row], expected: Sequence[Row], columns: Sequence[str] | None = None
    ) -> None:
        """Same rows (as a multiset, by key), each with exactly ``columns``, values equal."""
        wanted = list(columns or self.columns)
        got = sorted(self.keys_of(actual))
        want = sorted(self.keys_of(expected))
        assert got == want, f"rows by {self.key}: got {got}, expected {want}"
        originals = self.dataset.by_key()
        for row in actual:
            assert sorted(row) == sorted(wanted), f"columns {sorted(row)} != {sorted(wanted)}"
            original = originals[self._dataset_key(row[self.key])]
            for column in wanted:
                kind = self.dataset.columns[column]
                assert reference.same(original[column], row[column], kind), (
                    f"{self.key}={row[self.key]} {column}: got {row[column]!r}, "
                    f"expected {original[column]!r}"
                )

    def _dataset_key(self, value: Any) -> Any:
        plain = reference.normalize(value)
        for original in self.dataset.by_key():
            if reference.normalize(original) == plain:
                return original
        raise AssertionError(f"{self.key}={value!r} is not in the dataset")
