"""Hot operations without strawberry's execution machinery: :class:`HotRoute`.

An operation seen before — its document parsed and found valid by the
document cache, its plan compiled by the fast path — still cost strawberry
~250 function calls a request around the plan (a customer 360 is ~2,400):
an execution context, a fresh instance of every extension, a context
manager per stage, the stages' generators, the result's conversion.
:class:`HotRoute` runs such an operation itself, doing what every extension
does at the points its hooks would do it, then the plan.

The work is written once: an extension that can run hot is a
:class:`HotExtension`, whose work is plain methods — :meth:`~HotExtension.ask`
(``on_operation`` before its ``yield``, deciding the request: no side
effect), :meth:`~HotExtension.begin` / :meth:`~HotExtension.end` (the rest of
``on_operation``, around the operation), :meth:`~HotExtension.executing` /
:meth:`~HotExtension.executed` (``on_execute``, around the plan) and
:meth:`~HotExtension.results` (``get_results``). Its strawberry hooks are
made from those methods (:meth:`HotExtension.__init_subclass__`), and the
route calls the same methods in the same order: ``ask``s and ``begin``s
outermost first, ``executing``s outermost first, the plan, then
``executed``s and ``end``s innermost first, each seeing the exception the
inner ones ended with (as a generator sees it thrown at its ``yield``), and
the ``results`` outermost first.

The route answers only what it can answer as strawberry would; anything else
returns None before any side effect and goes to strawberry's path (which
parses, validates, compiles and answers it, errors included): an extension
that is not a :class:`HotExtension` (the schema then has no route), an ``ask``
that refuses (a persisted query not listed), a document not cached or not
valid, an operation type not allowed, an operation the fast path did not
compile or whose variables it leaves to graphql-core.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, _coerce_error
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from resolvers.documents import DocumentCache, cache_of
from resolvers.lifecycle import parts_of

if TYPE_CHECKING:
    from resolvers.fastpath import FastPath
    from resolvers.lifecycle import Schema

_QUERY = OperationType.QUERY
_RAISED = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)
"""What strawberry's ``execute`` raises rather than answers."""


class HotExtension(SchemaExtension):
    """An extension whose work is the methods below, so that :class:`HotRoute` can
    do it without strawberry. A subclass defines those it needs; its
    ``on_operation``, ``on_execute`` and ``get_results`` are made from them. The
    methods read the operation's :class:`ExecutionContext` and a state they made,
    never the instance's own per-request attributes: the route calls them on one
    instance made when it is built, for every request."""

    _hot_state: Any = None
    """The state :meth:`executing` made (strawberry's path: for :meth:`results`)."""

    def ask(self, context: ExecutionContext) -> None:
        """``on_operation`` before its ``yield`` and before :meth:`begin`: settle what
        the operation is (its query, parse options, validation rules) without side
        effects. On the hot route, raising sends the operation to strawberry's path."""

    def begin(self, context: ExecutionContext) -> Any:
        """``on_operation`` before its ``yield``, after :meth:`ask`: a state for :meth:`end`."""

    def end(self, context: ExecutionContext, state: Any, raised: BaseException | None) -> None:
        """``on_operation`` after its ``yield``; ``raised``: what the operation raised
        (it goes on up after this; raising replaces it)."""

    def executing(self, context: ExecutionContext) -> Any:
        """``on_execute`` before its ``yield``: a state for :meth:`executed` and :meth:`results`."""

    def executed(self, context: ExecutionContext, state: Any, raised: BaseException | None) -> Any:
        """``on_execute`` after its ``yield`` (may be a coroutine function); ``raised``
        as for :meth:`end`."""

    def results(self, state: Any) -> dict[str, Any]:
        """``get_results``: ``state`` is :meth:`executing`'s (None if it did not run)."""
        return {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # set as attributes: the hooks are the same functions for every subclass
        if _defines(cls, "begin", "end"):
            setattr(cls, "on_operation", _operation)  # noqa: B010
        elif _defines(cls, "ask"):
            setattr(cls, "on_operation", _asking)  # noqa: B010
        if _defines(cls, "executing", "executed"):
            awaits = inspect.iscoroutinefunction(cls.executed)
            setattr(cls, "on_execute", _executing_async if awaits else _executing)  # noqa: B010
        if _defines(cls, "results"):
            setattr(cls, "get_results", _results)  # noqa: B010


def _defines(cls: type, *names: str) -> bool:
    return any(getattr(cls, n) is not getattr(HotExtension, n) for n in names)


def _own_hooks(cls: type) -> bool:
    """Whether ``cls`` has a strawberry hook of its own (written on it, not made from
    its methods): the route would not run it, so such an extension has no route."""
    for name, made in _HOOKS.items():
        hook = getattr(cls, name)
        if hook is not getattr(SchemaExtension, name) and hook not in made:
            return True
    return False


def _asking(self: HotExtension) -> Iterator[None]:
    self.ask(self.execution_context)
    yield


def _operation(self: HotExtension) -> Iterator[None]:
    context = self.execution_context
    self.ask(context)
    state = self.begin(context)
    try:
        yield
    except BaseException as error:
        self.end(context, state, error)
        raise
    self.end(context, state, None)


def _executing(self: HotExtension) -> Iterator[None]:
    context = self.execution_context
    state = self._hot_state = self.executing(context)
    try:
        yield
    except BaseException as error:
        self.executed(context, state, error)
        raise
    self.executed(context, state, None)


async def _executing_async(self: HotExtension) -> AsyncIterator[None]:
    context = self.execution_context
    state = self._hot_state = self.executing(context)
    try:
        yield
    except BaseException as error:
        await self.executed(context, state, error)
        raise
    await self.executed(context, state, None)


def _results(self: HotExtension) -> dict[str, Any]:
    return self.results(self._hot_state)


_HOOKS: dict[str, tuple[Any, ...]] = {
    "on_operation": (_operation, _asking),
    "on_validate": (),
    "on_parse": (),
    "on_execute": (_executing, _executing_async),
    "get_results": (_results,),
}
"""strawberry's hooks, each with those :class:`HotExtension` makes for it
(``on_stream_result`` serves incremental execution only, which has no route)."""


class HotRoute:
    """Runs a schema's hot operations without strawberry (see the module); made by
    :meth:`of` when every extension of the schema can."""

    def __init__(
        self,
        schema: Schema,
        parts: list[HotExtension],
        documents: DocumentCache,
        fast: FastPath,
    ) -> None:
        self.schema = schema
        self.documents = documents
        self.fast = fast
        self.answered = 0
        """Operations the route answered (the rest went to strawberry's path), for tests."""
        self._asks = tuple(p.ask for p in parts if _defines(type(p), "ask"))
        self._operating = tuple(
            (p, p.begin if _defines(type(p), "begin") else None)
            for p in parts
            if _defines(type(p), "begin", "end")
        )
        self._executing = tuple(p for p in parts if _defines(type(p), "executing", "executed"))
        self._starting = tuple(
            p.executing if _defines(type(p), "executing") else None for p in self._executing
        )
        """Each of :attr:`_executing`'s ``executing`` (None: the default's, no call)."""
        self._results = tuple(
            (p, self._executing.index(p) if p in self._executing else -1)
            for p in parts
            if _defines(type(p), "results")
        )

    @classmethod
    def of(cls, schema: Schema) -> HotRoute | None:
        """The route of ``schema``'s extensions: each a :class:`HotExtension`, the
        document cache's and, last, the fast path's; else None (strawberry's path
        answers everything)."""
        from resolvers.fastpath import fast_path_of  # loaded with the schema's resolvers

        if schema.directives or schema.config.enable_experimental_incremental_execution:
            return None  # strawberry adds an extension of its own, or executes apart
        parts: list[HotExtension] = []
        documents: DocumentCache | None = None
        fast: FastPath | None = None
        for factory in parts_of(schema.extensions):
            if isinstance(factory, SchemaExtension) or fast is not None:
                return None  # shared by every request (deprecated), or after the fast path
            part = factory()
            if (
                isinstance(part, HotExtension)
                and not part._implements_resolve()
                and not _own_hooks(type(part))
            ):
                parts.append(part)
            elif documents is None and (cache := cache_of(part)) is not None:
                documents = cache
            elif (found := fast_path_of(part)) is not None:
                fast = found
            else:
                return None
        if documents is None or fast is None:
            return None
        return cls(schema, parts, documents, fast)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None,
        context_value: Any,
        root_value: Any,
        operation_name: str | None,
        allowed_operation_types: Any,
        operation_extensions: dict[str, Any] | None,
    ) -> ExecutionResult | None:
        """``schema.execute``'s answer for a hot operation; None for any other."""
        allowed = (  # as strawberry: only None is the default (an empty set allows none)
            DEFAULT_ALLOWED_OPERATION_TYPES
            if allowed_operation_types is None
            else allowed_operation_types
        )
        if _QUERY not in allowed:
            return None
        context = ExecutionContext(
            query=query,
            schema=self.schema,
            allowed_operations=allowed,
            context=context_value,
            root_value=root_value,
            variables=variable_values,
            provided_operation_name=operation_name,
            operation_extensions=operation_extensions,
        )
        try:
            for ask in self._asks:
                ask(context)
        except Exception:  # strawberry's path refuses it the same way again
            return None
        query = context.query
        rules = context.validation_rules
        if not query or not rules:
            return None
        document = self.documents.known(query, context.parse_options, tuple(rules))
        if document is None:
            return None
        context.graphql_document = document
        context.pre_execution_errors = []  # the cached verdict: valid
        try:
            ready = self.fast.ready(context)
        except Exception:  # variables it cannot read (not a dict): strawberry's path
            return None  # answers them with its error, as it always did
        if ready is None:
            return None
        self.answered += 1
        return await self._run(context, ready)

    async def _run(
        self, context: ExecutionContext, ready: Callable[[], Awaitable[GraphQLExecutionResult]]
    ) -> ExecutionResult:
        """strawberry's ``execute`` from its ``on_operation`` stage on, for an operation
        whose document is valid and whose plan is ``ready``."""
        operating: list[tuple[HotExtension, Any]] = []
        states: list[Any] = [None] * len(self._executing)
        entered = 0
        error: BaseException | None = None
        try:
            for part, begin in self._operating:
                operating.append((part, None if begin is None else begin(context)))
            for executing in self._starting:
                if executing is not None:
                    states[entered] = executing(context)
                entered += 1
            result = await ready()
            self.fast.compiled += 1
            context.result = result
            if result.errors:
                context.pre_execution_errors = result.errors
                self.schema._process_errors(result.errors, context)
        except BaseException as raised:
            error = raised
        for index in range(entered - 1, -1, -1):
            try:
                done = self._executing[index].executed(context, states[index], error)
                if done is not None:
                    await done
            except BaseException as raised:
                error = raised
        for part, state in reversed(operating):
            try:
                part.end(context, state, error)
            except BaseException as raised:
                error = raised
        if error is not None:
            if not isinstance(error, Exception) or isinstance(error, _RAISED):
                raise error
            failed = PreExecutionError(data=None, errors=[_coerce_error(error)])
            context.pre_execution_errors = failed.errors
            self.schema._process_errors(failed.errors or [], context)
            failed.extensions = self._extensions(context, states)
            context.result = failed
            return failed
        done_result = context.result
        assert done_result is not None
        if done_result.errors:
            context.pre_execution_errors = done_result.errors
        answer = ExecutionResult(data=done_result.data, errors=done_result.errors)
        answer.extensions = self._extensions(context, states)
        context.result = answer
        return answer

    def _extensions(self, context: ExecutionContext, states: list[Any]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for part, index in self._results:
            data.update(part.results(states[index] if index >= 0 else None))
        if context.extensions_results:
            data.update(context.extensions_results)
        return data
