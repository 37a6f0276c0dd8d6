"""The options of one SQL source, validated before any connection is made.

Only asyncio drivers are accepted: the gateway serves every request on one
event loop, and a blocking driver would stall all of them.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from connectors._base import ConnectorOptions
from connectors.sql.failures import url_secrets

ASYNC_DRIVERS: dict[str, tuple[str, ...]] = {
    "sqlite": ("aiosqlite",),
    "postgresql": ("asyncpg",),
    "mysql": ("aiomysql",),
    "mariadb": ("aiomysql",),
}
"""Backend name to the asyncio drivers whose sessions custview knows how to make
read-only (see ``engine.py``); others are refused rather than trusted."""

_SUGGESTED = {
    "sqlite": "sqlite+aiosqlite:///path/to/file.db",
    "postgresql": "postgresql+asyncpg://user@host/db",
    "mysql": "mysql+aiomysql://user@host/db",
    "mariadb": "mariadb+aiomysql://user@host/db",
}


class SQLOptions(ConnectorOptions):
    """A SQL source reached through a SQLAlchemy asyncio driver.

    Secrets belong in the environment: the config loader substitutes
    ``${NAME}`` into ``url`` before these options are built.
    """

    # A rejected url may hold a password: keep input values out of error texts.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str
    """SQLAlchemy async URL: ``sqlite+aiosqlite``, ``postgresql+asyncpg``,
    ``mysql+aiomysql`` or ``mariadb+aiomysql``."""

    pool_size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=5, ge=0)
    statement_timeout: float | None = Field(default=None, ge=0)
    """Seconds, enforced by the server where it can (PostgreSQL
    ``statement_timeout``, MariaDB ``max_statement_time``, MySQL
    ``max_execution_time``); ``timeout`` is always enforced client-side.
    Unset: ``timeout`` plus one second, so the server stops a statement the
    client gave up on (a MySQL/MariaDB driver cannot cancel it); ``0`` turns
    the server-side limit off."""

    def secrets(self) -> list[str]:
        # the URL as configured too: its rendering may quote it otherwise
        found = [*super().secrets(), self.url, *url_secrets(make_url(self.url))]
        return list(dict.fromkeys(found))

    @property
    def server_timeout(self) -> float | None:
        """The server-side limit in seconds, or ``None`` for none."""
        if self.statement_timeout is None:
            return self.timeout + 1
        return self.statement_timeout or None

    schema_name: str | None = None
    """Schema (PostgreSQL) or database (MySQL/MariaDB) holding the tables."""

    echo: bool = False
    """Log every statement (parameters are never logged). On SQLite it also
    turns the direct path off: statements are logged by SQLAlchemy's engine."""

    sqlite_direct: bool = True
    """SQLite only: send each statement, compiled once per shape by SQLAlchemy,
    straight to a pooled read-only ``sqlite3`` connection in one thread hop
    (see :mod:`connectors.sql.direct`) instead of through SQLAlchemy's async
    engine (four aiosqlite thread hops and its result layer)."""

    sqlite_inline_budget: float = Field(default=0.002, ge=0, le=0.1)
    """SQLite direct path only: seconds of CPU time a statement may use on the
    event loop's own thread, when its connection's thread is idle, before it is
    stopped and sent to that thread (a thread hop costs more than a short
    statement); it is stopped too once :data:`~connectors.sql.inline.WALL_LIMIT`
    times this has passed by the clock. ``0`` sends every statement to the thread."""

    max_batch_size: int | None = Field(default=None, ge=1, le=100_000)
    """Keys per ``IN (...)`` list in :meth:`SQLConnector.lookup_many` (and per
    statement of a lookup over several columns). Default: what the engine's
    bind-parameter limit allows (:data:`BATCH_LIMITS`), else 1,000."""

    request_id_comment: bool | None = None
    """End each statement with ``/* request_id=... */`` while a request is served,
    so the database's own logs name the request. ``None``: on MySQL/MariaDB;
    off on PostgreSQL, where every tagged statement is prepared anew (asyncpg's
    statement cache cannot reuse it: about one more round trip), and on SQLite,
    which has no server log to show it and prepares every tagged text anew."""

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a SQLAlchemy URL; expected e.g. postgresql+asyncpg://user@host/db"
            ) from None
        check_async_url(url)
        return value


def check_async_url(url: URL) -> None:
    """Refuse URLs SQLAlchemy cannot drive asynchronously, saying what to use instead."""
    backend = url.get_backend_name()
    driver = url.drivername.partition("+")[2]  # explicit: dialect defaults change
    drivers = ASYNC_DRIVERS.get(backend)
    if drivers is None:
        known = ", ".join(sorted(ASYNC_DRIVERS))
        raise ValueError(f"unsupported database '{backend}' (supported: {known})")
    if driver not in drivers:
        named = f"'{backend}+{driver}'" if driver else f"'{backend}' without a driver"
        raise ValueError(
            f"{named} is not a supported asyncio driver; "
            f"use {' or '.join(f'{backend}+{d}' for d in drivers)}, "
            f"e.g. {_SUGGESTED[backend]}"
        )
    if backend == "sqlite" and _is_memory(url):
        raise ValueError(
            "an in-memory SQLite database is empty when opened read-only; "
            "point the url at a database file: sqlite+aiosqlite:///path/to/file.db"
        )


def _is_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


BATCH_LIMITS = {"sqlite": 30_000, "postgresql": 30_000, "mysql": 30_000}
"""Default keys per statement by backend, under each engine's bind-parameter
limit (SQLite 32,766 since 3.32, asyncpg 32,767, MySQL 65,535) with room for
the statement's other parameters."""
DEFAULT_BATCH = 1_000
"""Keys per statement on other engines (Oracle accepts 1,000 per ``IN`` list)."""
