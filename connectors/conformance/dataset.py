"""The canonical dataset every connector loads before running the suite.

Forty ``people`` rows with the noise real sources have: duplicate emails in
different case, NULLs in every optional column, ties in sorted columns,
leading spaces, a literal ``%``. Values are plain Python (``int``, ``str``,
``Decimal``, naive ``datetime``, ``None``) so any backend can store them;
:meth:`Dataset.as_text_rows` gives the same rows as strings for text
formats (CSV, JSON). Strings are ASCII without ``[\\]^_``` so that binary,
``C`` and case-insensitive collations order them the same way up to case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from connectors._base import Row

ColumnType = Literal["int", "str", "decimal", "datetime"]


@dataclass(frozen=True)
class Dataset:
    """Rows of one table, the type of each column and its unique, non-null key."""

    table: str
    columns: Mapping[str, ColumnType]
    rows: Sequence[Row]
    key: str = "id"
    nullable: frozenset[str] = frozenset()

    def copy_rows(self) -> list[Row]:
        """Fresh dicts, safe to mutate while loading."""
        return [dict(row) for row in self.rows]

    def as_text_rows(self) -> list[dict[str, str]]:
        """Every value as text: ISO datetimes, decimals as written, ``""`` for NULL."""
        return [{c: _text(row[c]) for c in self.columns} for row in self.rows]

    def by_key(self) -> dict[Any, Row]:
        return {row[self.key]: row for row in self.rows}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


_FIRST = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fay", "Gus", "Hana"]
_LAST = ["Smith", "Jones", "Garcia", "Khan"]
_COUNTRIES = ["US", "GB", "DE", "FR", None, "US", "BR"]
_PHONES = ["+1 (555) 010-{n}", "1-555-010-{n}", "1.555.010.{n}", "+1 555 010 {n}"]


def _people() -> list[Row]:
    rows: list[Row] = []
    for i in range(1, 41):
        first, last = _FIRST[i % 8], _LAST[i % 4]
        name = f"{first} {last}"
        if i % 7 == 0:
            name = name.upper()
        elif i % 11 == 0:
            name = name.lower()
        email: str | None = f"{first.lower()}.{last.lower()}{i}@example.com"
        if i % 6 == 0:
            email = None
        elif i % 5 == 0:
            email = f"{first}.{last}{i}@Example.COM"
        rows.append(
            {
                "id": i,
                "email": email,
                "phone": None if i % 9 == 0 else _PHONES[i % 4].format(n=f"{i:04d}"),
                "name": name,
                "country": _COUNTRIES[i % 7],
                "score": None if i % 8 == 3 else Decimal(i * 7 % 20) / 4,
                "created_at": datetime(2024, 1, 1) + timedelta(days=i // 3, hours=5 * (i % 2)),
            }
        )
    # The same person twice inside one system, spelled differently.
    rows[37]["email"] = "Ben.Jones1@EXAMPLE.com"  # id 38, same as id 1 up to case
    rows[38]["email"] = rows[1]["email"]  # id 39, exactly id 2's
    rows[38]["phone"] = "1 555 010 0002"  # same digits as id 2's phone
    rows[20]["email"] = " dev.khan21@example.com"  # a leading space
    rows[12]["name"] = "Ana 100% Real"  # a literal % for contains/startswith
    return rows


DATASET = Dataset(
    table="people",
    columns={
        "id": "int",
        "email": "str",
        "phone": "str",
        "name": "str",
        "country": "str",
        "score": "decimal",
        "created_at": "datetime",
    },
    rows=tuple(_people()),
    key="id",
    nullable=frozenset({"email", "phone", "country", "score"}),
)
"""The dataset the conformance suite expects in the connector's fixture table."""


def large_rows(count: int) -> list[Row]:
    """``count`` rows ``{"id": n, "label": "row n"}``, for a streaming test table."""
    return [{"id": n, "label": f"row {n}"} for n in range(1, count + 1)]
