"""The one place where custview errors become GraphQL errors.

Field errors keep graphql-core's path and gain ``extensions.code`` (and
``extensions.source``); source failures seen while stitching, which belong
to no single field, are added as one error per source so the rest of the
answer still stands.
"""

from __future__ import annotations

from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext
from strawberry.types import ExecutionResult as StrawberryExecutionResult

from connectors import ConnectorError, CustviewError
from connectors.cache import Freshness, freshness_scope
from resolvers.hot import HotExtension


def extensions_for(error: BaseException | None) -> dict[str, Any]:
    if isinstance(error, ConnectorError):
        return {"code": error.code, "source": error.source}
    if isinstance(error, CustviewError):
        return {"code": error.code}
    return {}


class _Sources:
    """What :class:`SourceErrorsExtension` keeps of one operation."""

    __slots__ = ("failed", "freshness", "scope")

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}
        self.scope = freshness_scope()
        self.freshness: Freshness = self.scope.__enter__()


class SourceErrorsExtension(HotExtension):
    """Adds codes to errors, reports stitching-time source failures, and says in
    ``extensions.custview`` whether the view is complete and, when sources are
    cached, how fresh each source's data is (``freshness``)."""

    def executing(self, context: ExecutionContext) -> _Sources:
        return _Sources()  # the freshness of the calls made while executing

    def executed(
        self, context: ExecutionContext, state: _Sources, raised: BaseException | None
    ) -> None:
        state.scope.__exit__(None, None, None)
        result = context.result
        if raised is not None or result is None:
            return
        errors = list(result.errors or [])
        for error in errors:
            code = extensions_for(error.original_error)
            if code:
                error.extensions = {**(error.extensions or {}), **code}
        view = (context.context or {}).get("view")
        seen: set[str] = {e.extensions.get("source", "") for e in errors if e.extensions}
        for failure in getattr(view, "errors", []):
            if failure.source in seen:
                continue
            seen.add(failure.source)
            errors.append(
                GraphQLError(
                    failure.message, original_error=failure, extensions=extensions_for(failure)
                )
            )
        result.errors = errors or None
        for error in errors:
            extensions = error.extensions or {}
            if extensions.get("source"):
                state.failed.setdefault(extensions["source"], extensions["code"])

    def results(self, state: _Sources | None) -> dict[str, Any]:
        if state is None:
            return {}
        failed, fresh = state.failed, state.freshness
        custview: dict[str, Any] = {}
        if failed:
            custview.update(incomplete=True, failedSources=failed)
        if fresh:
            custview["freshness"] = {
                source: {k: (v if k == "max_age_s" else int(v)) for k, v in counts.items()}
                for source, counts in sorted(fresh.items())
            }
        return {"custview": custview} if custview else {}


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, CustviewError | GraphQLError)


class _MaskErrors(MaskErrors, HotExtension):
    def end(self, context: ExecutionContext, state: None, raised: BaseException | None) -> None:
        """MaskErrors' ``on_operation`` after its ``yield``."""
        if raised is not None or self._stream_result_processed:
            return
        result = context.result
        if isinstance(result, GraphQLExecutionResult | StrawberryExecutionResult):
            self._process_result(result)
        elif initial_result := getattr(result, "initial_result", None):
            self._process_result(initial_result)

    def _process_result(self, result: object) -> None:
        # MaskErrors asks isinstance() of a runtime-checkable protocol, ~8 us a
        # request on Python 3.11; this is the check it makes (an ``errors``
        # attribute, not empty)
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


def mask_unexpected_errors() -> MaskErrors:
    """Hide the message of errors custview did not raise on purpose (bugs, not
    user errors): they may carry internals; the server log keeps the detail."""
    return _MaskErrors(
        should_mask_error=_is_unexpected, error_message="Internal error (logged on the server)."
    )
