"""A deadline shared by every source call made for one piece of work.

Whoever starts the work (the gateway, for one GraphQL request) opens a
:func:`deadline_scope`; every source call made inside it, and in tasks
started inside it, stops when the deadline passes — each connector's own
``timeout`` is cut to the time left (:func:`time_left`), and the resilience
wrapper stops waiting at the bulkhead, retrying and backing off.

A call cut short by the deadline raises :class:`~connectors.errors.DeadlineExceeded`
(a ``SOURCE_TIMEOUT``); it does not count against the source's circuit
breaker, because the time may have been spent on other sources.

Outside a scope (exports, ``custview check``) there is no deadline.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Generator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from connectors._scope import VarScope
from connectors.errors import DeadlineExceeded

T = TypeVar("T")


class Cut:
    """``asyncio.timeout`` for one call, ended by its deadline's shared timer
    (:meth:`Deadline.cut`): a :class:`TimeoutError` when the timer cut it."""

    __slots__ = ("_cancelling", "_cuts", "_expired", "_task", "when")

    def __init__(self, cuts: Alarms[Cut], when: float) -> None:
        self._cuts = cuts
        self.when = when
        """On the running loop's clock."""
        self._expired = False

    def expired(self) -> bool:
        return self._expired

    def expire(self) -> None:
        """The deadline passed: the task under this cut is cancelled."""
        self._expired = True
        self._task.cancel()

    def enter(self) -> Cut:
        """``async with``'s enter, without a coroutine (a caller on a hot path
        calls :meth:`enter` and :meth:`exit` itself)."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline's cut is for a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._cuts.add(self, self.when, self._task.get_loop())
        return self

    def exit(self, kind: type[BaseException] | None, error: BaseException | None) -> None:
        """``async with``'s exit: :class:`TimeoutError` (from ``error``) when the
        cancellation ending the block is the one this cut asked for."""
        self._cuts._due.pop(self, None)  # ``discard(self)`` without its frame
        # as asyncio.timeout: only the cancellation this cut asked for becomes a timeout
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and kind is asyncio.CancelledError
        ):
            raise TimeoutError from error

    async def __aenter__(self) -> Cut:
        return self.enter()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: object
    ) -> None:
        self.exit(kind, error)


SLACK = 0.001
"""How late an alarm may ring rather than set the loop's timer again (asyncio's
own timers ring up to its clock resolution, ~1 ms, early)."""


class Alarms(Generic[T]):
    """Things due at given times on one loop, and one loop timer for the earliest.

    The timer is set for the first (not one per thing: scheduling and cancelling
    an ``asyncio.timeout`` costs ~4 us, more than a SQLite statement's thread hop,
    and a customer 360 makes ~20 source calls under its request's deadline).
    When it fires, ``ring`` is called for each overdue thing, and the timer is
    set again for the next. Something done in time only leaves the table.
    """

    __slots__ = ("_at", "_due", "_loop", "_ring", "_timer")

    def __init__(self, ring: Callable[[T], object]) -> None:
        self._ring = ring
        self._due: dict[T, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, thing: T, when: float, loop: asyncio.AbstractEventLoop) -> None:
        """``ring(thing)`` at ``when`` (``loop``'s clock) unless it is discarded first;
        up to :data:`SLACK` late, so that things due at about the same time (the
        cuts of one deadline, a few microseconds of clock reads apart) do not set
        the timer again each time."""
        if loop is not self._loop:  # a new loop: what was due on the old one is gone
            self._due.clear()
            self._set(when, loop)
        elif when < self._at - SLACK:
            self._set(when, loop)
        self._due[thing] = when

    def discard(self, thing: T) -> None:
        self._due.pop(thing, None)

    def close(self) -> None:
        """The work is over: the timer goes unless something is still due (a task
        the work started and left running)."""
        if not self._due and self._timer is not None:
            self._timer.cancel()
            self._timer, self._at = None, math.inf

    def _set(self, when: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._at, self._loop = when, loop
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._at = None, math.inf
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for thing in [t for t, when in self._due.items() if when <= now]:
            del self._due[thing]
            self._ring(thing)
        if self._due:
            self._set(min(self._due.values()), loop)


def _cuts() -> Alarms[Cut]:
    return Alarms(Cut.expire)


@dataclass(frozen=True, slots=True)
class Deadline:
    at: float
    """When it passes, on :func:`time.monotonic`'s clock."""
    seconds: float
    """The whole budget, for messages."""
    cuts: Alarms[Cut] = field(default_factory=_cuts, compare=False, repr=False)

    def left(self) -> float:
        return self.at - time.monotonic()

    def cut(self, grace: float) -> Cut:
        """``async with``: the block is cancelled ``grace`` seconds after the
        deadline (after now, if it has passed) and raises :class:`TimeoutError`,
        as ``asyncio.timeout`` would, sharing one timer with every other call of
        this deadline."""
        loop = asyncio.get_running_loop()
        return Cut(self.cuts, loop.time() + max(self.left(), 0.0) + grace)

    def _entered(self, left: float, grace: float) -> Cut:
        """A cut entered now, ending ``left + grace`` seconds from now."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline's cut is for a task")
        cut = Cut(self.cuts, loop.time() + left + grace)
        cut._task = task
        cut._cancelling = task.cancelling()
        self.cuts.add(cut, cut.when, loop)
        return cut

    def waiting(self, work: Awaitable[T], grace: float, now: float | None = None) -> Waiting[T]:
        """``await`` it: ``work`` under ``cut(grace)`` made now. The cut is entered
        only if ``work`` waits, when it first does (a cut ends a call only while
        it waits: one that answers at once, as a statement on the SQLite direct
        path or a row already read, never needs it), and ends when the cut made
        now would have: ``grace`` after the deadline, or after ``now``
        (``time.monotonic()``) if the deadline had passed by then; a caller that
        has just seen time left leaves ``now`` out."""
        return Waiting(self, work, grace, now)

    def exceeded(self, source: str) -> DeadlineExceeded:
        """For a call the deadline cut short: this source was the slow one."""
        return DeadlineExceeded(
            f"no answer before the request's deadline ({self.seconds:g} s)", source=source
        )

    def passed(self, source: str) -> DeadlineExceeded:
        """For a call not even started: the time went to other calls."""
        return DeadlineExceeded(
            f"not asked: the request's deadline ({self.seconds:g} s) had passed", source=source
        )


class Waiting(Generic[T]):
    """:meth:`Deadline.waiting`: ``await`` passes ``work``'s waits up to the task
    (as ``await work`` would) and enters the cut at the first; ``scope`` is the
    cut, ``None`` while ``work`` has not waited."""

    __slots__ = ("_deadline", "_grace", "_made", "_work", "scope")

    def __init__(
        self, deadline: Deadline, work: Awaitable[T], grace: float, made: float | None
    ) -> None:
        self._deadline = deadline
        # a coroutine, or an awaitable with the same send/throw/close (``anext``'s)
        self._work: Any = work
        self._grace = grace
        self._made = made
        self.scope: Cut | None = None

    def __await__(self) -> Generator[Any, Any, T]:
        work = self._work
        try:
            signal = work.send(None)
        except StopIteration as done:  # answered without waiting
            result: T = done.value
            return result
        deadline = self._deadline
        # the cut made with the work ends grace after the deadline, or after then
        # if the deadline had passed: the time from now to that end
        made = self._made
        end = deadline.at if made is None or deadline.at > made else made
        self.scope = scope = deadline._entered(end - time.monotonic(), self._grace)
        try:
            while True:  # ``yield from work``, from its second step on
                try:
                    sent = yield signal
                except GeneratorExit:
                    work.close()
                    raise
                except BaseException as exc:
                    signal = work.throw(exc)
                else:
                    signal = work.send(sent)
        except StopIteration as done:
            scope.exit(None, None)
            result = done.value
            return result
        except BaseException as exc:
            scope.exit(type(exc), exc)
            raise


_current: ContextVar[Deadline | None] = ContextVar("custview_deadline", default=None)


current_deadline: Callable[[], Deadline | None] = _current.get
"""The deadline of the work in progress, if there is one (the context variable's
own ``get``: no Python frame, on the path of every source call)."""


def deadline_scope(seconds: float | None) -> _Scope:
    """Source calls inside (and in tasks started inside) end ``seconds`` from now;
    ``None`` opens no deadline. ``with`` gives the :class:`Deadline` (or ``None``)."""
    return _Scope(
        _current, None if seconds is None else Deadline(time.monotonic() + seconds, seconds)
    )


class _Scope(VarScope["Deadline | None"]):
    """:func:`deadline_scope`, whose deadline's pending cuts end with the block."""

    __slots__ = ()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self._value is not None:
            self._value.cuts.close()


def time_left(timeout: float) -> tuple[float, Deadline | None]:
    """The seconds a call may take — its own ``timeout`` or the time left before
    the deadline, whichever is shorter — and the deadline when that is what binds.

    A connector uses it wherever it applies its timeout: with no time left it
    raises ``deadline.passed(source)`` without calling the source, and when the
    deadline cuts a call, ``deadline.exceeded(source)``.
    """
    deadline = _current.get()
    if deadline is None:
        return timeout, None
    left = deadline.left()
    if left < timeout:
        return max(left, 0.0), deadline
    return timeout, None
