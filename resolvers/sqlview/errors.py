"""SQL errors: a :class:`~connectors.QueryError` that carries its SQLSTATE."""

from __future__ import annotations

from connectors import QueryError


class SqlError(QueryError):
    """A statement custview's SQL does not accept: ``42601`` syntax, ``0A000`` not
    supported, ``42P01`` unknown table, ``42703`` unknown column, ``22P02`` bad value."""

    def __init__(self, message: str, sqlstate: str = "42601") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
