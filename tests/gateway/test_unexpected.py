"""The one form of an unexpected error's text (:mod:`gateway.unexpected`)."""

from __future__ import annotations

import io
import logging

import pytest

from gateway.logs import LoggingSettings, log_handler
from gateway.unexpected import hide, redacted_traceback

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
