"""The last line of custview's read-only promise: a statement guard.

Every session is already read-only on the server (see ``engine.py``); this
guard refuses, before it reaches the driver, any statement that is not a
read, so a bug in custview cannot even try to write. It looks at the
statement with quoted identifiers, string literals and comments removed:
the first keyword must be a read, no statement may follow a ``;``, and no
write keyword may appear anywhere (which catches data-modifying CTEs,
``SELECT ... INTO`` and ``EXPLAIN ANALYZE DELETE``). Identifiers that spell
one of those keywords are always quoted by the connector
(:func:`identifier`), so the scan cannot mistake them for a write.
"""

from __future__ import annotations

import re
from functools import lru_cache

from sqlalchemy.sql.elements import quoted_name

from connectors.errors import ReadOnlyViolation

READ_KEYWORDS = frozenset({"select", "with", "show", "explain", "describe", "desc"})

WRITE_KEYWORDS = frozenset(
    {
        "insert", "update", "delete", "merge", "upsert", "into", "truncate", "drop",
        "alter", "create", "grant", "revoke", "attach", "detach", "vacuum",
    }
)  # fmt: skip
"""Words that may not appear anywhere in a statement, outside quotes."""

_CATALOG_PRAGMAS = frozenset(
    {
        "table_info", "table_xinfo", "table_list", "index_list", "index_info",
        "index_xinfo", "foreign_key_list",
    }
)  # fmt: skip
"""Pragmas that take a table or index name and only read the catalog."""
_VALUE_PRAGMAS = frozenset(
    {
        "database_list", "collation_list", "compile_options", "read_uncommitted",
        "query_only", "user_version", "schema_version", "page_size", "page_count",
        "encoding", "foreign_keys", "journal_mode",
    }
)  # fmt: skip
"""Pragmas that read a value when given no argument (and would write one if given)."""
_SET_FORBIDDEN = re.compile(
    r"read_only|read\s+write|\b(global|persist|persist_only|password|role|authorization|"
    r"sql_log_bin)\b"
)
_NOISE = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|--[^\n]*|/\*.*?\*/|\$\$.*?\$\$""",
    re.S,
)
_WORD = re.compile(r"[a-z_][a-z0-9_$]*")
_PRAGMA = re.compile(r"^pragma\s+(?:\w+\s*\.\s*)?(\w+)\s*(\(\s*[^()=;]*\))?\s*$")


def identifier(name: str) -> str:
    """``name``, forced to be quoted in SQL when it spells a keyword the guard looks for."""
    if name.lower() in WRITE_KEYWORDS:
        return quoted_name(name, quote=True)
    return name


VERDICTS_UP_TO = 16_384
"""Statements up to this long have their verdict cached (the connector sends the
same few texts again and again); longer ones (``IN`` lists of thousands of keys,
each reading thousands of rows) are scanned every time, to bound the memory."""


def check_statement(statement: str, source: str) -> None:
    """Raise :class:`ReadOnlyViolation` unless ``statement`` only reads."""
    short = len(statement) <= VERDICTS_UP_TO
    reason = _cached_refusal(statement) if short else _refusal(statement)
    if reason is not None:
        raise ReadOnlyViolation(f"refused a statement that {reason}", source=source)


@lru_cache(maxsize=2048)
def _cached_refusal(statement: str) -> str | None:
    return _refusal(statement)


def _refusal(statement: str) -> str | None:
    text = _NOISE.sub(" ", statement.lower()).strip()
    text = text.rstrip("; \t\r\n")
    if ";" in text:
        return "holds more than one statement"
    words = _WORD.findall(text.lstrip("( \t\r\n"))
    if not words:
        return "is empty"
    first = words[0]
    if first == "pragma":
        match = _PRAGMA.match(text)
        if match is not None:
            name, argument = match.groups()
            if name in _CATALOG_PRAGMAS or (name in _VALUE_PRAGMAS and argument is None):
                return None
        return "is a PRAGMA that may write"
    if first == "set":
        return "changes a protected setting" if _SET_FORBIDDEN.search(text) else None
    if first not in READ_KEYWORDS:
        return f"is not a read ({first.upper()})"
    if first in ("show", "describe", "desc"):
        return None  # SHOW CREATE TABLE names CREATE but only reads the catalog
    written = next((w for w in words if w in WRITE_KEYWORDS), None)
    if written is not None:
        return f"contains {written.upper()}"
    return None
