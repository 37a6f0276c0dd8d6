"""SQL over the unified view: the curated catalog, statements planned into the
same governed reads as GraphQL and the exports, and the catalog queries SQL
clients send. The wire protocol is the gateway's (:mod:`gateway.pgwire`)."""

from __future__ import annotations

from resolvers.sqlview.catalog import SqlColumn, SqlTable, build_catalog, snake
from resolvers.sqlview.errors import SqlError
from resolvers.sqlview.session import SETTINGS, Answer, SqlSession

__all__ = [
    "SETTINGS",
    "Answer",
    "SqlColumn",
    "SqlError",
    "SqlSession",
    "SqlTable",
    "build_catalog",
    "snake",
]
