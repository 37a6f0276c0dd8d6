"""The explain plan of a GraphQL request, as a response extension.

When the request asks for it (``extensions: {"explain": true}`` in the
body, or the gateway's ``X-Custview-Explain: 1`` header, which it puts in
the context as ``explain``), every source call made while executing is
recorded through the connectors' observer hook and returned as
``extensions.explain``: per source the statements or requests sent, rows
returned and time spent, and the steps done in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from connectors.observe import Observer, observing


def wants_explain(context: Any, operation_extensions: Any) -> bool:
    asked = isinstance(operation_extensions, dict) and bool(operation_extensions.get("explain"))
    return asked or (isinstance(context, dict) and bool(context.get("explain")))


class ExplainExtension(SchemaExtension):
    """Adds ``extensions.explain`` to the response of requests that ask for it."""

    observer: Observer | None = None

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if not wants_explain(context, self.execution_context.operation_extensions):
            yield
            return
        with observing() as self.observer:
            yield

    def get_results(self) -> dict[str, Any]:
        if self.observer is None:
            return {}
        return {"explain": self.observer.report()}
