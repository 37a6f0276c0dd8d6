"""JSON bodies to rows, and Python values to query parameters.

Paths are dotted (``respondent.email``); a numeric segment indexes a list
(``emails.0``). A missing step yields ``None``, like a NULL column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

from connectors._base import Row

_MISSING = object()


def pick(value: Any, path: str) -> Any:
    """The value at dotted ``path`` inside ``value`` (``""``: ``value`` itself)."""
    found = _walk(value, path)
    return None if found is _MISSING else found


def _walk(value: Any, path: str) -> Any:
    if not path:
        return value
    for step in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(step, _MISSING)
        elif isinstance(value, list) and step.isdigit():
            index = int(step)
            value = value[index] if index < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def has(value: Any, path: str) -> bool:
    return _walk(value, path) is not _MISSING


def project(record: Any, paths: Mapping[str, str], columns: Sequence[str]) -> Row:
    """The row of ``columns`` read from one JSON record."""
    return {c: pick(record, paths[c]) for c in columns}


def param(value: Any) -> str:
    """How a value travels in a query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def key_text(value: Any) -> str:
    """Keys and record values are grouped by this text (``42`` matches ``"42"``)."""
    return param(value)
