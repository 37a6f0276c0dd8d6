"""What the server's log handler writes, for tests of what a log line shows."""

from __future__ import annotations

import io
import logging

from gateway.logs import LoggingSettings, log_handler


def logged(*args: object, **kwargs: object) -> str:
    """The text log handler's output for one ``logger.error(*args, **kwargs)`` call."""
    stream = io.StringIO()
    logger = logging.getLogger("custview.test-logged")
    logger.addHandler(log_handler(LoggingSettings(format="text"), stream))
    logger.propagate = False
    try:
        logger.error(*args, **kwargs)  # type: ignore[arg-type]
    finally:
        logger.handlers.clear()
        logger.propagate = True
    return stream.getvalue()
