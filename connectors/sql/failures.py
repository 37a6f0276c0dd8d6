"""Driver and SQLAlchemy errors turned into custview's connector errors.

Messages name the source and the cause, never the URL, password or
statement parameters: they end up in GraphQL errors and log lines.
"""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from connectors.errors import ConnectorError, SourceTimeout, SourceUnavailable
from connectors.redaction import describe_error
from connectors.redaction import url_secrets as secrets_of_url
from connectors.sql.locks import locked
from connectors.sqlite_connect import named_file, unopenable

DRIVER_MODULES = frozenset({"asyncpg", "aiomysql", "pymysql", "sqlite3", "aiosqlite"})

_SERVER_TIMEOUT_CODES = frozenset({"57014", 1969, 3024})
"""PostgreSQL query_canceled, MariaDB max_statement_time, MySQL max_execution_time."""


def is_source_failure(exc: BaseException) -> bool:
    """True for errors raised by the database or its driver, not by custview's code."""
    if isinstance(exc, SQLAlchemyError | OSError):
        return True
    return type(exc).__module__.split(".")[0] in DRIVER_MODULES


def is_schema_error(exc: BaseException) -> bool:
    """An error that may mean "no such table/column" (worth an introspection):
    SQLAlchemy's wrapper of a driver error, or the driver's own (the direct path).
    Not SQLite's locked file: its tables are what they were, and an introspection
    would only wait for the same writer's lock again."""
    if locked(exc):
        return False
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
    elif type(exc).__module__.split(".")[0] not in DRIVER_MODULES:
        return False
    return type(exc).__name__ in ("ProgrammingError", "OperationalError")


def is_server_timeout(exc: BaseException) -> bool:
    """The server (or SQLite's interrupt) cancelled the statement for taking too long."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if type(orig).__module__ == "sqlite3" and str(orig) == "interrupted":
        return True
    codes = {getattr(orig, "sqlstate", None)}
    if orig is not None and getattr(orig, "args", None):
        codes.add(orig.args[0])
    return not codes.isdisjoint(_SERVER_TIMEOUT_CODES)


def describe(exc: BaseException, url: URL) -> str:
    """``Type: first line of the driver's message`` with anything secret removed."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(orig).strip().splitlines()
    hint = _sqlite_hint(url) if lines and lines[0] in _SQLITE_OPEN_FAILURES else ""
    return (describe_error(orig, url_secrets(url)) + hint)[:300]


_SQLITE_OPEN_FAILURES = frozenset({"unable to open database file", "disk I/O error"})
"""What SQLite says when it cannot open the file (``disk I/O error``: a folder)."""


def _sqlite_hint(url: URL) -> str:
    """What is wrong with the SQLite file ``url`` names, when its path says so: not
    there, or a folder. The path is not shown: it may say more about the host than
    an error should."""
    file = named_file(url)
    why = unopenable(file, "the source's url", created=False) if file else ""
    return f" (the configured SQLite file: {why})" if why else ""


def url_secrets(url: URL) -> list[str]:
    """The URL as written and each password in it, in every form
    (:func:`connectors.redaction.url_secrets`)."""
    written = url.render_as_string(hide_password=False)
    return list(dict.fromkeys([written, *secrets_of_url(written)]))


def translate(exc: BaseException, source: str, url: URL, timeout: float) -> ConnectorError:
    """The connector error for a failure of the source (timeouts included)."""
    if isinstance(exc, TimeoutError):
        return SourceTimeout(f"no answer within {timeout:g} s", source=source)
    if is_server_timeout(exc):
        return SourceTimeout(
            f"the server cancelled the statement ({describe(exc, url)})", source=source
        )
    return SourceUnavailable(describe(exc, url), source=source)
