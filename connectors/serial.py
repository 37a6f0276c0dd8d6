"""One thread of one's own that runs jobs one after the other, answering on the loop.

Two things need a thread of their own instead of the event loop's default
executor: each connection of the SQLite direct path (:mod:`connectors.sql.direct`:
``sqlite3`` work on one connection, in order, a statement's whole run in one hop)
and each export waiting on its worker processes (``gateway/export_workers.py``: a
chunk takes seconds, and a few exports holding the default executor's threads
would starve everything else that uses it). Both want the same runner, this one.

Not ``ThreadPoolExecutor(max_workers=1)``, for two reasons. Its thread is not a
daemon: the interpreter joins it on the way out, before ``atexit`` runs, so a job
blocked on a worker process that only multiprocessing's ``atexit`` ends, or a
connection's thread that nobody stopped, would keep the process from exiting. And
its answer is a :class:`concurrent.futures.Future` that the loop awaits through
:func:`asyncio.wrap_future` (a second future, a lock, callbacks both ways), on the
path of every SQLite statement that leaves the loop's thread; here the thread sets
the caller's :class:`asyncio.Future` with one ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple["asyncio.Future[Any] | None", "asyncio.AbstractEventLoop | None", Callable[[], Any]]


class SerialThread:
    """One daemon thread running the jobs queued, one after the other (a daemon: a
    thread nobody stopped, or one blocked for good, must not keep the process from
    exiting). A job whose caller stopped waiting before it started is never run."""

    def __init__(self, name: str) -> None:
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._sent = 0
        """Jobs queued (counted on the loop's thread)."""
        self._done = 0
        """Jobs over (counted on this thread)."""
        self._running: asyncio.Future[Any] | None = None
        """The answer of the job running on the thread (None: a posted job, or none)."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, work: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``work``; its answer (or its exception) on the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._sent += 1
        self._jobs.put((future, loop, work))
        return future

    def post(self, work: Callable[[], object]) -> None:
        """Queue ``work`` without waiting for it (nor for its failure)."""
        self._sent += 1
        self._jobs.put((None, None, work))

    def idle(self) -> bool:
        """Nothing queued or running on the thread."""
        return self._sent == self._done

    def abandoned(self) -> bool:
        """Whether the running job's caller stopped waiting (cancelled, or its timeout
        passed): for the job itself to look at, on the thread."""
        running = self._running
        return running is not None and running.done()

    def stop(self) -> None:
        """The thread ends after the jobs already queued."""
        self._jobs.put(None)

    def join(self) -> None:
        self._thread.join()

    def _before(self) -> None:
        """Runs on the thread before each job; its exception is the job's."""

    def _after(self) -> None:
        """Runs on the thread once it has stopped."""

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._one(*job)  # its arguments and answer are not kept while the next waits
            del job
        self._after()

    def _one(
        self,
        future: asyncio.Future[Any] | None,
        loop: asyncio.AbstractEventLoop | None,
        work: Callable[[], Any],
    ) -> None:
        if future is not None and future.done():
            self._done += 1
            return  # its caller stopped waiting before it started: never run it
        self._running = future
        try:
            self._before()
            outcome, failed = work(), False
        except BaseException as exc:
            outcome, failed = exc, True
        self._running = None
        self._done += 1
        if future is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, outcome, failed)


def _settle(future: asyncio.Future[Any], outcome: Any, failed: bool) -> None:
    if future.done():  # the caller was cancelled (a timeout)
        return
    if failed:
        if isinstance(outcome, StopIteration):  # a future refuses it (TypeError)
            outcome = RuntimeError(f"the job raised {outcome!r}")
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
