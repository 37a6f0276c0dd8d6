"""The one form of an unexpected error's text (:mod:`gateway.unexpected`)."""

from __future__ import annotations

import io
import logging

import pytest

from gateway.logs import LoggingSettings, log_handler
from gateway.unexpected import hide, redacted_traceback, report
from tests.support.logs import logged as _logged

SECRET = "chain-5ecret-value"


def _chained() -> BaseException:
    try:
        try:
            raise KeyError(f"first {SECRET}")
        except KeyError as inner:
            raise RuntimeError(f"second postgresql://u:{SECRET}@h/db\nthird line") from inner
    except RuntimeError as exc:
        return exc


def test_every_error_of_a_chain_and_a_group_is_redacted() -> None:
    hide([SECRET])
    group = ExceptionGroup("several", [_chained(), ValueError(SECRET)])
    text = redacted_traceback(group)
    assert SECRET not in text
    assert "KeyError: 'first ***'" in text
    assert "RuntimeError: second <url>\n" in text  # its first line only
    assert "The above exception was the direct cause of the following exception" in text
    assert "ValueError: ***" in text and "ExceptionGroup: several" in text
    assert "in _chained" in text, "where each was raised"


@pytest.mark.parametrize("kind", ["text", "json"])
def test_the_log_handler_redacts_messages_and_tracebacks(kind: str) -> None:
    hide([SECRET])
    stream = io.StringIO()
    logger = logging.getLogger("custview.test-unexpected")
    logger.addHandler(log_handler(LoggingSettings(format=kind), stream))  # type: ignore[arg-type]
    logger.propagate = False
    try:
        logger.warning("running on http://127.0.0.1:8000 with %s", SECRET)
        logger.error("failed: %s", _chained(), exc_info=_chained())
    finally:
        logger.handlers.clear()
        logger.propagate = True
    text = stream.getvalue()
    assert SECRET not in text
    assert "running on http://127.0.0.1:8000 with ***" in text  # no error: URLs stay
    assert "failed: second <url>" in text and "RuntimeError: second <url>" in text


def test_a_log_line_without_an_error_loses_a_secrets_percent_encoded_form() -> None:
    """Its URLs stay (no error: a listening address is worth reading), so a secret a
    URL carries percent-encoded must go by that form."""
    token = "key/With+Slash=="
    hide([token])
    text = _logged("fetched https://api.local/v1/people?api_key=%s", "key%2FWith%2BSlash%3D%3D")
    assert "Slash" not in text
    assert "fetched https://api.local/v1/people?api_key=***" in text


def test_short_hidden_values_leave_encoded_text_alone() -> None:
    """A settings load that fails hides every value taken from the environment, short
    ones too (a port, a separator): none of them blanks the ``%2F`` of a logged URL."""
    hide(["//", "a b", "1,2"])
    line = "GET /login?next=https%3A%2F%2Fshop.example%2Fcart&q=a%20b&ids=1%2C2%2C3"
    assert _logged("%s", line).rstrip("\n").endswith(line)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_an_error_whose_text_cannot_be_had_is_logged_and_reported_by_its_type() -> None:
    hide([SECRET])
    try:
        raise _Unprintable()
    except _Unprintable as exc:
        error = exc
    # the log call itself raised: uvicorn's "Exception in ASGI application" left
    # its client without an answer
    text = _logged("Exception in ASGI application", exc_info=error)
    assert "Exception in ASGI application" in text
    assert "<_Unprintable (unprintable)>" in text and "raise _Unprintable()" in text
    assert report(error).startswith("error: unexpected <_Unprintable (unprintable)>\n")


def test_arguments_that_do_not_fit_the_message_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hide([SECRET])
    text = _logged("two %s %s", SECRET)
    assert SECRET not in text + capsys.readouterr().err  # logging's handleError printed them
    assert "two %s %s (arguments that do not fit the message: ('***',))" in text


def test_an_export_workers_unexpected_error_keeps_its_cause_redacted() -> None:
    """What a worker sends across its pipe for an error raised from another: the
    cause too (it says why), as the server's log shows a chain."""
    from gateway.export_workers import _unexpected

    hide([SECRET])
    described, trace = _unexpected(_chained())
    assert described == "RuntimeError: second <url>"
    assert "KeyError: 'first ***'" in trace and "in _chained" in trace
    assert "The above exception was the direct cause of the following exception" in trace
    assert SECRET not in described + trace
