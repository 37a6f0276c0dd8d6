"""API hardening: limits on what one GraphQL request may ask, and the HTTP
rules that keep browsers from being used against the API.

``profile: production`` (the default) and ``profile: demo`` set the defaults;
every value can be overridden under ``limits``:

- documents: depth, aliases, tokens (strawberry's ``QueryDepthLimiter``,
  ``MaxAliasesLimiter``, ``MaxTokensLimiter``) and an estimated cost, where
  a field with ``first`` multiplies what it selects;
- page size: the largest ``first`` any field accepts;
- introspection and GraphiQL (off in production), and field suggestions
  ("Did you mean ...?"), hidden whenever introspection is off;
- HTTP: a request body limit, and CSRF rules — ``POST /graphql`` only with
  ``application/json`` (a browser cannot send that cross-site without a
  CORS preflight), mutations never over ``GET``. Operation batching (a
  JSON array of operations) is never enabled.

The document rules are :mod:`gateway.document_limits` (strawberry and
graphql-core, loaded by the app, not by every command that reads settings).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from strawberry.extensions import SchemaExtension

Profile = Literal["production", "demo"]


class LimitSettings(BaseModel):
    """Each ``None`` takes the profile's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_depth: int | None = Field(default=None, ge=1)
    max_aliases: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost: int | None = Field(default=None, ge=1)
    max_page_size: int | None = Field(default=None, ge=1, le=500)
    max_body_bytes: int | None = Field(default=None, ge=1024)
    introspection: bool | None = None
    graphiql: bool | None = None
    persisted_queries: Path | None = None
    """The allow-list of documents (gateway.persisted); relative to the config file."""
    persisted_only: bool | None = None
    """With ``persisted_queries``: run nothing else."""


PROFILES: dict[Profile, dict[str, Any]] = {
    "production": {
        "max_depth": 8, "max_aliases": 10, "max_tokens": 1000, "max_cost": 20_000,
        "max_page_size": 100, "max_body_bytes": 64 * 1024,
        "introspection": False, "graphiql": False, "persisted_only": True,
    },
    "demo": {
        "max_depth": 12, "max_aliases": 30, "max_tokens": 4000, "max_cost": 200_000,
        "max_page_size": 500, "max_body_bytes": 256 * 1024,
        "introspection": True, "graphiql": True, "persisted_only": False,
    },
}  # fmt: skip


class Limits:
    """The effective limits: the profile's defaults overridden by ``limits``."""

    def __init__(self, profile: Profile, overrides: LimitSettings) -> None:
        values = {**PROFILES[profile]}
        values.update({k: v for k, v in overrides.model_dump().items() if v is not None})
        self.profile = profile
        self.max_depth: int = values["max_depth"]
        self.max_aliases: int = values["max_aliases"]
        self.max_tokens: int = values["max_tokens"]
        self.max_cost: int = values["max_cost"]
        self.max_page_size: int = values["max_page_size"]
        self.max_body_bytes: int = values["max_body_bytes"]
        self.introspection: bool = values["introspection"]
        self.graphiql: bool = values["graphiql"]
        self.persisted_only: bool = values["persisted_only"]

    def extensions(self) -> list[Callable[[], SchemaExtension]]:
        """Strawberry extensions enforcing the document limits
        (:func:`gateway.document_limits.extensions`)."""
        from gateway.document_limits import extensions

        return extensions(self)


# -- HTTP ---------------------------------------------------------------------

JSON_TYPES = ("application/json", "application/graphql-response+json")
"""The bodies ``POST /graphql`` takes."""


def error_body(path: str, message: str, code: str) -> dict[str, Any]:
    """A refusal's body in the shape of the route asked for: ``/graphql`` a GraphQL
    error (``errors[].extensions.code``), every other route (exports, admin) the
    ``{"error": ..., "code": ...}`` its clients read."""
    if path == "/graphql":
        return {"errors": [{"message": message, "extensions": {"code": code}}]}
    return {"error": message, "code": code}


def _refuse(status: int, message: str, code: str, path: str = "/graphql") -> JSONResponse:
    return JSONResponse(error_body(path, message, code), status_code=status)


class RequestGuard:
    """ASGI middleware: body size limit for every route; CSRF rules for /graphql."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        limit = self.limits.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            too_large = f"request body over {limit} bytes"
            await _refuse(413, too_large, "PAYLOAD_TOO_LARGE", scope["path"])(scope, receive, send)
            return
        if scope["path"] == "/graphql":
            refused = _csrf(scope, headers)
            if refused is not None:
                await refused(scope, receive, send)
                return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _capped(receive, limit), tracked)
        except BodyTooLarge:
            if started:
                raise
            too_large = f"request body over {limit} bytes"
            await _refuse(413, too_large, "PAYLOAD_TOO_LARGE", scope["path"])(scope, receive, send)


def _csrf(scope: Scope, headers: dict[str, str]) -> JSONResponse | None:
    method = scope["method"]
    if method == "POST":
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in JSON_TYPES:
            return _refuse(
                415,
                "POST /graphql takes only application/json (form and text bodies are refused "
                "to prevent cross-site request forgery)",
                "UNSUPPORTED_MEDIA_TYPE",
            )
    if method == "GET" and _has_mutation(scope.get("query_string", b"").decode("latin-1")):
        return _refuse(405, "mutations are not accepted over GET; use POST", "METHOD_NOT_ALLOWED")
    return None


def _has_mutation(query_string: str) -> bool:
    from graphql import GraphQLError, OperationDefinitionNode, parse

    for text in parse_qs(query_string).get("query", []):
        try:
            document = parse(text)
        except GraphQLError:
            return "mutation" in text  # unparsable: strawberry refuses it anyway
        if any(
            isinstance(d, OperationDefinitionNode) and d.operation.value != "query"
            for d in document.definitions
        ):
            return True
    return False


class BodyTooLarge(Exception):
    pass


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that fails once more than ``limit`` body bytes arrived (chunked bodies)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(f"request body over {limit} bytes")
        return message

    return wrapped
