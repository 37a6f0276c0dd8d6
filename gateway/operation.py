"""One GraphQL operation run in-process by a command (``custview query``,
``explain``, ``sar``, ``erase``): the sources opened for it and closed after,
under the server's request deadline and a request id of its own, and the
result as a response body."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import ExecutionResult

from connectors.deadline import deadline_scope
from connectors.request_id import new_request_id, request_id_scope
from gateway.settings import LoadedSettings
from resolvers.view import Federation


async def execute_locally(
    loaded: LoadedSettings,
    schema: strawberry.Schema,
    federation: Federation,
    text: str,
    variables: dict[str, Any] | None,
    context: dict[str, Any],
) -> ExecutionResult:
    try:
        await federation.open()
        # a request id per run: the sources see it in their logs, as for HTTP requests
        with (
            deadline_scope(loaded.settings.server.request_deadline),
            request_id_scope(new_request_id()),
        ):
            return await schema.execute(text, variable_values=variables, context_value=context)
    finally:
        await federation.aclose()


def body_of(result: ExecutionResult, extensions: bool = False) -> dict[str, Any]:
    """The JSON body a client would get: data, errors, and extensions if asked."""
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [e.formatted for e in result.errors]
    if extensions and result.extensions:
        body["extensions"] = result.extensions
    return body
