"""A deadline's cuts: ``asyncio.timeout`` for each source call, on one shared timer."""

from __future__ import annotations

import asyncio

import pytest

from connectors import (
    DeadlineExceeded,
)
from connectors.deadline import Cut, Deadline, deadline_scope
from connectors.resilience import ResilienceOptions, ResilientConnector
from tests.support.gated import Gated
from tests.support.timers import timers_set


def _entered(deadline: Deadline, grace: float) -> Cut:
    """A cut of ``deadline`` entered now, as :class:`~connectors.deadline.Waiting`
    enters one for a call that waits."""
    return deadline._entered(max(deadline.left(), 0.0), grace)


def _timers(loop: asyncio.AbstractEventLoop) -> int:
    """The loop's timers still to fire."""
    return sum(1 for h in loop._scheduled if not h.cancelled())  # type: ignore[attr-defined]


async def test_calls_past_the_deadline_are_cut_and_calls_in_time_are_not() -> None:
    with deadline_scope(0.05) as deadline:
        assert deadline is not None

        async def call(seconds: float) -> str:
            async with deadline.cut(0.02):
                await asyncio.sleep(seconds)
            return "answered"

        quick = asyncio.create_task(call(0.01))
        slow = [asyncio.create_task(call(5)) for _ in range(3)]
        assert await quick == "answered"
        for task in slow:
            with pytest.raises(TimeoutError):
                await task
        assert deadline.left() < 0


async def test_one_timer_serves_every_call_and_goes_with_the_scope() -> None:
    loop = asyncio.get_running_loop()

    before = _timers(loop)
    with deadline_scope(30) as deadline:
        assert deadline is not None
        for _ in range(20):
            async with deadline.cut(0.05):
                await asyncio.sleep(0)
        assert _timers(loop) == before + 1
    assert _timers(loop) == before, "the scope's end takes the timer away"


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    with deadline_scope(30) as deadline:
        assert deadline is not None
        cut_seen = []

        async def call() -> None:
            async with deadline.cut(0.05) as cut:
                cut_seen.append(cut)
                await asyncio.sleep(5)

        task = asyncio.create_task(call())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not cut_seen[0].expired()


async def test_a_passed_deadline_still_leaves_the_grace() -> None:
    with deadline_scope(0.01) as deadline:
        assert deadline is not None
        await asyncio.sleep(0.3)  # passed longer ago than the grace lasts
        async with deadline.cut(0.25) as cut:
            await asyncio.sleep(0.01)  # within the grace, counted from now (a loaded
            # machine's 10 ms sleep overran a 50 ms grace once)
        assert not cut.expired()


async def test_an_entered_cut_is_the_cut_entered() -> None:
    """``entered`` (the hot paths' cut) cuts a call past the deadline and its grace,
    leaves one in time alone, shares the deadline's one timer (gone with the
    scope), and keeps a cancel from outside a cancel."""
    loop = asyncio.get_running_loop()

    before = _timers(loop)
    with deadline_scope(0.05) as deadline:
        assert deadline is not None

        async def call(seconds: float) -> str:
            cut = _entered(deadline, 0.02)
            try:
                await asyncio.sleep(seconds)
            except BaseException as exc:
                cut.exit(type(exc), exc)
                raise
            cut.exit(None, None)
            return "answered"

        quick = asyncio.create_task(call(0.01))
        slow = [asyncio.create_task(call(5)) for _ in range(3)]
        await asyncio.sleep(0)
        assert _timers(loop) == before + 1 + 4, "the four sleeps, and one timer for the cuts"
        assert await quick == "answered"
        for task in slow:
            with pytest.raises(TimeoutError):
                await task
        cancelled = asyncio.create_task(call(5))
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
    assert _timers(loop) == before


async def test_an_entered_cut_after_the_deadline_still_leaves_the_grace() -> None:
    with deadline_scope(0.01) as deadline:
        assert deadline is not None
        await asyncio.sleep(0.3)
        cut = _entered(deadline, 0.25)
        await asyncio.sleep(0.01)
        cut.exit(None, None)
        assert not cut.expired()


async def test_the_cuts_of_one_deadline_set_the_loop_s_timer_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each cut's time comes from clock reads microseconds apart: a cut due a hair
    earlier than the timer does not cancel and set it again (it may ring 1 ms late)."""
    scheduled = timers_set(monkeypatch)
    with deadline_scope(30) as deadline:
        assert deadline is not None
        for _ in range(50):
            cut = _entered(deadline, 0.05)
            await asyncio.sleep(0)
            cut.exit(None, None)
            async with deadline.cut(0.05):
                await asyncio.sleep(0)
    assert len(scheduled) == 1


def test_the_request_s_scopes_set_and_restore_their_variables() -> None:
    """The deadline, request id and freshness scopes (classes, once per request):
    each gives its value, sets it for the block, restores the one before, and a
    scope left in another context (an async generator finalised elsewhere) does
    not fail there."""
    import contextvars

    from connectors.cache import freshness, freshness_scope
    from connectors.deadline import current_deadline
    from connectors.request_id import current_request_id, request_id_scope

    with deadline_scope(30) as outer, request_id_scope("a-1") as rid, freshness_scope() as rep:
        assert current_deadline() is outer and outer is not None and outer.seconds == 30
        assert rid == "a-1" == current_request_id()
        assert rep == {} and freshness.get() is rep
        with deadline_scope(None) as inner, request_id_scope("b.2"):
            assert inner is None and current_deadline() is None
            assert current_request_id() == "b.2"
        assert current_deadline() is outer and current_request_id() == "a-1"
    assert current_deadline() is None and current_request_id() is None
    assert freshness.get() is None
    with pytest.raises(ValueError, match="request id"):
        request_id_scope("not an id")
    for scope in (deadline_scope(1), freshness_scope()):
        contextvars.copy_context().run(scope.__enter__)
        contextvars.copy_context().run(scope.__exit__, None, None, None)
    assert current_deadline() is None and freshness.get() is None


async def test_waiting_enters_the_cut_only_when_the_work_waits() -> None:
    """``Deadline.waiting``: work that answers at once makes no cut and no timer;
    work that waits gets the cut at its first wait, answers through it in time,
    is cut past the deadline and its grace, stays cancelled when cancelled from
    outside, and keeps its own errors; every cut leaves the deadline's table."""
    loop = asyncio.get_running_loop()

    async def at_once() -> str:
        return "at once"

    async def after(seconds: float, error: Exception | None = None) -> str:
        await asyncio.sleep(seconds)
        if error is not None:
            raise error
        return "waited"

    before = _timers(loop)
    with deadline_scope(0.1) as deadline:
        assert deadline is not None
        quick = deadline.waiting(at_once(), 0.02)
        assert await quick == "at once" and quick.scope is None
        assert _timers(loop) == before, "no cut, no timer"
        waited = deadline.waiting(after(0.01), 0.02)
        assert await waited == "waited"
        assert waited.scope is not None and not waited.scope.expired()
        failing = deadline.waiting(after(0.01, ValueError("its own")), 0.02)
        with pytest.raises(ValueError, match="its own"):
            await failing
        cancelled = deadline.waiting(after(5), 0.02)
        task = asyncio.ensure_future(cancelled)
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled.scope is not None and not cancelled.scope.expired()
        slow = deadline.waiting(after(5), 0.02)
        with pytest.raises(TimeoutError):
            await slow
        assert slow.scope is not None and slow.scope.expired()
        assert not deadline.cuts._due, "every cut left the table"


async def test_waiting_closed_while_it_waits_closes_the_work_and_leaves_the_table() -> None:
    closed = []

    async def work() -> None:
        try:
            await asyncio.sleep(5)
        finally:
            closed.append(True)

    with deadline_scope(30) as deadline:
        assert deadline is not None
        waiting = deadline.waiting(work(), 0.02)

        async def awaiting() -> None:
            await waiting

        outer = awaiting()
        outer.send(None)  # waits in the sleep
        outer.close()
        assert closed == [True]
        assert not deadline.cuts._due


async def test_a_source_call_that_answers_at_once_makes_no_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the resilience wrapper: a lookup that does not wait sets no timer;
    one that waits past the deadline ends as the deadline's error."""
    open_gate = Gated()
    open_gate.gate(1).set()
    quick = ResilientConnector(open_gate, ResilienceOptions())
    slow = ResilientConnector(Gated(), ResilienceOptions())
    with deadline_scope(0.05):
        scheduled = timers_set(monkeypatch)
        assert await quick.lookup_many("t", "id", [1], ["id"]) == [[{"id": 1}]]
        assert scheduled == []
        monkeypatch.undo()
        with pytest.raises(DeadlineExceeded) as info:
            await slow.lookup_many("t", "id", [1], ["id"])
        assert info.value.source == "gated"


async def test_waiting_after_the_deadline_ends_as_the_cut_made_then() -> None:
    """A row waited for after the deadline passed gets the grace from when its
    wait was made (``now``); a call whose caller saw time left ends grace after
    the deadline itself."""
    import time

    async def after(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "waited"

    with deadline_scope(0.01) as deadline:
        assert deadline is not None
        await asyncio.sleep(0.3)  # passed longer ago than the grace lasts
        assert await deadline.waiting(after(0.01), 0.25, time.monotonic()) == "waited"
        with pytest.raises(TimeoutError):
            await deadline.waiting(after(0.01), 0.25)


def test_a_scope_is_entered_once() -> None:
    """A scope entered twice would leave its value set after both exits (the second
    exit cannot put back what the first entry found): the second entry is refused."""
    from connectors.request_id import current_request_id, request_id_scope

    scope = request_id_scope("r-1")
    with scope, pytest.raises(RuntimeError, match="entered once"), scope:
        pass
    assert current_request_id() is None
    deadline = deadline_scope(5)
    with deadline, pytest.raises(RuntimeError, match="entered once"), deadline:
        pass
