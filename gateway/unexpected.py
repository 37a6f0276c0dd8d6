"""One policy for errors custview did not expect: wherever one is shown, its text
holds no secret.

An unexpected error (a bug in custview or a connector plugin, not a source's
failure) may quote anything it held: a DSN with its password, a token, a header.
A source's own errors are described without their secrets where they are raised
(:func:`connectors.redaction.describe_error`), and an export worker's unexpected
error is described so before it crosses its pipe. What reaches the CLI's last
words or a server log line's traceback otherwise is Python's own text, so:

- every settings file loaded in this process adds its secrets (:func:`hide`:
  each source's URL password, token and secret headers, and every secret
  setting, as :meth:`gateway.settings.LoadedSettings.secrets` lists them);
- a settings file that failed to load unexpectedly hides every value that may
  be a secret (each value taken from the environment, each URL's password, each
  value of a key named like a credential) where its error is shown
  (:func:`hide_in`: the error's report and traceback, those of errors raised
  from it, the log lines written with it or about it), not in every later line
  of the process: a port or a folder taken from the environment stays readable
  in the lines of the configuration that does load;
- an error's traceback is :func:`redacted_traceback`: where it was raised (the
  stack's code lines, none of its values) and, for each error of the chain, its
  type and first line without those secrets or any URL (``describe_error``);
- :class:`RedactingFilter` on the log handler custview installs (and on
  :data:`logging.lastResort`, which prints a command's warnings) gives every
  record's traceback that form, and removes those secrets from every message:
  a record logged with an error (strawberry's ``str(error)``, uvicorn's
  ``Exception in ASGI application``) loses its URLs too.

None of them raises: an error whose ``str()`` fails is described by its type
(``<Bad (unprintable)>``), a log call whose arguments do not fit its message is
logged as its message and arguments, redacted, and a record the filter cannot
redact at all is logged as a line saying so, without its text.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Mapping

from connectors.redaction import SecretsPattern, describe_error, redact, secrets_pattern

REPORT = (
    "This is not a source failure but a bug in custview or a connector plugin: "
    "please report it with this message."
)

_hidden: set[str] = set()
_pattern: SecretsPattern | None = None


def hide(secrets: Iterable[str]) -> None:
    """Remove ``secrets``, in every form a text may hold them
    (:func:`connectors.redaction.secret_forms`), from every unexpected error's text
    and log line from now on."""
    global _pattern
    added = {s for s in secrets if s} - _hidden
    if not added:
        return
    _hidden.update(added)
    _pattern = secrets_pattern(_hidden)


_HIDDEN_IN = "_custview_hidden"
"""The attribute of an error that holds the secrets :func:`hide_in` gave it."""


def hide_in(error: BaseException, secrets: Iterable[str]) -> None:
    """Remove ``secrets`` wherever ``error`` is shown: its :func:`describe`,
    :func:`report` and :func:`redacted_traceback`, those of any error raised from it
    or while handling it, and the log lines written with it (``exc_info``) or about
    it (an argument). An error that takes no attribute hides them everywhere
    (:func:`hide`), rather than let one show."""
    found = frozenset(s for s in secrets if s) | _own(error)
    try:
        setattr(error, _HIDDEN_IN, found)
    except Exception:
        hide(found)


def _own(error: BaseException) -> frozenset[str]:
    found: object = getattr(error, _HIDDEN_IN, frozenset())
    return found if isinstance(found, frozenset) else frozenset()


def _given(error: BaseException) -> set[str]:
    """The secrets :func:`hide_in` gave ``error`` or any error of its chain or group."""
    found: set[str] = set()
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found |= _own(current)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions
    return found


def _secrets_of(error: BaseException) -> list[str]:
    """What no text of ``error`` may show: every hidden secret and its own."""
    return sorted(_hidden | _given(error))


def scrub(text: str) -> str:
    """``text`` with each hidden secret as ``***`` (its URLs left as they are)."""
    if _pattern is None:
        return text
    return _pattern.sub(text)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from or while handling, earliest first."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return chain[::-1]


def describe(exc: BaseException, secrets: Iterable[str] | None = None) -> str:
    """:func:`describe_error` without the hidden secrets (``secrets``, else those of
    ``exc``: :func:`_secrets_of`), or the error's type when its text cannot be had
    (its ``__str__`` raises)."""
    try:
        return describe_error(exc, _secrets_of(exc) if secrets is None else secrets)
    except Exception:
        return f"<{type(exc).__name__} (unprintable)>"


def redacted_traceback(exc: BaseException, secrets: Iterable[str] | None = None) -> str:
    """``exc``'s traceback as Python prints it, but each error's text its type and
    first line without any hidden secret (those of ``exc``'s whole chain unless
    ``secrets`` says) or URL; an exception group's errors follow it, indented."""
    hidden = _secrets_of(exc) if secrets is None else sorted(secrets)
    parts: list[str] = []
    chain = _chain(exc)
    for number, error in enumerate(chain):
        frames = traceback.format_list(traceback.extract_tb(error.__traceback__))
        if frames:
            parts.append("Traceback (most recent call last):\n" + "".join(frames))
        parts.append(describe(error, hidden) + "\n")
        if isinstance(error, BaseExceptionGroup):
            for inner, sub in enumerate(error.exceptions, 1):
                text = redacted_traceback(sub, hidden).rstrip("\n").replace("\n", "\n  | ")
                parts.append(f"  +-- {inner} ---\n  | {text}\n")
        if number + 1 < len(chain):
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if chain[number + 1].__cause__ is error
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
    return "".join(parts).rstrip("\n")


def report(exc: BaseException) -> str:
    """What the command prints when ``exc`` ends it: one line, then the traceback."""
    try:
        trace = redacted_traceback(exc)
    except Exception:
        trace = "(its traceback could not be formatted)"
    return f"error: unexpected {describe(exc)}\n{REPORT}\n{trace}"


class RedactingFilter(logging.Filter):
    """Gives a record's error its :func:`redacted_traceback` and removes the hidden
    secrets from its message (and URLs too, when it was logged with an error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact(record)
        except Exception:
            # a log call must not fail (uvicorn's would leave its client without an
            # answer), nor may its record pass unredacted
            record.msg = f"<a log record of {record.name} that could not be redacted>"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        # an error given as an argument (``log.error("failed: %s", exc)``) shows its
        # text: what it hides (hide_in) must go from the message too
        given = record.args.values() if isinstance(record.args, Mapping) else record.args or ()
        errors = [a for a in (error, *given) if isinstance(a, BaseException)]
        own = set().union(*map(_given, errors)) - _hidden if errors else set()
        if error is None and _pattern is None and not own:
            return
        try:
            message = record.getMessage()
        except Exception:
            # arguments that do not fit the message: logging would print them raw
            message = f"{record.msg} (arguments that do not fit the message: {record.args!r})"
        if error is not None:
            secrets = sorted(_hidden | own)
            record.exc_text = redacted_traceback(error, secrets)
            record.exc_info = None
            cleaned = redact(message, secrets)
        elif own:
            pattern = secrets_pattern(sorted(_hidden | own))
            cleaned = message if pattern is None else pattern.sub(message)
        else:
            cleaned = scrub(message)
        # formatted once: the handler's formatter reads it as it is
        record.msg, record.args = cleaned, None
