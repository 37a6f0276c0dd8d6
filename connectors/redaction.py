"""Error texts without secrets: a source's connection string, password or token
must not ride an exception's message into a GraphQL error, a log line or the CLI.

One helper for every layer: the SQL and REST connectors describe their drivers'
errors with it, and the export workers describe an unexpected failure with it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

MIN_LENGTH = 4
"""Shorter values are not replaced: a one- to three-character value would turn every
such digit or syllable of a message into ``***`` (``HTTP 502`` into ``HTTP 50***``)
and hides nothing a guess would not find."""

URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
"""Any URL: it may carry credentials nobody listed (``scheme://user:password@host``)."""


def secret_forms(secret: str) -> set[str]:
    """The forms ``secret`` may take in a text: as written and without surrounding
    blanks, each as ``repr`` quotes it (a driver quoting a value with a control
    character), as bytes' ``repr`` does (httpx's ``b'T\\xc3\\xb6k'``) and
    percent-encoded as a URL path or query, or a form body, carries it
    (``p%40ss%2Fw``, ``p+w``)."""
    found = set()
    for form in (secret, secret.strip()):
        found |= {form, repr(form)[1:-1], repr(form.encode())[2:-1]}
        found |= {quote(form, safe=""), quote_plus(form)}
    return found


class SecretsPattern:
    """Every :func:`secret_forms` of some secrets, found in a text in one search.

    Where secrets overlap in a text (one's end is another's start), the whole of
    every one is hidden: the text they cover together becomes one ``***``, not the
    first found with the rest of the other left showing."""

    __slots__ = ("_search",)

    def __init__(self, forms: Iterable[str]) -> None:
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        # a look-ahead finds the longest form starting at each place, overlaps included
        self._search = re.compile("(?=(" + "|".join(re.escape(f) for f in ordered) + "))")

    def sub(self, text: str) -> str:
        """``text`` with every place a form covers as ``***``."""
        parts: list[str] = []
        shown = 0  # where the text not yet written starts
        start = end = -1  # the hidden stretch being widened
        for match in self._search.finditer(text):
            at = match.start()
            if at >= end:  # not within the stretch: write it, start another
                if end > 0:
                    parts += (text[shown:start], "***")
                    shown = end
                start = at
            end = max(end, at + len(match.group(1)))
        if end < 0:
            return text
        parts += (text[shown:start], "***", text[end:])
        return "".join(parts)


def secrets_pattern(secrets: Iterable[str]) -> SecretsPattern | None:
    """One search for every :func:`secret_forms` (of at least :data:`MIN_LENGTH`
    characters) of each of ``secrets`` of at least :data:`MIN_LENGTH` characters; a
    shorter secret is not looked for in any form (``é`` would hide the ``%C3%A9``
    of every URL). ``None`` when there is nothing to hide. The same secrets give
    the same pattern, built once (every failed source call is described with it)."""
    return _pattern_of(tuple(secrets))


@functools.lru_cache(maxsize=256)
def _pattern_of(secrets: tuple[str, ...]) -> SecretsPattern | None:
    forms = {
        form
        for secret in secrets
        if len(secret) >= MIN_LENGTH
        for form in secret_forms(secret)
        if len(form) >= MIN_LENGTH
    }
    return SecretsPattern(forms) if forms else None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (of at least :data:`MIN_LENGTH` characters),
    in any of its :func:`secret_forms`, as ``***`` and every URL as ``<url>``."""
    pattern = secrets_pattern(secrets)
    if pattern is not None:
        text = pattern.sub(text)
    return URL.sub("<url>", text)


def describe_error(exc: BaseException, secrets: Iterable[str], limit: int = 300) -> str:
    """``Type: first line of the message``, redacted, at most ``limit`` characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return redact(text, secrets)[:limit]


CREDENTIAL_PARAM = re.compile(
    r"(^|[_-])(pass|passwd|password|pwd|secret|token|api_?key|apikey|signature)$|^key$", re.I
)
"""A URL query parameter named so carries a credential (``?password=``,
``?sslpassword=``, ``?pwd=``, ``?access_token=``, ``?api_key=``); whole name
parts only, so ``?bypass_cache=`` or ``?tokens_per_page=`` are plain values."""


def credential_param(name: str) -> bool:
    """Whether a URL query parameter called ``name`` carries a credential."""
    return CREDENTIAL_PARAM.search(name) is not None or name.lower().endswith("password")


CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Headers whose value is a credential, whatever it looks like."""
CREDENTIAL_WORDS = (
    "key",
    "token",
    "secret",
    "auth",
    "session",
    "pass",
    "pwd",
    "credential",
    "signature",
)
"""A header whose name holds one of these (``X-API-Key``, ``X-Auth-Token``) carries one."""
PLAIN_HEADERS = frozenset(
    {
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "content-type",
        "pragma",
        "user-agent",
    }
)
"""Request headers whose value is never a secret: content negotiation, caching, the
client's name."""


def credential_header(name: str) -> bool:
    """Whether header ``name`` is named as a credential carrier (``Authorization``,
    ``Cookie``, a name holding one of :data:`CREDENTIAL_WORDS`)."""
    lowered = name.lower()
    return lowered in CREDENTIAL_HEADERS or any(w in lowered for w in CREDENTIAL_WORDS)


def secret_header(name: str) -> bool:
    """Whether the configured value of request header ``name`` is a secret: every
    header but :data:`PLAIN_HEADERS` and API version headers (a name ending in
    ``version``: ``X-Api-Version``, ``Stripe-Version``) that are not named as a
    credential. A custom header (``X-Tenant``, ``X-Partner``) may carry a key
    whatever its name says."""
    lowered = name.strip().lower()
    if credential_header(lowered):
        return True
    return lowered not in PLAIN_HEADERS and not lowered.endswith("version")


def url_secrets(url: str) -> list[str]:
    """What an error must not show of ``url`` when it holds credentials: the URL as
    written and each password in it (after ``user:``, or a query parameter such as
    ``?password=``), decoded and as the URL writes it (:func:`redact` adds the other
    forms a driver may quote it in). Nothing for a URL without any (or not a URL)."""
    try:
        parts = urlsplit(url.strip())
        written = [parts.password] if parts.password else []
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return []
    if not parts.scheme or not parts.netloc:
        return []
    raw = {p.split("=", 1)[1] for p in parts.query.split("&") if "=" in p}
    passwords = [unquote(p) for p in written]
    passwords += [v for k, v in query if credential_param(k)]
    if not passwords:
        return []
    found = [url, *written]
    for password in passwords:
        found.append(password)
        found += [r for r in raw if unquote(r.replace("+", " ")) == password]
    return list(dict.fromkeys(s for s in found if s))


DSN_PAIR = re.compile(
    r"""(?:^|[\s;])([a-z_][\w.-]*)\s*=\s*('(?:[^'\\]|\\.)*'|"[^"]*"|\{[^}]*\}|[^\s;&'"]+)""",
    re.I,
)
"""One ``name=value`` of a key=value connection string: libpq's
``host=db password='p w'`` (blank separated, single quotes, backslash escapes)
or ODBC's ``Server=db;Pwd={p;w}`` (semicolons, braces)."""


def dsn_secrets(text: str) -> list[str]:
    """The credentials of a key=value connection string (``password=``, ``pwd=``,
    ``sslpassword=``, ``token=``...: names as :func:`credential_param` counts them),
    each as written and unquoted. Nothing for a URL (:func:`url_secrets` reads
    those) or text without such a pair."""
    if "=" not in text or URL.search(text):
        return []
    found: list[str] = []
    for name, written in DSN_PAIR.findall(text):
        if not credential_param(name):
            continue
        value = written
        if written[:1] == "'" and written[-1:] == "'" and len(written) > 1:
            value = re.sub(r"\\(.)", r"\1", written[1:-1])
        elif written[:1] in '"{' and len(written) > 1:
            value = written[1:-1]
        found += [written, value]
    return list(dict.fromkeys(s for s in found if s))


def secret_values(value: Any) -> list[str]:
    """Every :class:`~pydantic.SecretStr` and :class:`~pydantic.SecretBytes` value in
    ``value`` (a model, a mapping or a list, walked through), and the credentials of
    every URL-valued string (:func:`url_secrets`: a DSN with a password) and of
    every key=value connection string (:func:`dsn_secrets`)."""
    found: list[str] = []
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, SecretBytes):
        found.append(value.get_secret_value().decode("utf-8", "replace"))
    elif isinstance(value, str):
        found += url_secrets(value) or dsn_secrets(value)
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
