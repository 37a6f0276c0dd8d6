"""Writing the three demo systems into SQLite files, fast, then indexing them.

Tables come from the fixed SQLAlchemy definitions so every engine sees the
same schema; rows go in through the stdlib ``sqlite3`` ``executemany`` in one
transaction per file with journaling off, which is an order of magnitude
faster than ORM or Core inserts. Once loaded, each identity column gets an
expression index built from the very expression the SQL connector compiles
for lookups, so those lookups are index searches rather than table scans.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from sqlalchemy import Index, MetaData, create_engine

from connectors._base import LookupTransform
from connectors.sql.expressions import transformed
from gateway.demodata.schema import METADATA, SYSTEMS

IDENTITY_COLUMNS: Mapping[str, Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "crm": {"contacts": ("email", "phone", "mobile"), "leads": ("email", "phone")},
        "support": {"users": ("email", "phone")},
        "sales": {"customers": ("email", "phone")},
        "feedback": {},
    }
)
"""The member tables' columns that identity resolution looks records up by."""


def index_name(table: str, column: str) -> str:
    """The expression index on ``table.column``: ``_cf`` for emails, ``_digits`` for phones."""
    return f"ix_{table}_{column}_{'cf' if column == 'email' else 'digits'}"


def transform_of(column: str) -> LookupTransform:
    return "casefold" if column == "email" else "digits"


class SQLiteWriter:
    """Creates ``<system>.db`` files in a directory and bulk-loads rows into them."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._connections: dict[str, sqlite3.Connection] = {}
        self._inserts: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        for system in SYSTEMS:
            self._create(system)

    def path(self, system: str) -> Path:
        return self._directory / f"{system}.db"

    def _create(self, system: str) -> None:
        engine = create_engine(f"sqlite:///{self.path(system)}")
        try:
            METADATA[system].create_all(engine)
        finally:
            engine.dispose()
        connection = sqlite3.connect(self.path(system), isolation_level=None)
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-32768")
        connection.execute("BEGIN")
        self._connections[system] = connection
        for table in METADATA[system].sorted_tables:
            key = f"{system}.{table.name}"
            columns = ", ".join(column.name for column in table.columns)
            marks = ", ".join("?" for _ in table.columns)
            self._inserts[key] = f"INSERT INTO {table.name} ({columns}) VALUES ({marks})"
            self.counts[key] = 0

    def write(self, rows: Mapping[str, Sequence[Sequence[object]]]) -> None:
        """Appends rows, keyed ``"system.table"``, each in the table's column order."""
        for key, table_rows in rows.items():
            system = key.partition(".")[0]
            self._connections[system].executemany(self._inserts[key], table_rows)
            self.counts[key] += len(table_rows)

    def finish(self) -> None:
        """Commits, closes, adds the identity expression indexes and refreshes statistics."""
        for connection in self._connections.values():
            connection.execute("COMMIT")
            connection.close()
        self._connections.clear()
        for system in SYSTEMS:
            create_identity_indexes(self.path(system), system)

    def abort(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


def add_missing_indexes(path: Path, system: str) -> list[str]:
    """The indexes :mod:`~gateway.demodata.schema` declares that ``system``'s file
    lacks (a set made by an earlier generator), created and analysed; their names.
    Rows are untouched; a file that has them all is not written to."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        present = {n for (n,) in con.execute("SELECT name FROM sqlite_master")}
        added: list[str] = []
        for table in METADATA[system].sorted_tables:
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                name = str(index.name)
                if name in present or table.name not in present:
                    continue
                columns = ", ".join(f'"{c.name}"' for c in index.columns)
                con.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table.name}" ({columns})')
                con.execute(f'ANALYZE "{name}"')
                added.append(name)
        return added
    finally:
        con.close()


def create_identity_indexes(path: Path, system: str) -> None:
    """Expression indexes on the identity columns of ``system``'s file, then ``ANALYZE``."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            scratch = MetaData()
            for table_name, columns in IDENTITY_COLUMNS.get(system, {}).items():
                table = METADATA[system].tables[table_name].to_metadata(scratch)
                for column in columns:
                    expression = transformed(table.c[column], transform_of(column))
                    Index(index_name(table_name, column), expression).create(connection)
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
