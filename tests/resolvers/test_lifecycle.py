"""Extensions combined into one run as strawberry runs them apart: same order,
nesting, results and errors."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from connectors import (
    CircuitOpen,
    CustviewError,
    DeadlineExceeded,
    ReadOnlyViolation,
    SchemaMismatch,
    SourceTimeout,
    SourceUnavailable,
    UnsupportedOperation,
)
from resolvers.errors import mask_unexpected_errors
from resolvers.lifecycle import Combined, Schema, combine, parts_of


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"

    @strawberry.field
    def broken(self) -> str:
        raise ValueError("internal detail")


def _recording(name: str, log: list[str], fail: str = "") -> type[SchemaExtension]:
    class Recording(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            log.append(f"{name} operation in")
            if fail == "enter":
                raise GraphQLError(f"{name} refuses", extensions={"code": "REFUSED"})
            try:
                yield
            finally:
                result = self.execution_context.result
                errors = [e.message for e in (result.errors or [])] if result else None
                log.append(f"{name} operation out {errors}")

        def on_parse(self) -> Iterator[None]:
            log.append(f"{name} parse in")
            yield
            log.append(f"{name} parse out")

        async def on_execute(self) -> AsyncIterator[None]:
            log.append(f"{name} execute in")
            try:
                yield
            except ValueError as exc:
                log.append(f"{name} execute saw {exc}")
                raise
            if fail == "exit":
                raise ValueError(f"{name} failed on exit")
            log.append(f"{name} execute out")

        def get_results(self) -> dict[str, Any]:
            return {name: len(log), "last": name}

    return Recording


class ResultsOnly(SchemaExtension):
    def get_results(self) -> dict[str, Any]:
        return {"only": True}


def _extensions(log: list[str], fail: dict[str, str]) -> list[Any]:
    return [
        _recording("outer", log, fail.get("outer", "")),
        ResultsOnly,
        lambda: MaskErrors(error_message="masked"),
        _recording("inner", log, fail.get("inner", "")),
    ]


async def _run(
    query: str, combined: bool, fail: dict[str, str], runner: bool = False
) -> tuple[Any, list[str]]:
    """``runner``: the combined extension entered by :class:`Schema`'s runner."""
    log: list[str] = []
    extensions = _extensions(log, fail)
    kind = Schema if runner else strawberry.Schema
    schema = kind(query=Query, extensions=combine(extensions) if combined else extensions)
    result = await schema.execute(query)
    gc.collect()  # a refusal before the yield leaves the outer parts to be closed
    errors = [(e.message, e.extensions) for e in result.errors or []]
    return (result.data, errors, result.extensions), log


@pytest.mark.parametrize(
    ("query", "fail"),
    [
        ("{ hello }", {}),
        ("{ hello broken }", {}),
        ("{ hello", {}),
        ("{ hello }", {"inner": "enter"}),
        ("{ hello }", {"inner": "exit"}),
        ("{ hello }", {"outer": "exit"}),
    ],
)
async def test_combined_extensions_run_as_strawberry_runs_them_apart(
    query: str, fail: dict[str, str]
) -> None:
    apart = await _run(query, False, fail)
    together = await _run(query, True, fail)
    assert together == apart
    assert await _run(query, True, fail, runner=True) == apart
    assert apart[1], "the hooks ran"


def test_one_extension_the_parts_still_listed() -> None:
    log: list[str] = []
    extensions = _extensions(log, {})
    combined = combine(extensions)
    assert len(combined) == 1 and issubclass(combined[0], Combined)
    assert parts_of(combined) == extensions
    assert parts_of(combine([ResultsOnly, *combined])) == [ResultsOnly, *extensions]


def test_an_extension_wrapping_field_resolution_is_not_combined() -> None:
    class Wrapping(SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            return _next(root, info, *args, **kwargs)

    assert combine([ResultsOnly, Wrapping]) == (ResultsOnly, Wrapping)


@strawberry.type
class Failing:
    @strawberry.field
    def bug(self) -> str:
        raise ValueError("password=hunter2")

    @strawberry.field
    def refused(self) -> str:
        raise CustviewError("you may not read this")


@pytest.mark.parametrize("kind", [strawberry.Schema, Schema])
@pytest.mark.parametrize("combined", [False, True])
async def test_unexpected_errors_are_masked_and_custview_errors_kept(
    combined: bool, kind: type[strawberry.Schema]
) -> None:
    extensions = [mask_unexpected_errors]
    schema = kind(
        query=Failing, extensions=combine([*extensions, ResultsOnly]) if combined else extensions
    )
    result = await schema.execute("{ bug }")
    assert [e.message for e in result.errors or []] == ["Internal error (logged on the server)."]
    result = await schema.execute("{ refused }")
    assert [e.message for e in result.errors or []] == ["you may not read this"]
    assert (await schema.execute("{ refused")).errors, "a syntax error is still answered"


def _sync_only(log: list[str]) -> type[SchemaExtension]:
    class SyncOnly(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            log.append("operation in")
            yield
            log.append("operation out")

    return SyncOnly


def test_the_runner_answers_sync_execution_as_strawberry_does() -> None:
    """Sync hooks run; an async hook refuses sync execution with strawberry's error."""
    answers = []
    for kind in (strawberry.Schema, Schema):
        log: list[str] = []
        schema = kind(query=Query, extensions=combine([_sync_only(log), ResultsOnly]))
        result = schema.execute_sync("{ hello }")
        answers.append((result.data, result.extensions, log))
    assert (
        answers[0]
        == answers[1]
        == (
            {"hello": "world"},
            {"only": True},
            ["operation in", "operation out"],
        )
    )
    for kind in (strawberry.Schema, Schema):
        schema = kind(query=Query, extensions=combine(_extensions([], {})))
        result = schema.execute_sync("{ hello }")
        assert result.data is None
        assert [e.message.endswith("on_execute failed to complete synchronously.")
                for e in result.errors or []] == [True]  # fmt: skip


def _swallowing(where: str) -> type[SchemaExtension]:
    """Catches whatever comes out of its ``where`` hook and does not re-raise it."""

    class Swallowing(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            try:
                yield
            except Exception:  # what the test is about
                if where != "operation":
                    raise

        async def on_execute(self) -> AsyncIterator[None]:
            try:
                yield
            except Exception:  # what the test is about
                if where != "execute":
                    raise

    return Swallowing


class _FailsOnExit(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        yield
        raise GraphQLError("boom on exit")


@pytest.mark.parametrize("where", ["operation", "execute"])
async def test_an_extension_swallowing_an_exception_does_not_swallow_it_for_the_schema(
    where: str,
) -> None:
    # strawberry ignores a hook's answer on exit: the exception still goes up
    # (and is answered as strawberry answers it), whatever the hook did with it
    def outcome(kind: type[strawberry.Schema], combined: bool) -> Any:
        extensions = [_swallowing(where), _FailsOnExit]
        schema = kind(query=Query, extensions=combine(extensions) if combined else extensions)
        return schema

    answers = []
    for kind, combined in [(strawberry.Schema, False), (strawberry.Schema, True), (Schema, True)]:
        try:
            result = await outcome(kind, combined).execute("{ hello }")
            answers.append((result.data, [e.message for e in result.errors or []]))
        except Exception as exc:  # compared below
            answers.append(("raised", type(exc).__name__))
    assert answers == [answers[0]] * 3
    if where == "operation":  # out of the stack of execute hooks: answered as an error
        assert answers[0] == (None, ["boom on exit"])


_SOURCE_FAILURES = [
    SourceTimeout("timed out after 2.0 s", source="crm"),
    DeadlineExceeded("the request's deadline passed", source="crm"),
    SourceUnavailable("connection refused", source="crm"),
    CircuitOpen("skipped for 30 s after 5 failures", source="crm"),
    SchemaMismatch("no table 'customers'", source="crm", table="customers"),
]
_BUGS = [
    ReadOnlyViolation("refused a POST /api/customers (custview only reads)", source="crm"),
    UnsupportedOperation("cannot sort by 'score'", source="crm"),
    KeyError("bug"),
]


def _raising(error: Exception) -> Schema:
    @strawberry.type
    class Failing:
        @strawberry.field
        def x(self) -> int:
            raise error

    return Schema(query=Failing)


@pytest.mark.parametrize("error", _SOURCE_FAILURES, ids=lambda e: type(e).__name__)
def test_a_source_failure_is_one_warning_line_without_a_traceback(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="strawberry.execution")
    assert _raising(error).execute_sync("{ x }").errors
    (record,) = [r for r in caplog.records if r.name == "strawberry.execution"]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == f"{error} (at x)"


@pytest.mark.parametrize("error", _BUGS, ids=lambda e: type(e).__name__)
def test_a_refused_write_or_an_unsupported_operation_is_an_error_with_its_traceback(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """A write attempt (a custview or plugin bug, security-relevant) or an operation
    a connector cannot do (a planner or plugin bug) is not a source failing."""
    caplog.set_level(logging.DEBUG, logger="strawberry.execution")
    assert _raising(error).execute_sync("{ x }").errors
    (record,) = [r for r in caplog.records if r.name == "strawberry.execution"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[1] is error
