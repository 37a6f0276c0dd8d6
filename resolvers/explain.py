"""The explain plan of a GraphQL request, as a response extension.

When the request asks for it (``extensions: {"explain": true}`` in the
body, or the gateway's ``X-Custview-Explain: 1`` header, which it puts in
the context as ``explain``), every source call made while executing is
recorded through the connectors' observer hook and returned as
``extensions.explain``: per source the statements or requests sent, rows
returned and time spent, and the steps done in memory.
"""

from __future__ import annotations

from typing import Any

from strawberry.types import ExecutionContext

from connectors.observe import Observer, observing
from resolvers.hot import HotExtension


def wants_explain(context: Any, operation_extensions: Any) -> bool:
    asked = isinstance(operation_extensions, dict) and bool(operation_extensions.get("explain"))
    return asked or (isinstance(context, dict) and bool(context.get("explain")))


class ExplainExtension(HotExtension):
    """Adds ``extensions.explain`` to the response of requests that ask for it."""

    def executing(self, context: ExecutionContext) -> tuple[Any, Observer] | None:
        if not wants_explain(context.context, context.operation_extensions):
            return None
        scope = observing()
        return scope, scope.__enter__()

    def executed(
        self,
        context: ExecutionContext,
        state: tuple[Any, Observer] | None,
        raised: BaseException | None,
    ) -> None:
        if state is not None:
            state[0].__exit__(None, None, None)

    def results(self, state: tuple[Any, Observer] | None) -> dict[str, Any]:
        return {} if state is None else {"explain": state[1].report()}
