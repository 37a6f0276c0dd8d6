"""Operator endpoints, for the ``admin`` role (anyone when authentication is disabled).

``POST /admin/cache/clear`` with a JSON object — ``{}`` (everything),
``{"source": "crm"}``, ``{"source": "crm", "table": "contacts"}`` or
``{"customer": "<id>"}`` (optionally with ``source``) — invalidates cached
source answers on every replica sharing the cache, as ``custview cache clear``
does (:mod:`resolvers.cache_control`).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors import QueryError
from resolvers.cache_control import clear_cache
from resolvers.view import Federation

ADMIN_ROLE = "admin"
_FIELDS = ("source", "table", "customer")


def _error(message: str, code: str, status: int) -> Response:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def _arguments(raw: bytes) -> dict[str, str]:
    try:
        body: Any = json.loads(raw or b"{}")
    except ValueError:
        raise QueryError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise QueryError('send a JSON object, e.g. {"source": "crm"} or {"customer": "<id>"}')
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise QueryError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    for name, value in body.items():
        if not isinstance(value, str) or not value:
            raise QueryError(f"'{name}' must be a non-empty string")
    return body


async def clear_cache_endpoint(request: Request) -> Response:
    principal = getattr(request.state, "principal", None)
    roles = principal.roles if principal is not None else frozenset()
    if request.app.state.auth_mode != "disabled" and ADMIN_ROLE not in roles:
        return _error(f"clearing the cache needs the '{ADMIN_ROLE}' role", "FORBIDDEN", 403)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        return _error("send application/json", "UNSUPPORTED_MEDIA_TYPE", 415)
    federation: Federation = request.app.state.federation
    try:
        arguments = _arguments(await request.body())
        cleared = await clear_cache(federation, **arguments)
    except QueryError as exc:
        return _error(exc.message, exc.code, 400)
    if not cleared.customer_found:
        return _error(f"no customer with id '{arguments['customer']}'", "NOT_FOUND", 404)
    return JSONResponse({"cleared": cleared.sources})
