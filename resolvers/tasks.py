"""Concurrent work for one request that ends together."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Generator, Sequence
from typing import Any


async def gather_or_cancel(*work: Awaitable[Any]) -> list[Any]:
    """``asyncio.gather(*work)``, except that when one fails (or the caller is
    cancelled) the others are cancelled instead of running on after the answer
    (``gather`` leaves them running: source reads for nobody). The first failure
    is raised as it is, not wrapped as a ``TaskGroup`` would wrap it. (graphql-core's
    ``gather_with_cancel`` does the same, but exports must not import graphql.)

    Only for work that owns what it waits for (a source call): a task cancelled
    while it awaits a DataLoader's future cancels that future, which other fields
    of the request share, and they would fail with ``CancelledError``."""
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
    results: list[Any] = []
    for at, awaitable in enumerate(work):
        steps = awaitable.__await__()
        try:
            waiting = steps.send(None)
        except StopIteration as done:
            results.append(done.value)
            continue
        except Exception as exc:
            results.append(exc)
            continue
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and task.cancelling() <= cancelled:
                results.append(exc)
                continue
            _close(work[at + 1 :])
            raise
        rest = work[at + 1 :]
        others = asyncio.gather(*rest, return_exceptions=True) if rest else None
        try:
            try:
                results.append(await _rest_of(steps, waiting))
            except Exception as exc:
                results.append(exc)
            except asyncio.CancelledError as exc:
                if task.cancelling() > cancelled:
                    raise
                results.append(exc)
            if task.cancelling() > cancelled:  # the work swallowed the caller's cancel
                raise asyncio.CancelledError
        except GeneratorExit:  # closed, never to run again: nothing to wait in
            if others is not None:
                others.cancel()
                others.add_done_callback(_retrieved)
            raise
        except BaseException:
            if others is not None:
                others.cancel()
                await _ended(others)
            raise
        if others is not None:
            results += await others
        break
    return results


async def _ended(others: asyncio.Future[Any]) -> None:
    """Wait for cancelled ``others`` to end (their connections given back before
    the caller goes on, as gather waits), whatever they end with."""
    try:
        await others
    except BaseException:  # their outcome is nobody's now
        _retrieved(others)


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
