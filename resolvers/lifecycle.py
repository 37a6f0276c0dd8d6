"""The schema's extensions run as one: :func:`combine`.

Strawberry makes every extension anew for each request and, for each of its
lifecycle hooks, wraps the hook in a fresh ``contextlib`` context manager
entered through an ``ExitStack``, and calls every extension's
``get_results``: ~8 us a request an extension, ~60 us for the gateway's ten
(a customer 360 costs ~2 ms). :func:`combine` makes one extension of them
whose hooks drive the parts' generators directly, in the same order and
nesting, with the same exception semantics (an outer part sees what an inner
one raised; a part that raises in its exit replaces the exception for the
parts outside it; a part that raises before its ``yield`` leaves the parts
entered before it to be closed when they are dropped, as strawberry's
``ExitStack``, never exited, does).

Even one extension costs strawberry ~25 µs a request: for each stage it
builds a context manager around the hook (``contextlib.contextmanager``, its
``functools.update_wrapper``, a bound method, an ``ExitStack``). A schema made
by :class:`Schema` enters a combined extension's stages through context
managers made once per combined class (:class:`_Runner`), with contextlib's
own enter and exit rules.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from types import TracebackType
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext, ExecutionResult

from connectors import CircuitOpen, SchemaMismatch, SourceTimeout, SourceUnavailable

Hook = tuple[Callable[..., Any], int, bool]
"""A part's hook function (unbound), the part's index, and whether it is async."""

STAGES = ("on_operation", "on_parse", "on_validate", "on_execute", "on_stream_result")


def _kind(factory: Any) -> type[SchemaExtension] | None:
    """The class of the extensions a factory makes (it is made once to tell);
    None for an instance shared by every request (strawberry's deprecated form)."""
    if isinstance(factory, SchemaExtension):
        return None
    kind = factory if isinstance(factory, type) else type(factory())
    return kind if issubclass(kind, SchemaExtension) else None


def _combinable(kind: type[SchemaExtension] | None) -> bool:
    """Hooks that are generators, no ``resolve`` hook (graphql-core middleware)
    and a plain ``get_results``: what :class:`Combined` runs as strawberry would."""
    if kind is None or kind._implements_resolve():
        return False
    if inspect.iscoroutinefunction(kind.get_results):
        return False
    for stage in STAGES:
        hook = getattr(kind, stage)
        if hook is getattr(SchemaExtension, stage):
            continue
        if not (inspect.isgeneratorfunction(hook) or inspect.isasyncgenfunction(hook)):
            return False
    return True


class Combined(SchemaExtension):
    """Extensions run as one; made by :func:`combine` (``factories`` are its parts)."""

    factories: tuple[Any, ...] = ()
    _stages: dict[str, tuple[Callable[[Combined], Any], bool]] = {}
    """Stage -> a context manager factory over its hook, and whether it is async."""
    _results: tuple[Callable[[SchemaExtension], dict[str, Any]], ...] = ()
    _with_results: tuple[int, ...] = ()

    def __init__(self) -> None:
        self.parts = [f() for f in self.factories]

    @property
    def execution_context(self) -> ExecutionContext:
        return self._execution_context

    @execution_context.setter
    def execution_context(self, context: ExecutionContext) -> None:
        self._execution_context = context
        for part in self.parts:
            part.execution_context = context

    def get_results(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        parts = self.parts
        for result, index in zip(self._results, self._with_results, strict=True):
            data.update(result(parts[index]))
        return data


def _exit_sync(entered: list[Generator[None, None, None]], exc: BaseException | None) -> None:
    """Leaves the entered generators, innermost first, as ``contextmanager``
    and ``ExitStack`` would; raises what is left of ``exc``."""
    for gen in reversed(entered):
        if exc is None:
            try:
                next(gen)
            except StopIteration:
                continue
            except BaseException as raised:  # passed on outwards
                exc = raised
                continue
            gen.close()
            exc = RuntimeError("generator didn't stop")
        else:
            try:
                gen.throw(exc)
            except StopIteration as stop:
                if stop is not exc:
                    exc = None  # the part swallowed it
                continue
            except BaseException as raised:  # passed on outwards
                exc = raised
                continue
            gen.close()
            exc = RuntimeError("generator didn't stop after throw()")
    if exc is not None:
        raise exc


async def _exit_async(entered: list[Any], exc: BaseException | None) -> None:
    """:func:`_exit_sync` for a stage with async parts (sync ones mixed in)."""
    for gen in reversed(entered):
        is_async = inspect.isasyncgen(gen)
        if exc is None:
            try:
                if is_async:
                    await gen.__anext__()
                else:
                    next(gen)
            except (StopIteration, StopAsyncIteration):
                continue
            except BaseException as raised:  # passed on outwards
                exc = raised
                continue
            if is_async:
                await gen.aclose()
            else:
                gen.close()
            exc = RuntimeError("generator didn't stop")
        else:
            try:
                if is_async:
                    await gen.athrow(exc)
                else:
                    gen.throw(exc)
            except (StopIteration, StopAsyncIteration) as stop:
                if stop is not exc:
                    exc = None
                continue
            except BaseException as raised:  # passed on outwards
                exc = raised
                continue
            if is_async:
                await gen.aclose()
            else:
                gen.close()
            exc = RuntimeError("generator didn't stop after throw()")
    if exc is not None:
        raise exc


def _sync_stage(hooks: tuple[Hook, ...]) -> Callable[..., Iterator[None]]:
    def stage(self: Combined, *args: Any) -> Iterator[None]:
        parts = self.parts
        entered: list[Generator[None, None, None]] = []
        for hook, index, _ in hooks:
            gen = hook(parts[index], *args)
            try:
                next(gen)
            except StopIteration:
                raise RuntimeError("generator didn't yield") from None
            entered.append(gen)
        try:
            yield
        except BaseException as exc:
            _exit_sync(entered, exc)
            return
        _exit_sync(entered, None)

    return stage


def _async_stage(hooks: tuple[Hook, ...]) -> Callable[..., AsyncIterator[None]]:
    async def stage(self: Combined, *args: Any) -> AsyncIterator[None]:
        parts = self.parts
        entered: list[Any] = []
        for hook, index, is_async in hooks:
            gen = hook(parts[index], *args)
            try:
                if is_async:
                    await gen.__anext__()
                else:
                    next(gen)
            except (StopIteration, StopAsyncIteration):
                raise RuntimeError("generator didn't yield") from None
            entered.append(gen)
        try:
            yield
        except BaseException as exc:
            await _exit_async(entered, exc)
            return
        await _exit_async(entered, None)

    return stage


def parts_of(extensions: Sequence[Any]) -> list[Any]:
    """The extensions (classes or factories) ``extensions`` run, combined or not."""
    found: list[Any] = []
    for extension in extensions:
        if isinstance(extension, type) and issubclass(extension, Combined):
            found.extend(extension.factories)
        else:
            found.append(extension)
    return found


def combine(extensions: Sequence[Any]) -> tuple[Any, ...]:
    """``extensions`` (a schema's: classes or factories, outermost first) as one
    :class:`Combined` extension; unchanged if any of them is not
    :func:`_combinable` (a ``resolve`` hook, a hook that is not a generator)."""
    factories = tuple(parts_of(extensions))
    kinds = [_kind(f) for f in factories]
    if len(factories) < 2 or not all(_combinable(k) for k in kinds):
        return tuple(extensions)
    stages: dict[str, tuple[Callable[[Combined], Any], bool]] = {}
    members: dict[str, Any] = {"factories": factories, "_stages": stages}
    for stage in STAGES:
        default = getattr(SchemaExtension, stage)
        hooks = tuple(
            (getattr(kind, stage), index, inspect.isasyncgenfunction(getattr(kind, stage)))
            for index, kind in enumerate(kinds)
            if kind is not None and getattr(kind, stage) is not default
        )
        if hooks:
            any_async = any(is_async for _, _, is_async in hooks)
            members[stage] = (_async_stage if any_async else _sync_stage)(hooks)
            manager = contextlib.asynccontextmanager if any_async else contextlib.contextmanager
            stages[stage] = (manager(members[stage]), any_async)
    with_results = tuple(
        index
        for index, kind in enumerate(kinds)
        if kind is not None and kind.get_results is not SchemaExtension.get_results
    )
    members["_with_results"] = with_results
    members["_results"] = tuple(kinds[i].get_results for i in with_results)  # type: ignore[union-attr]
    return (type("Combined", (Combined,), members),)


class _Stage:
    """One stage of a :class:`Combined` extension, entered as strawberry enters an
    extension's hook (``ExtensionContextManagerBase``): contextlib's context
    manager over the hook, made from a factory the combined class holds."""

    __slots__ = ("_entered", "_extension", "_name")

    def __init__(self, extension: Combined, name: str) -> None:
        self._extension = extension
        self._name = name
        self._entered: Any = None

    def __enter__(self) -> None:
        found = self._extension._stages.get(self._name)
        if found is None:
            return
        factory, is_async = found
        if is_async:
            raise RuntimeError(
                f"SchemaExtension hook {self._extension}.{self._name} "
                "failed to complete synchronously."
            )
        entered = factory(self._extension)
        entered.__enter__()
        self._entered = entered

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # strawberry ignores a hook's answer: an exception always goes on up
        entered, self._entered = self._entered, None
        if entered is not None:
            entered.__exit__(exc_type, exc, traceback)

    async def __aenter__(self) -> None:
        found = self._extension._stages.get(self._name)
        if found is None:
            return
        factory, is_async = found
        entered = factory(self._extension)
        if is_async:
            await entered.__aenter__()
        else:
            entered.__enter__()
        self._entered = (entered, is_async)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._entered is None:
            return
        (entered, is_async), self._entered = self._entered, None
        if is_async:
            await entered.__aexit__(exc_type, exc, traceback)
        else:
            entered.__exit__(exc_type, exc, traceback)


class _Runner(SchemaExtensionsRunner):
    """strawberry's runner for a request whose only extension is a :class:`Combined`."""

    def operation(self) -> Any:
        return _Stage(self.extensions[0], "on_operation")  # type: ignore[arg-type]

    def parsing(self) -> Any:
        return _Stage(self.extensions[0], "on_parse")  # type: ignore[arg-type]

    def validation(self) -> Any:
        return _Stage(self.extensions[0], "on_validate")  # type: ignore[arg-type]

    def executing(self) -> Any:
        return _Stage(self.extensions[0], "on_execute")  # type: ignore[arg-type]


_errors_log = logging.getLogger("strawberry.execution")

# a source that failed (timed out, unreachable, skipped, schema drifted) is expected
# operation: one warning line. A write attempt (ReadOnlyViolation) or an operation a
# connector cannot do (UnsupportedOperation) is a bug in custview or a plugin and
# keeps strawberry's error with its traceback, as does anything else.
_SOURCE_FAILURES = (SourceTimeout, SourceUnavailable, CircuitOpen, SchemaMismatch)


class Schema(strawberry.Schema):
    """strawberry's schema; once :func:`combine` made its extensions one, their
    stages are entered by :class:`_Runner`. A source's failure (timeout,
    unavailable, open circuit, schema mismatch) is logged as one warning line per
    error (the failed call has its own line in ``custview.source``), not as
    strawberry's error with a traceback; every other error, a refused write or an
    unsupported operation included, keeps the error and its traceback.

    With ``hot_route`` (the default), :meth:`execute` answers a hot operation on
    :class:`resolvers.hot.HotRoute` (made for the schema's extensions as they are
    when it first runs with them), without strawberry's execution machinery."""

    hot_route = True
    _route: Any = None
    _route_for: Any = None
    """The extensions :attr:`_route` was made for."""

    def route(self) -> Any:
        """The :class:`resolvers.hot.HotRoute` of the schema's extensions, or None."""
        if not self.hot_route:
            return None
        if self._route_for is not self.extensions:
            from resolvers.hot import HotRoute  # it reads the schema's resolvers' modules

            self._route, self._route_for = HotRoute.of(self), self.extensions
        return self._route

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Any = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        arguments = (
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        route = self._route if self._route_for is self.extensions else self.route()
        if route is not None and self.hot_route:
            result = await route.execute(*arguments)
            if result is not None:
                return result  # type: ignore[no-any-return]
        return await super().execute(*arguments)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        others = []
        for error in errors:
            if isinstance(error.original_error, _SOURCE_FAILURES):
                where = ".".join(str(p) for p in error.path or ()) or "-"
                _errors_log.warning("%s (at %s)", error.message, where)
            else:
                others.append(error)
        if others:
            super().process_errors(others, execution_context)

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        if len(extensions) == 1 and isinstance(extensions[0], Combined):
            return _Runner(execution_context, extensions)
        return super().create_extensions_runner(execution_context, extensions)
