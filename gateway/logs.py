"""What ``custview serve`` writes to stderr: text for people, JSON lines for
log shippers, every line of a request stamped with that request's id.

custview's own loggers (``custview.*``: ``custview.access`` one line per HTTP
request, ``custview.source`` one per source call, debug when it succeeded and
a warning when it failed) and uvicorn's start/stop lines go through one
handler at the configured level; other libraries only speak at ``warning``.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from connectors.request_id import current_request_id
from gateway.unexpected import RedactingFilter

LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]
OWN_LOGGERS = ("custview", "gateway", "resolvers", "connectors", "uvicorn.error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "request_id", "message")


class LoggingSettings(BaseModel):
    """``logging`` in the settings file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: LogFormat = "text"
    level: LogLevel = "info"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request it was written for (or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


def formatter(kind: LogFormat) -> logging.Formatter:
    if kind == "text":
        return logging.Formatter(TEXT_FORMAT)
    return JsonFormatter(
        JSON_FIELDS,
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        json_ensure_ascii=False,
    )


def log_handler(settings: LoggingSettings, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing ``settings.format`` lines, each with its request id, and
    no secret (:class:`gateway.unexpected.RedactingFilter`)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(settings.format))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    return handler


def configure_logging(settings: LoggingSettings, stream: TextIO | None = None) -> logging.Handler:
    """Route every log line of the process through one handler (replacing the
    handler an earlier call installed, so a reload can change the format)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "custview", False)]:
        root.removeHandler(old)
    handler = log_handler(settings, stream)
    handler.custview = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = settings.level.upper()
    for name in OWN_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers.clear()  # uvicorn's own; ours is on the root
        logger.propagate = True
    return handler
