"""The curated SQL catalog: the export tables under SQL names, segments as views.

Tables are :func:`resolvers.export.tables` (``customers``, one per relation,
``source_records``); each configured segment is a view with the columns of
``customers`` holding the segment's members, named like the segment with
``-`` turned into ``_`` (``high-value-at-risk`` -> ``high_value_at_risk``).
Column names are the model's names in snake case (``lifetimeValue`` ->
``lifetime_value``), so unquoted SQL identifiers, which PostgreSQL folds to
lower case, reach them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from resolvers.export import CUSTOMERS, tables
from resolvers.model import FieldType, UnifiedModel

PG_TYPES: dict[FieldType, tuple[int, str]] = {
    "string": (25, "text"),
    "id": (25, "text"),
    "int": (20, "bigint"),
    "float": (701, "double precision"),
    "decimal": (1700, "numeric"),
    "bool": (16, "boolean"),
    "date": (1082, "date"),
    "datetime": (1184, "timestamp with time zone"),
}
"""Each model type's PostgreSQL type: oid and name."""


def snake(name: str) -> str:
    """``lifetimeValue`` -> ``lifetime_value``; names already in snake case stay."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@dataclass(frozen=True, slots=True)
class SqlColumn:
    name: str
    """The SQL name."""
    field: str
    """The export column it reads."""
    type: FieldType
    description: str = ""

    @property
    def type_oid(self) -> int:
        return PG_TYPES[self.type][0]


@dataclass(frozen=True, slots=True)
class SqlTable:
    name: str
    kind: Literal["table", "view"]
    export: str
    """The export table its rows come from."""
    columns: tuple[SqlColumn, ...]
    segment: str | None = None
    description: str = ""

    def column(self, name: str) -> SqlColumn | None:
        return next((c for c in self.columns if c.name == name), None)

    def by_field(self, field: str) -> SqlColumn:
        return next(c for c in self.columns if c.field == field)


def build_catalog(model: UnifiedModel) -> dict[str, SqlTable]:
    """Every SQL table and view, by name, tables first."""
    found: dict[str, SqlTable] = {}
    exported = tables(model)
    for name, columns in exported.items():
        cols = tuple(SqlColumn(snake(c.name), c.name, c.type, c.description) for c in columns)
        rel = model.relations.get(name)
        found[snake(name)] = SqlTable(
            snake(name), "table", name, cols, description=rel.description if rel else ""
        )
    customers = found[CUSTOMERS].columns
    for name, spec in model.segments.items():
        view = snake(name.replace("-", "_"))
        found.setdefault(view, SqlTable(view, "view", CUSTOMERS, customers, name, spec.description))
    return found
