"""Concurrent work for one request that ends together."""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any


class NotAwaitable(TypeError):
    """An item of the work that is not awaitable (as :func:`asyncio.gather` refuses it)."""

    def __init__(self, item: object) -> None:
        super().__init__(
            f"An asyncio.Future, a coroutine or an awaitable is required, not {type(item).__name__}"
        )


async def gather_or_cancel(*work: Awaitable[Any]) -> list[Any]:
    """``asyncio.gather(*work)``, except that when one fails (or the caller is
    cancelled) the others are cancelled instead of running on after the answer
    (``gather`` leaves them running: source reads for nobody). The first failure
    is raised as it is, not wrapped as a ``TaskGroup`` would wrap it. (graphql-core's
    ``gather_with_cancel`` does the same, but exports must not import graphql.)

    Only for work that owns what it waits for (a source call): a task cancelled
    while it awaits a DataLoader's future cancels that future, which other fields
    of the request share, and they would read its keys again
    (:func:`resolvers.loaders.load_again`)."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def settled(work: Sequence[Awaitable[Any]]) -> list[Any]:
    """``asyncio.gather(*work, return_exceptions=True)``, without a task for work
    that answers at once: each awaitable is started in the caller's task in turn;
    the first that has to wait goes on there, and the ones after it then start in
    tasks of their own (as gather would have started them, in order). A source call
    answered on the loop's thread (a SQLite read run inline) costs its task, and
    the loop's turn to run it, more than its statement.

    As with gather, an exception is its awaitable's result, a ``CancelledError`` of
    the work's own (the caller not cancelled) too; a cancellation of the caller
    cancels the tasks started, and returns once they ended, and closes the
    awaitables not started, even when the work going on in the caller's task
    turned it into an error of its own."""
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("settled() runs in a task")
    cancelled = task.cancelling()  # more, later: the caller is being cancelled
    context = contextvars.copy_context()  # the tasks' start, as gather's tasks copy it
    results: list[Any] = []

    def settles(exc: BaseException) -> bool:
        # a CancelledError of the work's own, the caller not cancelled, is a result
        own = isinstance(exc, asyncio.CancelledError) and task.cancelling() <= cancelled
        return own or isinstance(exc, Exception)

    try:
        first = _until_waiting(work, results, settles)
    except BaseException:
        _close(work[len(results) + 1 :])
        raise
    if first is None:
        return results
    others = _started(work[len(results) + 1 :], context)
    try:
        try:
            results.append(await _rest_of(*first))
        except Exception as exc:
            results.append(exc)
        except asyncio.CancelledError as exc:
            if task.cancelling() > cancelled:
                raise
            results.append(exc)
        if task.cancelling() > cancelled:  # the work swallowed the caller's cancel
            raise asyncio.CancelledError
    except GeneratorExit:  # closed, never to run again: nothing to wait in
        _abandoned(others)
        raise
    except BaseException:
        await _cancelled(others)
        raise
    if others:
        results += await asyncio.gather(*others, return_exceptions=True)
    return results


async def gathered(work: Sequence[Awaitable[Any]]) -> list[Any]:
    """graphql-core's ``gather_with_cancel(*work)`` — the results in order, or the
    first failure raised once the others were cancelled and ended — without a task
    for work that answers at once, as :func:`settled` starts it: in the caller's
    task in turn, the first that has to wait going on there and the ones after it
    in tasks of their own (in the context the caller had before any of them ran, as
    gather's tasks copy it). The fast path's fields are mostly answered at once
    (their SQLite reads run inline), and a task each cost more than their work.
    Work run in the caller's task runs in the caller's context: unlike gather's
    tasks, a variable it sets and does not reset is seen by the work after it and
    by the caller (custview's context variables are set and reset in one scope).

    As with ``gather_with_cancel``: a failure of one of those tasks while the work in
    the caller's task still waits cancels that work (the caller's task is cancelled
    for it, as a ``TaskGroup`` does) and the other tasks, and is raised once they
    ended; one that fails before waiting lets the ones after it take their first
    step (as gather's tasks would have), then cancels those that wait."""
    context = contextvars.copy_context()
    results: list[Any] = []
    try:
        first = _until_waiting(work, results, None)
    except NotAwaitable:  # as gather: raised before any work after it started
        _close(work[len(results) + 1 :])
        raise
    except Exception:
        others = _started(work[len(results) + 1 :], context)
        if others:
            try:
                await asyncio.sleep(0)  # their first step, as gather's tasks take it
            finally:  # the caller cancelled in that turn too: they still end here
                await _cancelled(others)
        raise
    except BaseException:
        _close(work[len(results) + 1 :])
        raise
    if first is None:
        return results
    return await _waited(results, *first, _started(work[len(results) + 1 :], context))


def _until_waiting(
    work: Sequence[Awaitable[Any]],
    results: list[Any],
    settles: Callable[[BaseException], bool] | None,
) -> tuple[Generator[Any, Any, Any], Any] | None:
    """Each awaitable's first step in the caller's task, in turn, its result added to
    ``results`` (and its exception, where ``settles`` says so), until one has to
    wait: its steps and what it waits for, or None when every one answered. An
    exception not settled is raised; ``work[len(results)]`` raised it."""
    for awaitable in work:
        try:
            steps = awaitable.__await__()
        except AttributeError:
            raise NotAwaitable(awaitable) from None
        try:
            waiting = steps.send(None)
        except StopIteration as done:
            results.append(done.value)
            continue
        except BaseException as exc:
            if settles is None or not settles(exc):
                raise
            results.append(exc)
            continue
        return steps, waiting
    return None


def _started(work: Sequence[Awaitable[Any]], context: contextvars.Context) -> list[Any]:
    loop = asyncio.get_running_loop()
    return [
        loop.create_task(w, context=context.copy())
        if asyncio.iscoroutine(w)
        else asyncio.ensure_future(w)
        for w in work
    ]


async def _waited(
    results: list[Any], steps: Generator[Any, Any, Any], waiting: Any, others: list[Any]
) -> list[Any]:
    """:func:`gathered` once a work waited: the rest of its steps in the caller's
    task while ``others`` run, then theirs."""
    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()
    failed: list[BaseException] = []
    watching = True

    def watch(other: asyncio.Future[Any]) -> None:
        if watching and not failed and not other.cancelled():
            failure = other.exception()
            if isinstance(failure, Exception):
                failed.append(failure)
                task.cancel()  # the work going on in the caller's task stops

    for other in others:
        other.add_done_callback(watch)
    try:
        first = await _rest_of(steps, waiting)
    except GeneratorExit:  # closed, never to run again: nothing to wait in
        _abandoned(others)
        raise
    except BaseException as exc:
        watching = False
        ours = bool(failed) and isinstance(exc, asyncio.CancelledError)
        if ours and task.cancelling() > cancelling:
            task.uncancel()
        await _cancelled(others)
        if ours and task.cancelling() <= cancelling:  # else the caller was cancelled too
            raise failed[0] from None
        raise
    watching = False
    if failed:  # the work swallowed the cancel it was sent for another's failure
        if task.cancelling() > cancelling:
            task.uncancel()
        await _cancelled(others)
        raise failed[0]
    results.append(first)
    if others:
        try:
            results += await asyncio.gather(*others)
        except Exception:
            await _cancelled(others)
            raise
    return results


async def _cancelled(others: list[Any]) -> None:
    """``others`` that have not ended cancelled, and waited for whatever they end with
    (their connections given back before the caller goes on, as gather waits)."""
    for other in others:
        if not other.done():
            other.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def _abandoned(others: list[Any]) -> None:
    """``others`` cancelled, and whatever they end with dropped, with nobody to wait
    for them."""
    for other in others:
        other.cancel()
        other.add_done_callback(_retrieved)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception read (asyncio logs one never retrieved)."""
    if future.done() and not future.cancelled():
        future.exception()


@types.coroutine
def _rest_of(steps: Generator[Any, Any, Any], waiting: Any) -> Generator[Any, Any, Any]:
    """What ``await`` does with an awaitable whose first step was taken and gave
    ``waiting``: the rest of its steps, each value sent and exception thrown to it
    passed on (``yield from``, its first step written out)."""
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:
            try:
                waiting = steps.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting = steps.send(sent)
            except StopIteration as done:
                return done.value


def _close(work: Sequence[Awaitable[Any]]) -> None:
    """Awaitables that will never be awaited: coroutines closed (no warning)."""
    for awaitable in work:
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
