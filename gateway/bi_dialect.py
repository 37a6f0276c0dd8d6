"""``custview://`` URLs for SQLAlchemy, pandas and Superset.

A thin SQLAlchemy dialect over psycopg 3 that talks to custview's SQL
endpoint (:mod:`gateway.sql`): ``custview://:API_KEY@host[:5433]/`` (the key
as the password, or ``?key=API_KEY``; user and database are optional). It
is the ``postgresql+psycopg`` dialect with custview's defaults: port 5433,
no hstore probe, read-only. Installed with the ``bi`` extra
(``pip install 'custview[bi]'``) and registered in the
``sqlalchemy.dialects`` entry-point group, so ``create_engine`` finds it by
its scheme alone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import URL

DEFAULT_PORT = 5433


class CustviewDialect(PGDialect_psycopg):
    """SQLAlchemy's psycopg dialect, pointed at a custview SQL endpoint."""

    supports_statement_cache = True

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("use_native_hstore", False)  # the endpoint has no hstore
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    def create_connect_args(self, url: URL) -> Any:
        query = dict(url.query)
        key = query.pop("key", None)
        if isinstance(key, tuple):
            key = key[0]
        url = url.set(
            drivername="postgresql+psycopg",
            username=url.username or "custview",
            password=url.password or key,
            port=url.port or DEFAULT_PORT,
            database=url.database or "custview",
            query=query,
        )
        return super().create_connect_args(url)  # type: ignore[no-untyped-call]


dialect = CustviewDialect
