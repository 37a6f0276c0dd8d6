"""Coercion of source values to the unified model's declared types.

Sources disagree on representation (SQLite keeps timestamps as text,
PostgreSQL returns Decimal, MariaDB ints for booleans); the unified view
answers with one type per field whatever the engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from resolvers.model import FieldType

_CENTS = Decimal("0.01")


_fromisoformat = dt.datetime.fromisoformat
_NAIVE_SECONDS = len("2016-07-14 00:05:21")


def _datetime(value: Any) -> dt.datetime | None:
    if value.__class__ is str and len(value) == _NAIVE_SECONDS:
        # the commonest spelling (SQLite's): read with its UTC offset in one step, as
        # :func:`as_utc` would set it; text that does not read so takes the long way
        try:
            return _fromisoformat(value + "+00:00")
        except ValueError:
            pass
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    elif isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    else:
        return None
    if parsed.tzinfo is None:
        return as_utc(parsed)
    return parsed.astimezone(dt.UTC)


def as_utc(naive: dt.datetime) -> dt.datetime:
    """``naive.replace(tzinfo=dt.UTC)``, built another way: on Python 3.11 ``replace``
    costs ~2 µs, several times parsing the text (a column of update times pays it)."""
    if naive.__class__ is not dt.datetime:  # a subclass keeps its own type
        return naive.replace(tzinfo=dt.UTC)
    # the time keeps the fold, as replace does
    return dt.datetime.combine(naive.date(), naive.time(), dt.UTC)


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(_CENTS)
    except (InvalidOperation, ValueError):
        return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "t", "yes", "y"}
    return bool(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinity
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_COERCE: dict[str, Callable[[Any], Any]] = {
    "string": lambda v: v if isinstance(v, str) else str(v),
    "id": str,
    "int": _int,
    "float": _float,
    "decimal": _decimal,
    "bool": _bool,
    "date": _date,
    "datetime": _datetime,
}


def converter(type_: FieldType) -> Callable[[Any], Any]:
    """:func:`coerce` to ``type_`` of a value that is not None, without the checks
    for blank text where the type's conversion reads it as None already (dates and
    times) or keeps it (text): a column of values calls it once per value."""
    convert = _COERCE[type_]
    if type_ in ("date", "datetime", "string"):
        return convert

    def converted(value: Any) -> Any:  # coerce(value, type_), in one step
        if isinstance(value, str) and not value.strip():
            return None
        return convert(value)

    return converted


def coerce(value: Any, type_: FieldType) -> Any:
    """``value`` as ``type_``; None for missing or unreadable values."""
    if value is None or (isinstance(value, str) and not value.strip() and type_ != "string"):
        return None
    return _COERCE[type_](value)


def json_value(value: Any) -> Any:
    """A source value as JSON shows it: scalars as they are, anything else as text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return as_text(value)


def as_text(value: Any) -> str | None:
    """A value as text; dates and times in ISO 8601."""
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)
