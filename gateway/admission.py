"""Who may come in: every route but the open ones needs a principal the
authenticator accepts and the policy grants something to.

:class:`Authentication` is the ASGI middleware of the general stack;
:func:`admit` is its decision, which the GraphQL lane
(:mod:`gateway.graphql_http`) takes the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors import CustviewError
from connectors.cache import cache_scope
from gateway.auth import Authenticator, AuthError, Principal
from gateway.hardening import Limits, error_body
from resolvers.policy import AccessDenied, Grant, Policy


def is_open(request: Request) -> bool:
    """Routes anyone may reach: health, metrics, static files and the GraphiQL page."""
    path = request.url.path
    if path in ("/", "/healthz", "/readyz", "/metrics") or path.startswith("/static/"):
        return True
    return path == "/graphql" and request.method == "GET" and "query" not in request.query_params


def refusal(exc: CustviewError, status: int, path: str = "/graphql") -> Response:
    """The answer to a refused request in the shape of the route it asked for:
    ``/graphql`` a GraphQL error (``errors[].extensions.code``), the export and
    admin routes their own ``{"error": ..., "code": ...}``; a 401 says how to
    authenticate (``WWW-Authenticate``) either way."""
    body = error_body(path, exc.message, exc.code)
    headers = {"www-authenticate": 'Bearer realm="custview"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


class Refused(Exception):
    """A request that may not come in: the error to answer and its HTTP status."""

    def __init__(self, error: CustviewError, status: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.status = status

    def response(self, path: str = "/graphql") -> Response:
        return refusal(self.error, self.status, path)


def admit(
    authenticator: Authenticator, policy: Policy, limits: Limits, headers: Mapping[str, str]
) -> tuple[Principal, Grant]:
    """The caller and what it may read; :class:`Refused` says why not."""
    try:
        principal = authenticator.authenticate(headers)
    except AuthError as exc:
        raise Refused(exc, 401) from None
    if (
        principal.method == "anonymous"
        and limits.profile == "production"
        and authenticator.settings.mode == "optional"
    ):
        # `optional` lets anonymous callers in with anonymous_roles: not in production
        refused = AuthError("the production profile refuses anonymous requests; send a key")
        raise Refused(refused, 401)
    try:
        # what the principal may read: one grant for GraphQL and exports alike
        return principal, policy.grant(principal.roles, principal.attributes)
    except AccessDenied as exc:
        raise Refused(exc, 403) from None


class Authentication:
    """Who is calling and what they may read, before any route but the open ones."""

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, policy: Policy, limits: Limits
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.policy = policy
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if is_open(request):
            await self.app(scope, receive, send)
            return
        try:
            principal, grant = admit(self.authenticator, self.policy, self.limits, request.headers)
        except Refused as refused:
            await refused.response(request.url.path)(scope, receive, send)
            return
        request.state.grant = grant
        request.state.principal = principal
        token = cache_scope.set(principal.cache_scope())
        try:
            await self.app(scope, receive, send)
        finally:
            cache_scope.reset(token)
