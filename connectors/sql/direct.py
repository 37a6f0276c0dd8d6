"""SQLite statements without SQLAlchemy's engine: the SQL connector's direct path.

SQLAlchemy's async engine over aiosqlite makes four thread hops per
statement (cursor, execute, fetch, close) plus its pool checkout, result
objects and greenlet switches: ~0.4 ms a statement where ``sqlite3`` takes
~0.01 ms. Here a statement is compiled by SQLAlchemy once per shape
(:mod:`connectors.sql.compiled`) and sent to a pooled ``sqlite3``
connection, each owned by one worker thread, which executes it and fetches
every row in a single job.

What the SQLAlchemy path guaranteed still holds:

* connections are opened exactly as the engine's dialect would open them
  (``mode=ro`` URI, its connect arguments) and get ``PRAGMA query_only``;
* each statement goes through the engine's ``before_cursor_execute``
  listeners — the read-only guard, the statement count, explain's
  observer, the request-id comment — and then ``after_cursor_execute``,
  so nothing that watches the engine misses a statement (their ``conn``,
  ``cursor`` and ``context`` arguments are ``None`` here);
* a statement can be interrupted (``sqlite3.Connection.interrupt``) when
  its timeout or the request's deadline passes (a pool keeps one timer for
  the statements in flight, not an ``asyncio.timeout`` per statement:
  :class:`~connectors.deadline.Alarms`), or once its caller leaves — one the
  thread took but SQLite had not started (``interrupt()`` does nothing then)
  is stopped by the thread's progress handler (:meth:`_Worker.watch`);
* ``engine.dispose()`` also closes this pool's idle connections.

A thread hop costs more than a short statement, so a statement is first run
on the loop's own thread, when its connection's thread has nothing queued,
within the pool's inline budget of CPU time (option ``sqlite_inline_budget``;
:mod:`connectors.sql.inline`); one stopped at the budget goes to the
connection's thread as before, and a stream (an export's scan) always runs
there. A statement run inline waits for no lock: one that finds a writer's lock
goes to the thread. Cancellation and timeouts need nothing new: a caller cannot
leave while the loop runs its statement, and the budget is cut to the
statement's timeout and the request's deadline.

sqlite3's busy wait (5 s by default) calls neither the progress handler nor
honours ``interrupt()``, so a statement that met a writer's lock held its
connection's thread for the whole busy timeout, whether or not its caller still
waited, and the connection's next user waited behind it. The connections run
with a busy timeout of 0: the thread tries a statement that finds the file
locked again, within the connection's own busy timeout, and stops once its
caller left (:meth:`_Worker.retried`, :mod:`connectors.sql.locks`). The tries
again are the same text, past the engine's listeners once: counted once.

The pool keeps ``pool_size`` connections open; up to ``max_overflow`` more
open when callers need them and close once none of them has been needed for
:data:`OVERFLOW_LINGER` seconds (closing each on its return, as SQLAlchemy's
pool does, started a thread and a connection per statement under steady
concurrency: ~1 ms of CPU per customer 360 at 10 concurrent requests).

Callers that find every connection lent wait in line: a connection given back
(or the place of one that closed) is handed to the longest-waiting caller on
the spot, so none arriving meanwhile finds it idle (handing over a wake-up let
newcomers overtake a waiter, under steady load until its deadline passed).

Once the connector is closed (:meth:`DirectSQLite.close`) the pool opens no
connection again: the callers waiting, and any that ask later, get
:class:`~connectors.errors.SourceUnavailable` saying so, and a connection given
back closes (handed on, it had opened a new one after the close).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ClauseElement

from connectors.deadline import Alarms, Deadline, current_deadline, time_left
from connectors.errors import SourceUnavailable
from connectors.serial import SerialThread
from connectors.sql import inline
from connectors.sql.compiled import CompiledStatements
from connectors.sql.engine import read_only_url
from connectors.sql.locks import lock_waits, locked

T = TypeVar("T")
ABANDON_STEPS = 10_000
"""SQLite virtual-machine steps between two looks, on a connection's thread, at
whether the statement's caller stopped waiting (under 1 ms of a statement; at
1,000 steps the looks cost 0.7-3.7% of a 16.5 ms scan's CPU time, here within noise)."""
OVERFLOW_LINGER = 5.0
"""Seconds idle overflow connections stay open after the last moment the pool
needed more than ``pool_size`` at once."""


class _Worker(SerialThread):
    """One ``sqlite3`` connection and the thread that runs everything on it (while
    that thread is idle, the loop's thread may use the connection)."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.connection: sqlite3.Connection | None = None
        self.busy_wait = 0.0
        """The connection's busy timeout as opened (seconds): how long a statement on
        its thread waits for a writer's lock on the file, between tries of
        :meth:`retried` (the connection itself runs with a busy timeout of 0)."""
        self.watched = True
        """Whether :meth:`watch`'s progress handler is in force (a statement run
        inline has the inline budget's: the thread's next job puts it back)."""
        self._woken = threading.Event()
        """Set by :meth:`interrupt`: the caller left, :meth:`retried` stops waiting."""
        super().__init__("custview-sqlite")

    def watch(self, connection: sqlite3.Connection) -> None:
        """Stop the thread's statement once its caller stopped waiting, even when it
        gave up before SQLite started it (``interrupt()`` stops only a running
        statement): the handler looks every :data:`ABANDON_STEPS` steps."""
        connection.set_progress_handler(self.abandoned, ABANDON_STEPS)

    def _before(self) -> None:
        if not self.watched and self.connection is not None:
            self.watch(self.connection)
            self.watched = True

    def _after(self) -> None:
        if self.connection is not None:
            self.connection.close()

    def retried(self, work: Callable[[], T]) -> T:
        """``work()`` (on the thread), tried again while a writer holds the file's
        lock, after sleeps like SQLite's busy handler's, for at most the connection's
        busy timeout (:mod:`connectors.sql.locks`), and no longer once the caller
        left: sqlite3's own busy wait stops for neither the progress handler nor
        ``interrupt()``, and held the thread (and its next user) to its end."""
        waits: Iterator[float] | None = None
        while True:
            try:
                return work()
            except sqlite3.OperationalError as exc:
                if not locked(exc):
                    raise
                if waits is None:
                    self._woken.clear()  # before the look: a caller leaving after it sets it
                    waits = iter(lock_waits(self.busy_wait))
                delay = next(waits, None)
                if delay is None or self.abandoned() or self._woken.wait(delay) or self.abandoned():
                    raise

    def interrupt(self) -> None:
        """Stop the statement running on the connection, if any, or the wait for a
        lock between its tries (thread-safe)."""
        if self.connection is not None:
            self.connection.interrupt()
        self._woken.set()


def _time_out(future: asyncio.Future[Any]) -> None:
    """A statement's caller stops waiting (see :class:`_Runner`'s ``watch``)."""
    if not future.done():
        future.set_exception(TimeoutError())


class DirectSession:
    """A pooled connection lent to one connector operation."""

    def __init__(self, runner: DirectSQLite, worker: _Worker) -> None:
        self._runner = runner
        self.worker = worker
        self.cursor: sqlite3.Cursor | None = None
        self.busy = False
        """A job was sent and its answer not received (the caller was cancelled)."""

    async def _call(self, work: Callable[[], T]) -> T:
        # a caller that stops waiting (its timeout, the request's deadline, a cancel)
        # leaves ``busy`` set: :meth:`DirectSQLite.release` interrupts the statement
        self.busy = True
        result = await self.worker.call(work)
        self.busy = False
        return result

    async def _bounded_call(
        self, work: Callable[[], T], seconds: float, deadline: Deadline | None
    ) -> T:
        """:meth:`_call`, waited for at most ``seconds`` (:func:`time_left`):
        then :class:`TimeoutError`, or the deadline's
        :class:`~connectors.errors.DeadlineExceeded` when it is what ran out (as
        the connector's ``asyncio.timeout`` scope does for other sessions)."""
        self.busy = True
        future = self.worker.call(work)
        loop = future.get_loop()
        watch = self._runner.watch
        watch.add(future, loop.time() + seconds, loop)
        try:
            result = await future
        except TimeoutError:
            if deadline is None:
                raise
            raise deadline.exceeded(self._runner.source) from None
        finally:
            watch.discard(future)
        self.busy = False
        return result

    async def all(
        self,
        statement: ClauseElement,
        params: Mapping[str, Any] | None = None,
        limit: float | None = None,
    ) -> list[Any]:
        """Every row of ``statement``, read on the loop's thread within the pool's
        inline budget (:meth:`_inline`), or else in one hop to the connection's
        thread; with ``limit`` (the source's timeout, seconds), waited for at most
        that long or until the request's deadline (:meth:`_bounded_call`; not sent
        when the deadline has passed)."""
        seconds = math.inf
        deadline: Deadline | None = None
        if limit is not None:
            if current_deadline() is None:  # :func:`time_left`'s answer without one
                seconds = limit
            else:
                seconds, deadline = time_left(limit)
                if deadline is not None and seconds <= 0:
                    raise deadline.passed(self._runner.source)
        runner = self._runner
        # :meth:`DirectSQLite.announce`, written out
        shape, args = runner.statements.render(statement, params)
        sql = shape
        for listener in runner._engine.dispatch.before_cursor_execute:
            sql, args = listener(None, None, sql, args, None, False)
        connection = self.worker.connection
        assert connection is not None
        rows, seconds = self._inline(connection, sql, args, shape, seconds)
        if rows is None:
            work = partial(self.worker.retried, partial(inline.fetch_all, connection, sql, args))
            if limit is None:
                rows = await self._call(work)
            else:
                rows = await self._bounded_call(work, seconds, deadline)
        # :meth:`DirectSQLite.executed`, written out
        runner._engine.dispatch.after_cursor_execute(None, None, sql, args, None, False)
        return rows

    def _inline(
        self,
        connection: sqlite3.Connection,
        sql: str,
        args: Sequence[Any],
        shape: str,
        seconds: float,
    ) -> tuple[list[Any] | None, float]:
        """The rows, read on the loop's thread if the connection's thread is idle
        and they come within the pool's inline budget of CPU time (and within
        :data:`~connectors.sql.inline.WALL_LIMIT` times it, and ``seconds``, by the
        clock), else None; and the seconds left to wait for them. A statement
        stopped having used the budget in CPU time, or one that used more than
        twice the budget's CPU time in a step SQLite does not stop (counting a
        whole table is one), runs on the thread for its next
        :data:`~connectors.sql.inline.SLOW_RUNS` runs (``shape``: its text before
        the engine's listeners, which may tag each request's statements
        differently). One stopped by the clock with less CPU time than that was
        paused (by the machine, or by the GIL's hand-offs to other threads), not
        long: it goes to the thread this once."""
        runner = self._runner
        budget = runner.inline_budget
        limit = min(budget * inline.WALL_LIMIT, seconds)
        slow = runner.slow
        if (
            budget <= 0
            or limit <= 0
            or not self.worker.idle()
            or (shape in slow and not slow.may_inline(shape))
        ):
            return None, seconds
        self.worker.watched = False  # the inline budget's progress handler replaces it
        started, cpu = time.perf_counter(), time.thread_time()
        rows, stopped = inline.fetch_within(connection, sql, args, budget, limit, cpu)
        took = time.perf_counter() - started
        # CPU time: a statement is not slow because the process was paused (a busy
        # machine stopped ~1 in 300 short statements by the clock; at 10 requests in
        # flight the GIL's hand-offs to the connection threads stopped ~1 in 30).
        # It is read only when it may count: never more than the time taken, it passes
        # the budget only in a statement that took that long (most take ~20 us).
        if (stopped or took > 2 * budget) and _long(time.thread_time() - cpu, stopped, budget):
            runner.slow.add(shape)
        return rows, seconds - took

    async def first_chunk(
        self, statement: ClauseElement, size: int, params: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """Start a streamed read: its first ``size`` rows (one hop), then :meth:`chunk`."""
        sql, args, _ = self._runner.announce(statement, params)
        connection = self.worker.connection
        assert connection is not None

        def start() -> list[Any]:
            self.cursor = connection.execute(sql, args)
            return self.cursor.fetchmany(size)

        rows = await self._call(partial(self.worker.retried, start))
        self._runner.executed(sql, args)
        return rows

    async def chunk(self, size: int) -> list[Any]:
        cursor = self.cursor
        assert cursor is not None
        return await self._call(lambda: cursor.fetchmany(size))


def _long(used: float, stopped: bool, budget: float) -> bool:
    """Whether a statement run inline that used ``used`` seconds of CPU time is long."""
    return (stopped and used >= budget) or used > 2 * budget


class DirectSQLite:
    """The direct path of one SQLite source: its connection pool and compiled statements."""

    def __init__(
        self,
        engine: AsyncEngine,
        pool_size: int,
        max_overflow: int,
        keys: int,
        source: str = "",
        inline_budget: float = 0.0,
    ) -> None:
        self.source = source
        """The source's name, for the deadline's errors."""
        self.inline_budget = inline_budget
        """Seconds a statement may run on the loop's thread before it is stopped and
        sent to its connection's thread (0: always sent)."""
        self.slow = inline.SlowStatements()
        self.watch: Alarms[asyncio.Future[Any]] = Alarms(_time_out)
        """The statements in flight on this pool and when their callers stop waiting
        (one timer for them all)."""
        sync_engine = engine.sync_engine
        self._engine = sync_engine
        self._dialect = sync_engine.dialect
        # the file, URI and options exactly as the engine's dialect opens them
        args, kwargs = self._dialect.create_connect_args(read_only_url(sync_engine.url))
        connect: Callable[..., sqlite3.Connection] = sqlite3.connect
        self._connect = partial(connect, *args, **{**kwargs, "isolation_level": None})
        self.statements = CompiledStatements(self._dialect, keys)
        self._keep = pool_size
        self._limit = pool_size + max_overflow
        self._idle: list[_Worker] = []
        """Least recently used first; ``pop()`` lends the warmest."""
        self._crowded = 0.0
        """When the pool last lent more than ``pool_size`` connections (monotonic)."""
        self._trim: asyncio.TimerHandle | None = None
        self._trim_loop: asyncio.AbstractEventLoop | None = None
        self._open = 0
        self._lent = 0
        self._generation = 0
        self._waiters: deque[asyncio.Future[_Worker | None]] = deque()
        """Callers waiting for a connection, longest first: each gets a released
        connection, or None (a connection may be opened: ``_open`` and ``_lent``
        count it already). While one is waiting none is idle and none may open."""
        self._closed = False
        """Set by :meth:`close`: no connection opens again."""
        event.listen(sync_engine, "engine_disposed", self._disposed)

    def usage(self) -> tuple[int, int]:
        """Connections lent out, and how many may be open at once."""
        return self._lent, self._limit

    def idle(self) -> DirectSession | None:
        """A connection at once if one is idle (no waiting, so no timeout to set);
        none is while callers wait in :meth:`acquire` (each was handed one)."""
        if not self._idle:
            return None
        self._lent += 1  # :meth:`_lend`, written out
        if self._lent > self._keep:
            self._crowded = time.monotonic()
        return DirectSession(self, self._idle.pop())

    def _lend(self) -> None:
        """Count one more connection lent (and when the pool was last crowded)."""
        self._lent += 1
        if self._lent > self._keep:
            self._crowded = time.monotonic()

    async def acquire(self) -> DirectSession:
        """An idle connection, a new one while the pool may open more, or else the
        first given back after the callers already waiting had theirs."""
        if self._idle:  # then none waits (:meth:`release` hands a connection to the first)
            self._lend()
            return DirectSession(self, self._idle.pop())
        if self._closed:
            raise self._closed_error()
        if self._open < self._limit:
            self._open += 1
            self._lend()
            return await self._opened()
        waiter: asyncio.Future[_Worker | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            worker = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._pass_on(waiter.result())  # the turn this waiter got and cannot use
            elif waiter in self._waiters:  # _hand_over passes over (drops) a cancelled one
                self._waiters.remove(waiter)
            raise
        if worker is None:
            return await self._opened()
        if self._closed:  # handed over before the close, resumed after it
            self.release(DirectSession(self, worker))
            raise self._closed_error()
        return DirectSession(self, worker)

    async def _opened(self) -> DirectSession:
        """A new connection, lent in a place already counted (``_open``, ``_lent``);
        if it cannot open, or the pool closed meanwhile, the place goes to the next
        waiter."""
        try:
            if self._closed:
                raise self._closed_error()
            worker = await self._start()
            if self._closed:
                worker.stop()
                raise self._closed_error()
            return DirectSession(self, worker)
        except BaseException:
            self._pass_on(None)
            raise

    def _closed_error(self) -> SourceUnavailable:
        return SourceUnavailable(
            "the connector is closed: it opens no connection", source=self.source, retryable=False
        )

    def _pass_on(self, worker: _Worker | None) -> None:
        """Give back what a caller was handed and will not use: the connection
        (as :meth:`release` would), or the place to open one (to the next waiter)."""
        if worker is not None:
            self.release(DirectSession(self, worker))
            return
        self._open -= 1
        self._lent -= 1
        if self._waiters:
            self._hand_over(None)

    async def _start(self) -> _Worker:
        worker = _Worker(self._generation)

        def connect() -> None:
            connection = self._connect()
            try:
                connection.execute("PRAGMA query_only = ON")
                (busy_ms,) = connection.execute("PRAGMA busy_timeout").fetchone()
                connection.execute("PRAGMA busy_timeout = 0")  # waited between tries
                worker.busy_wait = busy_ms / 1000
                worker.watch(connection)
            except BaseException:
                connection.close()
                raise
            worker.connection = connection

        try:
            await worker.call(connect)
        except BaseException:
            worker.stop()
            raise
        return worker

    def release(self, session: DirectSession, reusable: bool = True) -> None:
        worker = session.worker
        self._lent -= 1
        if session.busy:  # abandoned mid-statement: do not make the next user wait for it
            worker.interrupt()
        if session.cursor is not None:
            worker.post(session.cursor.close)  # queued: the next job runs after it
            session.cursor = None
        if reusable and worker.generation == self._generation:
            if self._waiters and self._hand_over(worker):
                return
            if len(self._idle) < self._keep or self._linger():
                self._idle.append(worker)  # past pool_size: until the crowd is gone
                return
        self._open -= 1
        worker.stop()
        if self._waiters:
            self._hand_over(None)  # its place: the first waiter opens a connection

    def _linger(self) -> bool:
        """Whether an overflow connection may stay idle: a trim is (now) scheduled
        on the running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._trim is not None and self._trim_loop is not loop:
            self._trim.cancel()  # scheduled on a loop that is gone
            self._trim = None
        if self._trim is None:
            wait = max(0.0, self._crowded + OVERFLOW_LINGER - time.monotonic())
            self._trim = loop.call_later(wait, self._trim_overflow)  # any loop's clock
            self._trim_loop = loop
        return True

    def _trim_overflow(self) -> None:
        """Close the idle overflow connections once the pool was not crowded for
        :data:`OVERFLOW_LINGER` seconds; else look again when that may be so."""
        self._trim = None
        if len(self._idle) <= self._keep:
            return
        if time.monotonic() - self._crowded < OVERFLOW_LINGER:
            self._linger()
            return
        cut = len(self._idle) - self._keep
        extra, self._idle = self._idle[:cut], self._idle[cut:]
        self._open -= len(extra)
        for worker in extra:
            worker.stop()

    def _hand_over(self, worker: _Worker | None) -> bool:
        """Lend ``worker`` (None: a place to open a connection in) to the
        longest-waiting caller still waiting, if any."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                if worker is None:
                    self._open += 1
                self._lend()
                waiter.set_result(worker)
                return True
        return False

    def _disposed(self, engine: Any) -> None:
        """``engine.dispose()``: the idle connections close, the lent ones on release."""
        self._generation += 1
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for worker in idle:
            worker.stop()

    def close(self) -> None:
        """Close every connection (the lent ones when they come back) and open none
        again: the callers waiting, and any that ask later, get :class:`SourceUnavailable`
        (``engine.dispose()`` alone lets later calls open new ones)."""
        self._closed = True
        self._disposed(self._engine)
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(self._closed_error())

    def announce(
        self, statement: ClauseElement, params: Mapping[str, Any] | None
    ) -> tuple[str, Sequence[Any], str]:
        """The statement's SQL as the engine's listeners leave it (guarded, counted,
        tagged), its parameters, and its SQL before them (the same for every run of
        the statement's shape)."""
        shape, args = self.statements.render(statement, params)
        sql, parameters = shape, args
        for listener in self._engine.dispatch.before_cursor_execute:
            sql, parameters = listener(None, None, sql, parameters, None, False)
        return sql, parameters, shape

    def executed(self, sql: str, args: Sequence[Any]) -> None:
        self._engine.dispatch.after_cursor_execute(None, None, sql, args, None, False)
