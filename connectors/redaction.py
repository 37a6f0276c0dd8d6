"""Error texts without secrets: a source's connection string, password or token
must not ride an exception's message into a GraphQL error, a log line or the CLI.

One helper for every layer: the SQL and REST connectors describe their drivers'
errors with it, and the export workers describe an unexpected failure with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

MIN_LENGTH = 4
"""Shorter values are not replaced: a one- to three-character value would turn every
such digit or syllable of a message into ``***`` (``HTTP 502`` into ``HTTP 50***``)
and hides nothing a guess would not find."""

URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
"""Any URL: it may carry credentials nobody listed (``scheme://user:password@host``)."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (of at least :data:`MIN_LENGTH` characters)
    as ``***`` and every URL as ``<url>``.

    A secret is also found as a ``repr`` shows it (a driver quoting a value with a
    control character, ``b'tok\\n'``) and without surrounding blanks."""
    forms = set()
    for secret in secrets:
        forms |= {secret, secret.strip(), repr(secret)[1:-1]}
    for secret in sorted((s for s in forms if len(s) >= MIN_LENGTH), key=len, reverse=True):
        text = text.replace(secret, "***")
    return URL.sub("<url>", text)


def describe_error(exc: BaseException, secrets: Iterable[str], limit: int = 300) -> str:
    """``Type: first line of the message``, redacted, at most ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return redact(text, secrets)[:limit]


def secret_values(value: Any) -> list[str]:
    """Every :class:`~pydantic.SecretStr` value in ``value`` (a model, a mapping or a
    list, walked through)."""
    found: list[str] = []
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found += secret_values(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            found += secret_values(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            found += secret_values(item)
    return [s for s in found if s]
