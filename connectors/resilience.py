"""Per-source resilience around any connector: bulkhead, circuit breaker, retries.

:class:`ResilientConnector` wraps a connector and is one itself, so every
caller — stitching, loaders, scans, exports — gets the same policy:

* a **bulkhead** (a semaphore per source) so one slow source cannot take
  every worker, on top of the connector's own pool;
* a **circuit breaker** (purgatory) that, after ``breaker_threshold``
  consecutive failures, answers ``CircuitOpen`` at once for
  ``breaker_recovery`` seconds, then lets a probe through (half-open);
* **retries** with exponential backoff and jitter (stamina) for reads that
  failed because the source was unavailable — never for timeouts, whose
  budget is already spent, nor for errors in the request itself, nor for a
  failure the connector already retried itself (``SourceUnavailable.retryable``
  false: the REST client's retries honour ``Retry-After``; a second layer
  would multiply the requests to a failing API).

Errors in the request (bad query, unsupported operation, schema mismatch)
do not count against the source.

Inside a :func:`~connectors.deadline.deadline_scope` (one GraphQL request)
the whole call — waiting at the bulkhead, every attempt, every backoff — ends
at the deadline with :class:`DeadlineExceeded`, or with the last
``SourceUnavailable`` when the deadline leaves no time to retry. Connectors
cut their own timeouts to the deadline (:func:`~connectors.deadline.time_left`);
the wrapper's own limit, a moment later, is the backstop for those that do not.
A call cut by the deadline does not count against the circuit breaker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import stamina
from purgatory import AsyncCircuitBreakerFactory, AsyncInMemoryUnitOfWork
from purgatory.domain.model import OpenedState
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker
from pydantic import BaseModel, ConfigDict, Field

from connectors._base import (
    Connector,
    Row,
    ScanRequest,
)
from connectors._wrapping import Call, ConnectorWrapper, relay, wrapper_in
from connectors.deadline import Deadline, current_deadline
from connectors.errors import (
    CircuitOpen,
    CustviewError,
    DeadlineExceeded,
    QueryError,
    ReadOnlyViolation,
    SchemaMismatch,
    SourceUnavailable,
    UnsupportedOperation,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

T = TypeVar("T")
log = logging.getLogger("custview.source")
# silent unless the process configures logging (custview serve): the CLI reports failures itself
log.addHandler(logging.NullHandler())
BACKSTOP = 0.05
"""Seconds past the deadline the wrapper waits for a connector to end its own call,
so a connector that honours the deadline reports it (and cleans up) itself."""
Observer = Callable[[str, str, str, float], None]
BreakerState = Literal["closed", "opened", "half-opened"]

_NOT_THE_SOURCES_FAULT: list[Any] = [
    QueryError,
    UnsupportedOperation,
    SchemaMismatch,
    ReadOnlyViolation,
    CircuitOpen,
    DeadlineExceeded,
    asyncio.CancelledError,
    GeneratorExit,
]


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, SourceUnavailable) and exc.retryable


class ResilienceOptions(BaseModel):
    """``sources.<name>.resilience`` in the settings file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrency: int = Field(default=16, ge=1)
    """Calls in flight to this source at once; the rest wait (bulkhead)."""
    retries: int = Field(default=2, ge=0, le=10)
    """Extra attempts for a read that found the source unavailable."""
    retry_initial_wait: float = Field(default=0.05, ge=0)
    retry_max_wait: float = Field(default=1.0, ge=0)
    breaker_threshold: int = Field(default=5, ge=1)
    """Consecutive failures that open the circuit."""
    breaker_recovery: float = Field(default=30.0, gt=0)
    """Seconds the circuit stays open before a probe is let through."""


class ResilientConnector(ConnectorWrapper):
    """``inner`` behind a bulkhead, a circuit breaker and retries."""

    kind = "resilient"

    def __init__(
        self,
        inner: Connector,
        options: ResilienceOptions | None = None,
        breakers: AsyncCircuitBreakerFactory | None = None,
    ) -> None:
        super().__init__(inner)
        self.policy = options or ResilienceOptions()
        self._bulkhead = asyncio.Semaphore(self.policy.max_concurrency)
        """The source's bulkhead. :meth:`_attempts` takes a place without a coroutine
        or a call while one is free and nobody waits (as ``acquire`` would without
        suspending), and gives it back by ``release()`` only when someone waits."""
        self._breakers = breakers or AsyncCircuitBreakerFactory()
        uow = self._breakers.uow
        self._in_memory: dict[str, Any] | None = (
            getattr(uow.contexts, "breakers", None)
            if isinstance(uow, AsyncInMemoryUnitOfWork)
            else None
        )
        self._breaker: AsyncCircuitBreaker | None = None
        self._state: BreakerState = "closed"
        self.observer: Observer | None = None
        """Called with (source, operation, outcome, seconds) after every call."""
        self.tracer: Tracer | None = None
        """An OpenTelemetry tracer: each call becomes a span (see gateway/tracing.py)."""

    @property
    def breaker_state(self) -> BreakerState:
        """The circuit's state as of the last call."""
        return self._state

    def _known_circuit(self) -> AsyncCircuitBreaker | None:
        """The source's in-memory breaker if the registry still holds it: the same
        state object on every call, so it is looked up once."""
        known, registry = self._breaker, self._in_memory
        if known is not None and registry is not None and registry.get(self.name) is known.context:
            return known
        return None

    async def _circuit(self) -> AsyncCircuitBreaker:
        """The source's breaker: the known in-memory one (:meth:`_known_circuit`),
        else asked of the registry (a shared one, Redis, on every call, for the
        replicas' state)."""
        known = self._known_circuit()
        if known is not None:
            return known
        breaker = await self._breakers.get_breaker(
            self.name,
            threshold=self.policy.breaker_threshold,
            ttl=self.policy.breaker_recovery,
            exclude=_NOT_THE_SOURCES_FAULT,
        )
        self._breaker = breaker
        return breaker

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """The bulkhead and the circuit breaker around a scan (see :meth:`_attempts`)."""
        breaker = await self._circuit()
        try:
            async with self._bulkhead, breaker:
                yield
        except OpenedState as opened:
            raise self._skipped(opened) from None
        finally:
            self._state = breaker.context.state

    def _skipped(self, opened: OpenedState) -> CircuitOpen:
        """The error for a call the open circuit skipped."""
        # purgatory raises its state object itself: each raise would add this
        # call's frames to the same traceback, growing for as long as it is open
        opened.__traceback__ = None
        self._state = "opened"
        return CircuitOpen(
            "skipped: the source failed repeatedly; retrying it in "
            f"{self.policy.breaker_recovery:g}s",
            source=self.name,
        )

    def _span(self, operation: str) -> Span | None:
        if self.tracer is None:
            return None
        # not made current: a scan's span outlives the step that started it
        return self.tracer.start_span(
            f"{self.name} {operation}",
            attributes={"custview.source": self.name, "custview.operation": operation},
        )

    def _report(
        self, operation: str, outcome: str, detail: str, started: float, span: Span | None
    ) -> None:
        """Report a call's outcome and duration to ``observer`` (if one is set), the
        log and its span."""
        seconds = time.perf_counter() - started
        if self.observer is not None:
            self.observer(self.name, operation, outcome, seconds)
        level = logging.DEBUG if outcome in _QUIET else logging.WARNING
        if log.isEnabledFor(level):
            _log_call(level, self.name, operation, outcome, seconds, detail)
        if span is not None:
            _end_span(span, outcome, detail)

    async def around(self, call: Call[T]) -> T:
        # ``with _Reported(self, call.operation)``, written out: it wraps every lookup
        operation = call.operation
        started = time.perf_counter()
        span = None if self.tracer is None else self._span(operation)
        try:
            deadline = current_deadline()
            if deadline is None:
                result = await self._attempts(call, None)
            else:
                left = deadline.at - time.monotonic()  # ``deadline.left()`` without its frame
                if left <= 0:
                    raise deadline.passed(self.name)
                failures: list[SourceUnavailable] = []
                # ``async with deadline.cut(BACKSTOP)``, entered only if the call waits
                waiting = deadline.waiting(self._attempts(call, left, failures), BACKSTOP)
                try:
                    result = await waiting
                except TimeoutError:
                    if waiting.scope is None or not waiting.scope.expired():
                        raise
                    if failures:  # cut while waiting to retry: the source was unavailable
                        raise failures[-1] from None
                    raise deadline.exceeded(self.name) from None
        except BaseException as exc:
            self._report(operation, *_outcome(exc), started, span)
            raise
        # ``self._report(operation, "ok", "", started, span)``, written out
        seconds = time.perf_counter() - started
        if self.observer is not None:
            self.observer(self.name, operation, "ok", seconds)
        if log.isEnabledFor(logging.DEBUG):
            _log_call(logging.DEBUG, self.name, operation, "ok", seconds, "")
        if span is not None:
            _end_span(span, "ok", "")
        return result

    async def _attempts(
        self,
        call: Call[T],
        budget: float | None,
        failures: list[SourceUnavailable] | None = None,
    ) -> T:
        """The call behind the guard (:meth:`_guard`, written out: this runs for
        every lookup), retried while the source is unavailable."""
        started = time.monotonic()
        breaker, registry = self._breaker, self._in_memory
        # :meth:`_known_circuit`, written out
        if breaker is None or registry is None or registry.get(self.name) is not breaker.context:
            breaker = await self._circuit()
        context = breaker.context
        bulkhead = self._bulkhead
        state: BreakerState | None = None
        """The circuit's state after the call, when known without asking again."""
        # ``async with bulkhead, breaker``, written out without their coroutines:
        # the semaphore's and the breaker's enter and exit are synchronous unless
        # the semaphore is full or the breaker has state changes to save
        if bulkhead._value > 0 and not bulkhead._waiters:  # a free place, taken at once
            bulkhead._value -= 1
        else:
            await bulkhead.acquire()
        try:
            # AsyncCircuitBreaker.__aenter__, which only an opened circuit heeds (it
            # skips the call, or lets it through half-opened): asked only of a circuit
            # that knows when it opened (tests/connectors/test_resilience.py pins
            # purgatory's closed and half-opened states doing nothing on a new
            # request, and an opened one always knowing when it opened). The state
            # object's attributes are read without the context's properties (one
            # frame each, three a statement): the same test pins them being its.
            if context._state.opened_at is not None:  # ``context.opened_at``
                context.__enter__()
            try:
                failure: SourceUnavailable | None = None
                if failures is not None:
                    failures.clear()
                around = self._inner_around  # :meth:`run`, written out
                try:  # the first attempt (:meth:`_tries`, written out)
                    result = await (call.run(self.inner) if around is None else around(call))
                except SourceUnavailable as exc:
                    if failures is not None:
                        failures.append(exc)
                    if not (self.policy.retries and _retryable(exc)):
                        raise
                    failure = exc
                # out of the except block: the failures raised from here keep their context
                if failure is not None:
                    if budget is not None:
                        budget = max(budget - (time.monotonic() - started), 0.0)
                    result = await self._retries(call, failure, budget, failures)
            except BaseException as exc:
                context.__exit__(type(exc), exc, exc.__traceback__)
                if context.messages:
                    await _saved(breaker)
                raise
            # a success changes nothing in a closed circuit that counts no failure
            # (purgatory resets the count to 0): the end of the request is told otherwise
            now = context._state  # ``context.state``, ``context.failure_count``
            state = now.name  # type: ignore[assignment]  # a StateName: one of BreakerState
            if state != "closed" or now.failure_count:
                context.__exit__(None, None, None)
                state = None
            if context.messages:
                state = None
                await _saved(breaker)
            return result
        except OpenedState as opened:
            raise self._skipped(opened) from None
        finally:
            if bulkhead._waiters:  # someone waits: woken
                bulkhead.release()
            else:
                bulkhead._value += 1
            self._state = context.state if state is None else state

    async def _tries(self, call: Call[T], failures: list[SourceUnavailable] | None) -> T:
        """One attempt after the first."""
        if failures is not None:
            failures.clear()  # only a failure we are waiting to retry counts
        try:
            return await self.run(call)
        except SourceUnavailable as exc:
            if failures is not None:
                failures.append(exc)
            raise

    async def _retries(
        self,
        call: Call[T],
        first: SourceUnavailable,
        budget: float | None,
        failures: list[SourceUnavailable] | None,
    ) -> T:
        """Stamina's retries after a first failure, while a retry could still start
        within ``budget``. Most calls succeed at once, and a retry context (a
        tenacity controller) costs more than a fast lookup, so it is made only
        now, with that failure as its first attempt: backoff, attempts and
        budget are stamina's as if it had run the first attempt itself."""
        pending: SourceUnavailable | None = first
        async for attempt in stamina.retry_context(
            on=_retryable,
            attempts=self.policy.retries + 1,
            timeout=budget,
            wait_initial=self.policy.retry_initial_wait,
            wait_max=self.policy.retry_max_wait,
            wait_jitter=self.policy.retry_initial_wait,
        ):
            with attempt:
                if pending is not None:
                    failed, pending = pending, None
                    raise failed
                return await self._tries(call, failures)
        raise AssertionError("unreachable: stamina re-raises the last failure")

    async def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        # A stream is not retried once rows have left; the breaker sees its outcome.
        with _Reported(self, "scan"):
            deadline = current_deadline()
            if deadline is not None and deadline.left() <= 0:
                raise deadline.passed(self.name)
            async with self._guard():
                stream = relay(self.inner.scan(request))
                if deadline is None:
                    async for row in stream:
                        yield row
                    return
                async for row in _until(stream, deadline, self.name):
                    yield row


async def _saved(breaker: AsyncCircuitBreaker) -> None:
    """The rest of ``AsyncCircuitBreaker.__aexit__``: its state changes handed to
    the registry (a failure counted, the circuit opened or closed)."""
    context = breaker.context
    while context.messages:
        await breaker.messagebus.handle(context.messages.pop(0), breaker.uow)


class _Reported:
    """Reports the call made inside it (:meth:`ResilientConnector._report`): ``ok``,
    the error's code, or ``cancelled`` for anything else that ends it. A class, not
    a generator-based context manager: it wraps every call."""

    __slots__ = ("_operation", "_span", "_started", "_wrapper")

    def __init__(self, wrapper: ResilientConnector, operation: str) -> None:
        self._wrapper = wrapper
        self._operation = operation
        self._started = time.perf_counter()
        self._span = None if wrapper.tracer is None else wrapper._span(operation)

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        outcome, detail = ("ok", "") if exc is None else _outcome(exc)
        self._wrapper._report(self._operation, outcome, detail, self._started, self._span)


def _outcome(exc: BaseException) -> tuple[str, str]:
    """A failed call's outcome and detail: the error's code and message, or
    ``cancelled`` for anything that is no custview error."""
    if isinstance(exc, CustviewError):
        return exc.code, exc.message
    return "cancelled", ""


def _end_span(span: Span, outcome: str, detail: str) -> None:
    span.set_attribute("custview.outcome", outcome)
    if outcome not in _QUIET:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, f"{outcome}: {detail}" if detail else outcome))
    span.end()


_QUIET = ("ok", "cancelled")
"""Outcomes logged at debug level; the others are warnings."""


def _log_call(
    level: int, source: str, operation: str, outcome: str, seconds: float, detail: str
) -> None:
    """One line per source call, at ``level``: debug when it succeeded, a warning when
    it failed (:meth:`ResilientConnector._report` checks that it is logged)."""
    ms = round(seconds * 1000, 2)
    message = f"{source} {operation} {outcome} in {ms} ms"
    extra = {"source": source, "operation": operation, "outcome": outcome, "duration_ms": ms}
    log.log(level, message + (f": {detail}" if detail else ""), extra=extra)


async def _until(
    stream: AsyncGenerator[Row, None], deadline: Deadline, source: str
) -> AsyncGenerator[Row, None]:
    """``stream``'s rows while ``deadline`` lasts: each wait for the next row is
    bounded (never the consumer's work between rows)."""
    try:
        while True:
            # ``async with deadline.cut(BACKSTOP)``, entered only if the row is waited for
            waiting = deadline.waiting(anext(stream), BACKSTOP, time.monotonic())
            try:
                row = await waiting
            except StopAsyncIteration:
                return
            except TimeoutError:
                if waiting.scope is None or not waiting.scope.expired():
                    raise
                raise deadline.exceeded(source) from None
            yield row
    finally:
        await stream.aclose()


def resilient_in(connector: Connector) -> ResilientConnector | None:
    """The resilience wrapper in a chain of wrappers (cache, resilience, observer), if any."""
    return wrapper_in(connector, ResilientConnector)


def circuit_state(connector: Connector) -> BreakerState:
    """``closed``, ``half-opened`` or ``opened``: the source's circuit as of its last
    call (``closed`` for a connector without a resilience wrapper)."""
    resilient = resilient_in(connector)
    return resilient.breaker_state if resilient is not None else "closed"
