"""settled and gathered: gather(return_exceptions=True) and graphql-core's
gather_with_cancel, without tasks for work that answers at once."""

from __future__ import annotations

import asyncio
import contextvars
import gc
from typing import Any

import pytest

from resolvers.tasks import gathered, settled


class Work:
    """Awaitables that note where (which task) and in which order they start."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.tasks: dict[str, asyncio.Task[object] | None] = {}

    async def __call__(self, name: str, waits: bool = False, fails: bool = False) -> str:
        self.started.append(name)
        self.tasks[name] = asyncio.current_task()
        if waits:
            await asyncio.sleep(0.01)
        if fails:
            raise ValueError(name)
        return name


async def test_work_answering_at_once_runs_in_the_callers_task_in_turn() -> None:
    work = Work()
    results = await settled([work("a"), work("b", fails=True), work("c")])
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ValueError) and str(results[1]) == "b"
    assert work.started == ["a", "b", "c"]
    assert set(work.tasks.values()) == {asyncio.current_task()}, "no task of their own"
    assert await settled([]) == []


async def test_after_the_first_that_waits_the_rest_start_in_tasks_in_order() -> None:
    work = Work()
    caller = asyncio.current_task()
    results = await settled(
        [work("a"), work("b", waits=True), work("c", waits=True), work("d", fails=True)]
    )
    assert results[:3] == ["a", "b", "c"] and isinstance(results[3], ValueError)
    assert work.started == ["a", "b", "c", "d"], "each starts in turn, as gather starts them"
    assert work.tasks["a"] is caller and work.tasks["b"] is caller, "b goes on where it began"
    assert work.tasks["c"] is not caller and work.tasks["d"] is not caller
    assert work.tasks["c"] is not work.tasks["d"], "at once: each in a task of its own"


async def test_waits_of_a_bare_yield_and_errors_after_waiting_are_passed_through() -> None:
    async def yields_then_fails() -> None:
        await asyncio.sleep(0)  # a bare yield to the loop, not a future
        await asyncio.sleep(0.001)
        raise KeyError("late")

    async def answers() -> int:
        await asyncio.sleep(0)
        return 2

    first, second = await settled([yields_then_fails(), answers()])
    assert isinstance(first, KeyError) and second == 2


async def test_a_cancellation_reaches_the_work_going_on_in_the_callers_task() -> None:
    """As a deadline's cut does it: the caller's task is cancelled and the work
    that waits in it turns the cancellation into its own error."""
    caller = asyncio.current_task()
    assert caller is not None

    async def cut_short() -> None:
        asyncio.get_running_loop().call_later(0.01, caller.cancel)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            caller.uncancel()
            raise TimeoutError("cut") from None

    async def answers() -> int:
        await asyncio.sleep(0.02)
        return 2

    first, second = await settled([cut_short(), answers()])
    assert isinstance(first, TimeoutError) and second == 2


async def test_a_cancelled_caller_cancels_the_tasks_and_closes_what_never_started() -> None:
    gate = asyncio.Event()
    others: list[asyncio.Task[object] | None] = []

    async def holds() -> None:
        others.append(asyncio.current_task())
        await gate.wait()

    caller = asyncio.create_task(settled([holds(), holds(), holds()]))
    await asyncio.sleep(0.01)
    assert len(others) == 3
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0)
    assert others[0] is caller
    assert all(t is not None and t.cancelled() for t in others[1:])

    class Stop(BaseException):
        pass

    async def stops() -> None:
        raise Stop

    never = holds()
    with pytest.raises(Stop):
        await settled([stops(), never])
    assert never.cr_frame is None and not others[3:], "closed, never awaited"


async def test_the_works_own_cancellation_is_its_result_as_gathers_is() -> None:
    """A CancelledError the caller did not get (the work awaited a future someone
    else cancelled) is that work's result; the others still answer."""

    async def interrupted() -> None:
        raise asyncio.CancelledError

    async def interrupted_later() -> None:
        await asyncio.sleep(0.001)
        raise asyncio.CancelledError

    async def answers() -> int:
        await asyncio.sleep(0.005)
        return 2

    for first in (interrupted, interrupted_later):
        got, expected = (
            await settled([first(), answers()]),
            await asyncio.gather(first(), answers(), return_exceptions=True),
        )
        assert [type(r) for r in got] == [type(r) for r in expected]
        assert isinstance(got[0], asyncio.CancelledError) and got[1] == 2


async def test_a_cancelled_caller_returns_once_the_started_tasks_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As gather does: a cancelled request must not go on while its other lookups
    still hold pooled connections, and nothing is left unretrieved."""
    ended: list[str] = []

    async def holds(name: str) -> None:
        try:
            await asyncio.sleep(5)
        finally:
            await asyncio.sleep(0.01)  # giving a connection back takes a hop
            ended.append(name)

    caller = asyncio.create_task(settled([holds("a"), holds("b"), holds("c")]))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert sorted(ended) == ["a", "b", "c"], "every started one ended first"
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.name == "asyncio"], "nothing unretrieved"


async def test_a_cancel_the_work_turned_into_an_error_still_cancels_the_caller() -> None:
    """Work in the caller's task that catches the caller's cancellation and raises
    an error of its own must not lose the cancel: gather would still raise it."""
    ended: list[str] = []

    async def swallows() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise RuntimeError("source error") from None

    async def holds() -> None:
        try:
            await asyncio.sleep(5)
        finally:
            ended.append("other")

    caller = asyncio.create_task(settled([swallows(), holds()]))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert ended == ["other"]


# -- gathered: graphql-core's gather_with_cancel without tasks for work answering at once


async def test_gathered_runs_work_answering_at_once_in_the_callers_task_in_turn() -> None:
    work = Work()
    assert await gathered([work("a"), work("b"), work("c")]) == ["a", "b", "c"]
    assert work.started == ["a", "b", "c"]
    assert set(work.tasks.values()) == {asyncio.current_task()}, "no task of their own"
    assert await gathered([]) == []


async def test_gathered_starts_the_rest_in_tasks_after_the_first_that_waits() -> None:
    work = Work()
    caller = asyncio.current_task()
    results = await gathered([work("a"), work("b", waits=True), work("c", waits=True), work("d")])
    assert results == ["a", "b", "c", "d"]
    assert work.started == ["a", "b", "c", "d"]
    assert work.tasks["a"] is caller and work.tasks["b"] is caller
    assert work.tasks["c"] is not caller and work.tasks["d"] is not caller
    assert work.tasks["c"] is not work.tasks["d"]


@pytest.mark.parametrize("run", [settled, gathered])
async def test_tasks_start_in_the_context_the_caller_had(run: Any) -> None:
    """As gather's tasks copy it: a variable the waiting work set for itself (a
    source call's observer, a deadline's scope) is not the others'."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="caller")
    seen: list[str] = []

    async def sets_then_waits() -> None:
        token = var.set("first")
        try:
            await asyncio.sleep(0.005)
        finally:
            var.reset(token)

    async def reads() -> None:
        seen.append(var.get())

    await run([sets_then_waits(), reads(), reads()])
    assert seen == ["caller", "caller"]
    assert var.get() == "caller"


async def test_gathered_a_task_failing_while_the_caller_waits_cancels_all() -> None:
    """The failure is raised at once (not after the waiting work ended), the rest
    cancelled and ended first; the caller's task is left as it was."""
    ended: list[str] = []

    async def holds(name: str) -> None:
        try:
            await asyncio.sleep(5)
        finally:
            ended.append(name)

    async def fails() -> None:
        await asyncio.sleep(0.005)
        raise ValueError("b")

    caller = asyncio.current_task()
    assert caller is not None
    started = asyncio.get_running_loop().time()
    with pytest.raises(ValueError, match="b"):
        await gathered([holds("a"), fails(), holds("c")])
    assert asyncio.get_running_loop().time() - started < 1
    assert sorted(ended) == ["a", "c"]
    assert caller.cancelling() == 0, "the cancel sent for the failure was taken back"
    await asyncio.sleep(0.001)  # still usable: not cancelled


async def test_gathered_work_swallowing_the_cancel_for_a_failure_still_fails() -> None:
    async def swallows() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    async def fails() -> None:
        raise ValueError("b")

    async def fails_later() -> None:
        await asyncio.sleep(0.001)
        raise ValueError("b")

    caller = asyncio.current_task()
    assert caller is not None
    with pytest.raises(ValueError, match="b"):
        await gathered([swallows(), fails_later()])
    with pytest.raises(ValueError, match="b"):
        await gathered([swallows(), fails()])
    assert caller.cancelling() == 0


async def test_gathered_a_failure_before_waiting_lets_the_rest_take_their_first_step() -> None:
    """As gather_with_cancel's tasks would: each takes a step, then those that wait
    are cancelled and ended before the failure is raised."""
    work = Work()
    ended: list[str] = []

    async def holds() -> None:
        work.started.append("d")
        try:
            await asyncio.sleep(5)
        finally:
            ended.append("d")

    with pytest.raises(ValueError, match="b"):
        await gathered([work("a"), work("b", fails=True), work("c"), holds()])
    assert work.started == ["a", "b", "c", "d"] and ended == ["d"]


async def test_gathered_a_cancelled_caller_cancels_and_ends_everything() -> None:
    ended: list[str] = []

    async def holds(name: str) -> None:
        try:
            await asyncio.sleep(5)
        finally:
            await asyncio.sleep(0.01)
            ended.append(name)

    caller = asyncio.create_task(gathered([holds("a"), holds("b"), holds("c")]))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert sorted(ended) == ["a", "b", "c"], "every started one ended first"


async def test_gathered_answers_as_gather_with_cancel_does() -> None:
    """The same results, or the same first failure, for work that answers at once,
    waits, or fails, in any order."""
    from graphql.pyutils import gather_with_cancel

    async def now(value: int) -> int:
        return value

    async def turns(count: int) -> None:
        for _ in range(count):  # loop turns, not timers: the same order on a busy machine
            await asyncio.sleep(0)

    async def later(value: int) -> int:
        await turns(value)
        return value

    async def fails_now(value: int) -> int:
        raise KeyError(value)

    async def fails_later(value: int) -> int:
        await turns(value)
        raise KeyError(value)

    kinds = [now, later, fails_now, fails_later]
    for a in kinds:
        for b in kinds:
            for c in kinds:

                def work() -> list[Any]:
                    return [a(6), b(2), c(4)]  # noqa: B023 (turns apart: the first to fail is clear)

                outcomes = []
                for gather in (gathered, lambda w: gather_with_cancel(*w)):
                    try:
                        outcomes.append(await gather(work()))
                    except KeyError as exc:
                        outcomes.append(("failed", exc.args))
                assert outcomes[0] == outcomes[1], (a.__name__, b.__name__, c.__name__)


async def test_gathered_a_caller_cancelled_as_a_task_fails_stays_cancelled() -> None:
    """The cancel sent for the failure is taken back, not the caller's own (a
    deadline's cut): the caller ends cancelled, as gather_with_cancel leaves it."""
    ended: list[str] = []

    async def holds() -> None:
        try:
            await asyncio.sleep(5)
        finally:
            ended.append("held")

    async def fails(caller: asyncio.Task[object]) -> None:
        await asyncio.sleep(0.005)
        # in the loop's next turn, with the failure's own cancel: both reach the
        # caller's task in one CancelledError
        asyncio.get_running_loop().call_soon(caller.cancel)
        raise ValueError("b")

    async def run() -> object:
        caller = asyncio.current_task()
        assert caller is not None
        return await gathered([holds(), fails(caller)])

    task = asyncio.create_task(run())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["held"]


async def test_gathered_a_caller_cancelled_in_the_turn_after_a_failure_ends_the_rest() -> None:
    """A field failed on its first step and the ones after it started as tasks: a
    cancel of the caller (a deadline, a client gone) in the turn they take their
    first step still cancels them, as gather_with_cancel's gather would."""
    finished: list[str] = []

    async def fails_now() -> None:
        raise ValueError("non-null field failed")

    async def reads() -> None:
        await asyncio.sleep(0.05)
        finished.append("read for nobody")

    caller = asyncio.create_task(gathered([fails_now(), reads()]))
    await asyncio.sleep(0)  # the caller failed inline, started reads(), and yields
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0.1)
    assert finished == []


@pytest.mark.parametrize("run", [settled, gathered], ids=["settled", "gathered"])
async def test_an_item_that_is_not_awaitable_is_refused_before_the_rest_start(run: Any) -> None:
    """As gather refuses it: a TypeError naming it, the work before it done, the work
    after it never started (closed, so no 'never awaited' warning)."""
    work = Work()
    later = work("c")
    with pytest.raises(TypeError, match="awaitable is required, not int"):
        await run([work("a"), 42, later])
    assert work.started == ["a"]
    assert later.cr_frame is None, "closed, never to run"
