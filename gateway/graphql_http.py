"""``/graphql`` over HTTP: strawberry's view, and a lean lane for plain POSTs.

Every request can go through the general stack: the request id, the
request guard, the metrics and the authentication middlewares, then
strawberry's ASGI view (body parsing, context, execution, the JSON
response). Each layer builds its own request object, header map or URL
from the ASGI scope, ~0.3 ms a request in all — a tenth of a hot customer
360. :class:`GraphQLLane` answers the ordinary request — ``POST
/graphql`` with a JSON object body, a known client, no header twice —
reading the headers once and doing what those layers do, in their order,
with the same code where it can: the same admission, request id, access
line, metrics, deadline, context and ``schema.execute``, and the response
strawberry's view would build. Anything else, and any request the lane
would refuse, goes to the general stack unchanged (the body it read
replayed), so every refusal is still made in one place.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import process_result
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from connectors.cache import cache_scope
from connectors.deadline import deadline_scope
from connectors.request_id import HEADER, is_valid_request_id, new_request_id, request_id_scope
from gateway.admission import Refused, admit
from gateway.audit import PURPOSE_HEADER, AuditStore, auditor_for, auditor_of
from gateway.auth import Authenticator, Principal
from gateway.graphiql import graphiql_html
from gateway.hardening import JSON_TYPES, Limits
from gateway.metrics import GatewayMetrics
from gateway.request_ids import log_access
from resolvers.audit import Auditor
from resolvers.governance import ReadTrail
from resolvers.policy import Grant, Policy
from resolvers.view import Federation

EXPLAIN_HEADER = "x-custview-explain"
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def graphql_context(
    state: Any,
    request: Request,
    response: Response,
    principal: Principal | None,
    grant: Grant | None,
    explain: str,
    auditor: Auditor,
) -> dict[str, Any]:
    """The GraphQL context of one request (``state``: the app's)."""
    federation: Federation = state.federation
    return {
        "request": request,
        "response": response,
        "view": federation.request(),
        "principal": principal,
        "explain": explain in ("1", "true"),
        "actor": f"{principal.method}:{principal.name}" if principal else "local",
        # with authentication disabled (trusted local use) every caller may decide
        "roles": principal.roles if principal and state.auth_mode != "disabled" else None,
        "grant": grant,
        "trail": ReadTrail(),
        "auditor": auditor,
        "max_page_size": state.limits.max_page_size,
    }


class GraphQLView(GraphQL[dict[str, Any], None]):
    """strawberry's ASGI view with the gateway's context and GraphiQL page."""

    ide_headers: str | None = None

    def encode_json(self, data: object) -> str:
        """strawberry's (``json.dumps`` with its separators), with one encoder for
        every response rather than one made for each."""
        return _ENCODE(data)

    async def render_graphql_ide(self, request: Any) -> Response:
        return HTMLResponse(graphiql_html(self.ide_headers))

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        state = request.app.state
        return graphql_context(
            state,
            request,
            response,
            getattr(request.state, "principal", None),
            getattr(request.state, "grant", None),
            request.headers.get(EXPLAIN_HEADER, ""),
            auditor_for(request, state.audit, "graphql"),
        )


# -- the lane ---------------------------------------------------------------------

_WANTED = frozenset(
    {
        b"content-type",
        b"content-length",
        b"x-request-id",
        b"x-api-key",
        b"authorization",
        EXPLAIN_HEADER.encode(),
        PURPOSE_HEADER.encode(),
    }
)
"""The headers any layer of the general stack reads for a POST /graphql."""
_POST = OperationType.from_http("POST")
_REQUEST_ID = HEADER.lower().encode("latin-1")


class _General(Exception):
    """The request goes to the general stack."""


class GraphQLLane:
    """ASGI middleware, outermost: answers the ordinary ``POST /graphql`` itself
    and hands everything else to ``app``, the general stack."""

    def __init__(
        self,
        app: ASGIApp,
        view: GraphQLView,
        authenticator: Authenticator,
        policy: Policy,
        limits: Limits,
        metrics: GatewayMetrics,
        deadline: float | None,
    ) -> None:
        self.app = app
        self.view = view
        self.schema = view.schema
        self.authenticator = authenticator
        self.policy = policy
        self.limits = limits
        self.metrics = metrics
        self.deadline = deadline
        self.answered = 0
        """Requests the lane answered (the rest went to the general stack), for tests."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/graphql"
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        try:
            headers = _headers(scope)
            principal, grant = self._admitted(headers)
            body = await _body(receive, read, self.limits.max_body_bytes)
            data = _operation(body)
        except Exception:
            # a request it would refuse or read apart, and anything unexpected before
            # it answers (an authenticator's error), goes through the general stack,
            # which answers, counts and logs it as it always does
            await self.app(scope, _replaying(read, receive), send)
            return
        self.answered += 1
        await self._answer(scope, receive, send, headers, principal, grant, data)

    def _admitted(self, headers: Mapping[str, str]) -> tuple[Principal, Grant]:
        declared = headers.get("content-length")
        if (
            not _json_body(headers.get("content-type", ""))
            or (declared is not None and not declared.isdigit())
            or (declared is not None and int(declared) > self.limits.max_body_bytes)
        ):
            raise _General
        try:
            return admit(self.authenticator, self.policy, self.limits, headers)
        except Refused:
            raise _General from None

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Mapping[str, str],
        principal: Principal,
        grant: Grant,
        data: dict[str, Any],
    ) -> None:
        started = time.perf_counter()
        given = headers.get("x-request-id", "")
        request_id = given if is_valid_request_id(given) else new_request_id()
        status = 500
        with request_id_scope(request_id):
            try:
                state = scope.setdefault("state", {})
                state["grant"] = grant
                state["principal"] = principal
                token = cache_scope.set(principal.cache_scope())
                try:
                    try:
                        with deadline_scope(self.deadline):
                            response = await self._execute(scope, receive, headers, principal, data)
                    except Exception:
                        # starlette's error middleware answers 500, as the metrics layer counts it
                        self.metrics.observe_http("/graphql", "POST", 500, started)
                        raise
                    status = response.status_code
                    response.raw_headers.append((_REQUEST_ID, request_id.encode("latin-1")))
                    self.metrics.observe_http("/graphql", "POST", status, started)
                    await response(scope, receive, send)
                finally:
                    cache_scope.reset(token)
            finally:
                log_access("POST", "/graphql", status, started)

    async def _execute(
        self,
        scope: Scope,
        receive: Receive,
        headers: Mapping[str, str],
        principal: Principal,
        data: dict[str, Any],
    ) -> Response:
        """What strawberry's view answers for this operation."""
        request = Request(scope, receive)
        app_state = scope["app"].state
        audit: AuditStore = app_state.audit
        client = scope.get("client")
        auditor = auditor_of(
            audit, "graphql", principal, client[0] if client else None, headers.get("x-purpose")
        )
        sub_response = await self.view.get_sub_response(request)
        context = graphql_context(
            app_state,
            request,
            sub_response,
            principal,
            scope["state"]["grant"],
            headers.get(EXPLAIN_HEADER, ""),
            auditor,
        )
        try:
            result = await self.schema.execute(
                data.get("query"),
                root_value=None,
                variable_values=data.get("variables"),
                context_value=context,
                operation_name=data.get("operationName"),
                allowed_operation_types=_POST,
                operation_extensions=data.get("extensions"),
            )
        except CannotGetOperationTypeError as exc:
            return PlainTextResponse(exc.as_http_error_reason(), status_code=400)
        except InvalidOperationTypeError as exc:
            return PlainTextResponse(exc.as_http_error_reason("POST"), status_code=400)
        except MissingQueryError:
            return PlainTextResponse("No GraphQL query found in the request", status_code=400)
        return _response(self.view, process_result(result), sub_response)


def _response(view: GraphQLView, data: Any, sub_response: Response) -> Response:
    """``view.create_response(data, sub_response)``, its headers moved as lists
    (strawberry's goes through two ``MutableHeaders``): the same status, headers
    and body."""
    response = Response(view.encode_json(data), media_type="application/json")
    if sub_response.raw_headers:
        response.raw_headers.extend(sub_response.raw_headers)
    if sub_response.background:
        response.background = sub_response.background
    if sub_response.status_code:
        response.status_code = sub_response.status_code
    return response


@functools.lru_cache(maxsize=64)
def _json_body(content_type: str) -> bool:
    """Whether the request guard lets this content type through and strawberry's
    view reads the body as JSON (each parses the header its own way)."""
    if content_type.split(";")[0].strip().lower() not in JSON_TYPES:
        return False
    try:
        return "application/json" in parse_content_type(content_type)[0]
    except Exception:  # the view fails on it the same way again
        return False


def _headers(scope: Scope) -> dict[str, str]:
    """The headers the general stack reads; a request that sends one of them
    twice, or not in lower case, goes there (its layers differ on which wins)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED:
            key = name.decode("latin-1")
            if key in found:
                raise _General
            found[key] = value.decode("latin-1")
        elif name.lower() in _WANTED:
            raise _General
    return found


async def _body(receive: Receive, read: list[Message], limit: int) -> bytes:
    """The whole body; ``read`` keeps the messages for the general stack."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            raise _General
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _General
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _operation(body: bytes) -> dict[str, Any]:
    """The operation as strawberry's view reads it; one it would refuse goes to
    the general stack."""
    try:
        data = json.loads(body)
    except Exception:  # strawberry's view answers a bad body (400, or 500 as before)
        raise _General from None
    if not isinstance(data, dict):
        raise _General
    if not isinstance(data.get("query"), str | None):
        raise _General
    if not isinstance(data.get("variables"), dict | None):
        raise _General
    if not isinstance(data.get("extensions"), dict | None):
        raise _General
    if not isinstance(data.get("operationName"), str | None):
        raise _General
    return data


def _replaying(read: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(read)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
