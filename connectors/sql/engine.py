"""One read-only AsyncEngine per SQL source.

Read-only is set up three times over, so no single mistake can write:

* the session: SQLite files open with ``mode=ro`` (plus ``PRAGMA
  query_only``), PostgreSQL sessions start with
  ``default_transaction_read_only=on``, MySQL/MariaDB sessions run
  ``SET SESSION TRANSACTION READ ONLY`` on connect;
* the statement guard (:mod:`connectors.sql.readonly`) on every execute;
* the connector itself, which has no method that writes.

Connections run in autocommit: each statement is its own read-only
transaction on the server, so a lookup costs one round trip (no BEGIN, no
COMMIT) and returning a connection to the pool costs nothing
(``skip_autocommit_rollback``). Scans on PostgreSQL open a short
transaction because server-side cursors need one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connectors import sqlite_connect
from connectors.observe import observed_call, sent
from connectors.request_id import tagged_statement
from connectors.sql.options import SQLOptions
from connectors.sql.readonly import check_statement

StatementHook = Callable[[], None]

_retrying: ContextVar[bool] = ContextVar("custview_sql_retrying", default=False)


@contextmanager
def retrying() -> Iterator[None]:
    """The statements executed inside are tries again of one already sent (SQLite's
    locked file, :mod:`connectors.sql.locks`): the read-only guard checks each, but
    the statement count and explain's plan have it once."""
    token = _retrying.set(True)
    try:
        yield
    finally:
        _retrying.reset(token)


_catalog: ContextVar[bool] = ContextVar("custview_sql_catalog", default=False)


@contextmanager
def catalog_read() -> Iterator[None]:
    """The statements executed inside read the catalog for the connector itself (a
    table's column types, :mod:`connectors.sql.keys`), once per table: the read-only
    guard checks each, but neither the statement count nor explain's plan has them
    (the connector counts them apart)."""
    token = _catalog.set(True)
    try:
        yield
    finally:
        _catalog.reset(token)


def reading_catalog() -> bool:
    """Whether the statement being executed is a :func:`catalog_read`'s."""
    return _catalog.get()


def backend(url: URL) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB included)."""
    name = url.get_backend_name()
    return "mysql" if name == "mariadb" else name


def read_only_url(url: URL) -> URL:
    """``url`` as the connector opens it: SQLite files become ``mode=ro`` URIs."""
    if backend(url) != "sqlite":
        return url
    database = url.database or ""
    if not database.startswith("file:"):
        database = "file:" + quote(database, safe="/:")
    query = {k: v for k, v in url.query.items() if k not in ("mode", "uri")}
    return url.set(database=database, query={**query, "mode": "ro", "uri": "true"})


def create_read_only_engine(
    options: SQLOptions, source: str, on_statement: StatementHook
) -> AsyncEngine:
    """The source's engine, read-only on the server and guarded on the client.

    No I/O happens here; the pool connects on first use.
    """
    url = read_only_url(make_url(options.url))
    kind = backend(url)
    engine = create_async_engine(
        url,
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        echo=options.echo,
        hide_parameters=True,
        isolation_level="AUTOCOMMIT",
        skip_autocommit_rollback=True,
        connect_args=_connect_args(kind, options),
    )
    if kind == "sqlite":
        sqlite_connect.open_with(engine)
    sync_engine = engine.sync_engine

    # retval: called as it is, not through the wrapper SQLAlchemy puts around a
    # listener that returns nothing (one call fewer for every statement)
    @event.listens_for(sync_engine, "before_cursor_execute", retval=True)
    def _guard(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> tuple[str, Any]:
        check_statement(statement, source)
        if not (_retrying.get() or _catalog.get()):  # ``reading_catalog()``, written out
            on_statement()
            if observed_call() is not None:  # :func:`sent` has nothing to do otherwise
                sent(statement)
        return statement, parameters

    tag = options.request_id_comment
    if tag is None:
        tag = kind == "mysql"
    if tag:
        # after the guard: it checks, and explain plans show, the statement as compiled
        @event.listens_for(sync_engine, "before_cursor_execute", retval=True)
        def _tag(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
        ) -> tuple[str, Any]:
            return tagged_statement(statement), parameters

    if kind == "mysql" and options.server_timeout is not None:
        # MariaDB counts a streamed scan as one statement however long an export
        # reads it: the scan is bounded per fetch by ``timeout`` (client-side) instead.
        @event.listens_for(sync_engine, "before_cursor_execute", retval=True)
        def _unbounded_stream(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
        ) -> tuple[str, Any]:
            streamed = context is not None and context.execution_options.get("stream_results")
            if streamed and getattr(conn.dialect, "is_mariadb", False):
                return f"SET STATEMENT max_statement_time = 0 FOR {statement}", parameters
            return statement, parameters

    if kind in ("sqlite", "mysql"):
        statements = _session_statements(kind, options, engine)

        @event.listens_for(sync_engine, "connect")
        def _read_only_session(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                for sql in statements():
                    cursor.execute(sql)
            finally:
                cursor.close()

    return engine


def _connect_args(kind: str, options: SQLOptions) -> dict[str, Any]:
    if kind != "postgresql":
        return {}
    settings = {"default_transaction_read_only": "on", "application_name": "custview"}
    if options.server_timeout is not None:
        settings["statement_timeout"] = str(max(1, round(options.server_timeout * 1000)))
    return {"server_settings": settings}


def _session_statements(
    kind: str, options: SQLOptions, engine: AsyncEngine
) -> Callable[[], list[str]]:
    """The statements that make a fresh SQLite/MySQL session read-only."""

    def statements() -> list[str]:
        if kind == "sqlite":
            return ["PRAGMA query_only = ON"]
        result = ["SET SESSION TRANSACTION READ ONLY"]
        limit = options.server_timeout
        if limit is not None:
            # Known once the first connection initialised the dialect.
            if getattr(engine.dialect, "is_mariadb", False):
                result.append(f"SET SESSION max_statement_time = {limit:f}")
            else:
                millis = max(1, round(limit * 1000))
                result.append(f"SET SESSION max_execution_time = {millis:d}")
        return result

    return statements
