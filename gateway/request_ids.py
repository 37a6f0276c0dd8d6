"""One id per HTTP request, from the caller's ``X-Request-ID`` or made here.

The id is set for everything the request does (connectors pass it on to the
sources, every log line carries it), returned in the ``X-Request-ID``
response header and, for GraphQL, in ``extensions.requestId``. A caller's id
that is not 1-64 characters from ``A-Z a-z 0-9 . _ -`` is replaced by a
fresh one (it travels into SQL comments and headers).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.request_id import (
    HEADER,
    current_request_id,
    is_valid_request_id,
    new_request_id,
    request_id_scope,
)
from resolvers.hot import HotExtension

access_log = logging.getLogger("custview.access")
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


def incoming_request_id(headers: Headers) -> str:
    """The caller's id if it is usable as it is, else a fresh one."""
    given = headers.get(HEADER, "")
    return given if is_valid_request_id(given) else new_request_id()


class RequestIdMiddleware:
    """Outermost: sets the request id, stamps the response, writes the access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(Headers(scope=scope))
        started = time.perf_counter()
        status = 500

        async def stamped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        with request_id_scope(request_id):
            try:
                await self.app(scope, receive, stamped)
            finally:
                log_access(scope["method"], scope["path"], status, started)


def log_access(method: str, path: str, status: int, started: float) -> None:
    """The access line of a request answered with ``status``, begun at ``started``
    (``time.perf_counter()``)."""
    ms = round((time.perf_counter() - started) * 1000, 2)
    # probes and scrapes arrive every few seconds: only worth a line when debugging
    quiet = path in PROBES and status < 500
    access_log.log(
        logging.DEBUG if quiet else logging.INFO,
        "%s %s %s in %s ms",
        method,
        path,
        status,
        ms,
        extra={"method": method, "path": path, "status": status, "duration_ms": ms},
    )


class RequestIdExtension(HotExtension):
    """Puts the request id into the GraphQL response's ``extensions``."""

    def results(self, state: None) -> dict[str, Any]:
        request_id = current_request_id()
        return {"requestId": request_id} if request_id else {}
