"""Export worker processes: a whole export's passes 1 and 2 on the other cores.

An export of every customer spends most of its CPU building chunks (reading a
chunk's records by key, golden values, metrics, rows), which needs nothing but
each customer's record keys from pass 1, and most of pass 1 reading the member
tables' identity keys, a table at a time. :class:`ExportWorkers` starts
``exports.workers`` processes when an export starts; each builds its own
connectors from the same validated settings. Pass 1 sends each member table to
whichever worker is free (:func:`resolvers.walk.scan_member`: its record keys
come back as bytes), then has the workers join the key buckets, a share each
(each bucket of a read passed on, through here, to the worker that joins it),
and merges their forests (:mod:`resolvers.walk_join`); pass 2 sends chunks
round robin (:class:`resolvers.export_chunks.ChunkMaker`), keeps at most
``IN_FLIGHT`` per worker, takes them back in order, masks and audits them and
encodes. When nothing of the export is masked and its format is encoded a chunk
at a time (:data:`gateway.formats.CHUNKED`), each worker encodes the chunks it
builds and sends their bytes (:class:`resolvers.export.Encoded`) with the
chunk's customer ids and error codes for the audit, not the rows' values to be
pickled there and unpickled here. Every member table is read and joined by the
workers, never here: they hash the keys alike (forked from one fork server), the
exporting process does not.

Workers are not forked from the exporting process, which runs threads and an
event loop, but from multiprocessing's fork server (started by the first
export, single-threaded, the workers' imports loaded once; it ends with the
exporting process). A worker ignores SIGINT (Ctrl-C reaches the whole process group;
the exporter decides) and exits when its pipe closes, so it cannot outlive
its exporter. When an export ends early (cancelled, failed), its workers are
terminated at once.

The exporter waits for its workers (their start, each chunk, their exit) in one
thread of its own per export, never in the event loop's default executor: a
chunk takes seconds to build, and a few exports each holding one of that pool's
threads (6 on 2 cores) would leave the audit log's fsyncs, SIGHUP reloads and
DNS look-ups waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.redaction import describe_error
from connectors.serial import SerialThread
from gateway.worker_process import WorkerProcess

if TYPE_CHECKING:
    from gateway.formats import Encoder
    from gateway.settings import LoadedSettings
    from resolvers.export import Column
    from resolvers.export_chunks import BuiltChunk, ChunkSpec
    from resolvers.walk import Group, MemberScan
    from resolvers.walk_join import Forest, JoinTask

log = logging.getLogger("custview.export")

IN_FLIGHT = 2
"""Chunks sent to a worker and not yet taken back: one being built, one waiting
(rows of a few chunks in memory, whatever the export's size)."""


class WorkerFailed(RuntimeError):
    """An export worker died, raised something other than a source error or answered
    out of turn; the message says what it was doing (which member table it read).
    Never a secret: an unexpected error is its type and first line, redacted."""


class ExportWorkers:
    """:class:`resolvers.export_chunks.ChunkBuilders` as ``count`` worker processes,
    for one export."""

    def __init__(
        self,
        loaded: LoadedSettings,
        count: int,
        fmt: str | None = None,
        columns: Sequence[Column] = (),
    ) -> None:
        self.loaded = loaded
        self.count = count
        self.encoding = _encoding(fmt, columns)
        """The export's format and columns, when the workers may encode its chunks
        (a format of :data:`gateway.formats.CHUNKED`); None: they send rows."""
        self.processes: list[WorkerProcess] = []
        self.pipes: list[Connection] = []
        self.finished = False
        self._thread: SerialThread | None = None
        self._sender: SerialThread | None = None
        self._held: dict[int, int] = {}
        """Member rank -> the worker holding pass 1's read of it."""
        self._unsent: dict[int, str] = {}
        """Worker -> what could not be sent to it, and why."""
        self._unfinished: list[deque[list[Any]]] = []
        """Per worker, what was sent to it and is not yet answered, oldest first, each
        ``[kind, rank, answers still due]`` (no payload): a worker that stops or fails
        is named with what it was doing, which need not be what is awaited from it (a
        bucket to keep is never answered)."""
        self._starting: asyncio.Future[None] | None = None
        self._failed: Exception | None = None
        self._secrets = loaded.secrets()
        self.usage: list[dict[str, float]] = []
        """Each worker's CPU seconds, peak RSS (KiB) and seconds spent waiting for a
        chunk to build, sent when it stops normally."""

    def start(self) -> None:
        """Starts the workers from this export's thread: the first export also starts
        the fork server (~1 s of imports), which must not hold up the event loop."""
        self._thread = SerialThread("custview-export-pipes")
        self._starting = self._thread.call(self._start)
        self._sender = SerialThread("custview-export-sends")
        # a generator dropped without aclose (no event loop left) still ends them
        weakref.finalize(self, _terminate, self.processes)

    def _start(self) -> None:
        context = _context()
        loaded = self.loaded
        try:
            with _main_hidden():
                for number in range(self.count):
                    ours, theirs = context.Pipe()
                    process = context.Process(
                        target=serve,
                        args=(theirs, loaded.path, loaded.settings, loaded.connectors),
                        name=f"custview-export-worker-{number}",
                        daemon=True,
                    )
                    process.start()
                    theirs.close()
                    self.processes.append(WorkerProcess(process))
                    self.pipes.append(ours)
                    self._unfinished.append(deque())
        except Exception as exc:
            self._failed = exc

    async def _in_thread(self, job: Callable[..., Any], *args: Any) -> Any:
        """``job(*args)`` in this export's thread, after whatever it is doing."""
        assert self._thread is not None, "start() first"
        return await self._thread.call(partial(job, *args))

    async def _started(self) -> None:
        if self._starting is not None:
            await self._starting
        if self._failed is not None:
            raise WorkerFailed(
                f"export workers could not start: {describe_error(self._failed, self._secrets)}"
            )

    async def scan(
        self, ranks: list[int], stop_on_error: bool = False
    ) -> AsyncGenerator[MemberScan, None]:
        """Pass 1's member tables, each read by whichever worker is free next (a
        worker reads one table at a time and holds what it read), then each read's
        keys taken from the workers in the order of ``ranks`` (its buckets wait for
        :meth:`join`).

        With ``stop_on_error`` (failures not collected: the walk raises at the first
        table that failed, in the order of ``ranks``), a failed read stops the scan
        as the in-process walk stops: no table after it is sent, the reads of those
        already sent are not waited for (:meth:`aclose` ends them), the tables
        before it are (one of them failing too wins), and then only the failed
        read's header comes back, its error the one the walk raises."""
        await self._started()
        assert self._sender is not None
        unsent = deque(ranks)
        place = {rank: at for at, rank in enumerate(ranks)}
        reading: dict[int, int] = {}
        """Worker -> the rank it reads (and is waited for)."""
        held = self._held
        failed: int | None = None
        """The first rank whose read failed, once the scan stops at it."""
        probes: dict[int, int] = {}
        """Worker -> its hash of :data:`HASH_PROBE`."""

        def read_next(worker: int) -> None:
            if unsent:
                reading[worker] = unsent.popleft()
                self._send_later(worker, ("scan", reading[worker]))

        for worker in range(min(self.count, len(ranks))):
            read_next(worker)
        while reading:
            worker = await self._in_thread(self._ready, list(reading))
            doing = f"reading {self._table(reading[worker])}"
            read_failed, probes[worker] = await self._take(worker, "scanned", doing)
            _check_hashes(probes)
            rank = reading.pop(worker)
            held[rank] = worker
            if read_failed and stop_on_error and (failed is None or place[rank] < place[failed]):
                failed = rank
                unsent.clear()
                for other, theirs in list(reading.items()):
                    if place[theirs] > place[rank]:
                        del reading[other]
            read_next(worker)
        for rank in ranks if failed is None else [failed]:
            doing = f"sending its read of {self._table(rank)}"
            self._send_later(held[rank], ("header", rank))
            yield await self._take(held[rank], "part", doing)

    async def join(self, task: JoinTask) -> AsyncIterator[Forest]:
        """Pass 1's buckets joined by the workers, worker ``w`` taking every bucket
        ``b`` with ``b % count == w``: first each worker's reads' buckets that
        another joins are passed on to it (a bucket at a time, one holder after the
        other: a worker sending is not reading, so nothing piles up here), then each
        joins its buckets; each one's forest as it is done."""
        from resolvers.walk import BUCKETS

        await self._started()
        assert self._sender is not None
        count = self.count
        for rank, _ in task.members:
            holder = self._held[rank]
            away = [b for b in range(BUCKETS) if b % count != holder]
            if not away:
                continue
            doing = f"sending its read of {self._table(rank)}"
            self._send_later(holder, ("give", (rank, away)))
            for bucket in away:
                part = await self._take(holder, "part", doing)
                # waited for: the next part is taken once this one has left
                await self._sender.call(
                    partial(self._send, bucket % count, ("keep", (rank, bucket, part)))
                )
                del part
        joining = list(range(min(count, BUCKETS)))
        for worker in joining:
            mine = [b for b in range(BUCKETS) if b % count == worker]
            self._send_later(worker, ("join", replace(task, buckets=mine)))
        while joining:
            worker = await self._in_thread(self._ready, joining)
            joining.remove(worker)
            yield await self._take(worker, "joined", "joining pass 1's key buckets")

    def _asked(self, message: Any) -> str:
        """What a message to a worker asks, as the error of a failed send names it."""
        kind, rank = _asking(message)
        if rank is None:
            return f"a {kind}"
        if kind == "scan":
            return f"the read of {self._table(rank)}"
        if kind == "header":
            return f"the request for its read of {self._table(rank)}"
        if kind == "give":
            return f"the request for buckets of its read of {self._table(rank)}"
        return f"a bucket of the read of {self._table(rank)}"

    def _doing(self, kind: str, rank: int | None, many: int = 1) -> str:
        """What a worker does while it answers a message ``kind`` (``many`` of them)."""
        if kind == "scan" and rank is not None:
            return f"reading {self._table(rank)}"
        if kind in ("header", "give") and rank is not None:
            return f"sending its read of {self._table(rank)}"
        if kind == "keep" and rank is not None:
            buckets = "a bucket" if many == 1 else f"{many} buckets"
            return f"taking in {buckets} of the read of {self._table(rank)}"
        if kind == "join":
            return "joining pass 1's key buckets"
        return "building a chunk" if many == 1 else f"building {many} chunks"

    def _unanswered(self, worker: int, doing: str) -> str:
        """What ``worker`` was doing when it stopped (``doing`` if nothing is known). It
        works through what it is sent in order and answers all but the buckets it
        keeps, so it stopped at one of the buckets sent after its last answer or at
        the first message after them that it answers; each is named (the same kind
        of one table once, counted)."""
        runs: list[list[Any]] = []
        for kind, rank, _ in list(self._unfinished[worker]):
            if runs and runs[-1][:2] == [kind, rank]:
                runs[-1][2] += 1
            else:
                runs.append([kind, rank, 1])
            if kind != "keep":
                break
        return "while " + (", or ".join(self._doing(*run) for run in runs) or doing)

    def _answered(self, worker: int) -> None:
        """One answer of ``worker`` came: the buckets it was sent before the message
        answered were taken in; that message's answers count down."""
        unfinished = self._unfinished[worker]
        while unfinished and unfinished[0][0] == "keep":
            unfinished.popleft()
        if unfinished:
            unfinished[0][2] -= 1
            if unfinished[0][2] <= 0:
                unfinished.popleft()

    def _table(self, rank: int) -> str:
        """Member table ``rank`` as errors name it (its source and table: no settings)."""
        member = self.loaded.settings.model.customer.members[rank]
        return f"member table '{member.table}' of source '{member.source}'"

    def _send_later(self, worker: int, message: Any) -> None:
        assert self._sender is not None
        self._sender.post(partial(self._send, worker, message))

    def _ready(self, workers: list[int]) -> int:
        """The first of ``workers`` with something to read (or whose pipe closed)."""
        pipes = [self.pipes[w] for w in workers]
        ready = multiprocessing.connection.wait(pipes)
        return workers[pipes.index(ready[0])]  # type: ignore[arg-type]

    async def build(
        self, spec: ChunkSpec, plans: AsyncIterator[list[Group]]
    ) -> AsyncIterator[BuiltChunk]:
        await self._started()
        assert self._sender is not None
        waiting: deque[int] = deque()
        turn = 0
        # with each chunk (a few hundred bytes): no message of its own to answer
        encoding = self.encoding if spec.unmasked else None
        async for groups in plans:
            # sent from a thread of its own, not awaited: a send larger than the
            # socket's buffer waits for the worker to read, which it does only after
            # sending its last chunk back, which must be read meanwhile (at most
            # ``count * IN_FLIGHT`` chunks' keys wait here)
            self._sender.post(partial(self._send, turn, ("chunk", (spec, groups, encoding))))
            waiting.append(turn)
            turn = (turn + 1) % self.count
            if len(waiting) >= self.count * IN_FLIGHT:
                yield await self._take(waiting.popleft())
        while waiting:
            yield await self._take(waiting.popleft())
        self.finished = True

    async def _take(
        self, worker: int, expected: str = "chunk", doing: str = "building a chunk"
    ) -> Any:
        """What ``worker`` answers next, which must be ``expected``; ``doing`` (what it
        was asked) goes into the error if it stopped, failed or answered otherwise."""
        pipe = self.pipes[worker]
        try:
            kind, payload = await self._in_thread(pipe.recv)
        except (EOFError, OSError):
            raise await self._stopped(worker, doing) from None
        if kind == "raise":  # custview's own error, as the in-process path raises it
            raise payload
        if kind == "error":  # an unexpected error: its redacted text and traceback
            described, trace, (at, rank) = payload
            raise WorkerFailed(
                f"export worker {worker} failed while {self._doing(at, rank)}: {described}\n"
                "This is not a source failure but a bug in custview or a connector plugin: "
                f"please report it with this message. The worker's traceback:\n{trace}"
            )
        if kind != expected:  # a real check: an assert would vanish under python -O
            raise WorkerFailed(
                f"export worker {worker} answered {kind!r} while {doing} "
                f"(expected {expected!r}): the exporter and its workers are out of step"
            )
        self._answered(worker)
        return payload

    def _send(self, worker: int, message: Any) -> None:
        kind, rank = _asking(message)
        answers = len(message[1][1]) if kind == "give" else 1
        unfinished = self._unfinished[worker]
        unfinished.append([kind, rank, answers])  # first: its answer may come before
        # send returns
        try:
            self.pipes[worker].send(message)
        except Exception as exc:  # the pending recv ends when the worker does
            unfinished.pop()  # never reached it (sends to a worker are made one by one)
            why = describe_error(exc, self._secrets)
            # the first that failed: the rest failed because the worker was gone
            self._unsent.setdefault(
                worker, f"{self._asked(message)} could not be sent to it: {why}"
            )
            self.processes[worker].terminate()

    async def _stopped(self, worker: int, doing: str) -> WorkerFailed:
        process = self.processes[worker]
        await self._in_thread(process.join, 1)
        unsent = self._unsent.get(worker)
        return WorkerFailed(
            f"export worker {worker} stopped (exit code {process.exitcode}) "
            + self._unanswered(worker, doing)
            + (f"; {unsent}" if unsent else "")
        )

    async def aclose(self) -> None:
        if self._thread is None or self._sender is None:  # never started
            return
        try:
            if self.finished:  # every chunk came back: they close their pools and stop
                await self._in_thread(self._stop)
            else:  # cancelled or failed: stop them now, mid-chunk (a recv in the
                # thread ends when its worker does)
                for process in list(self.processes):
                    if process.is_alive():
                        process.terminate()
        finally:  # even if cancelled meanwhile: reaped and the pipes closed in the
            # thread, after any recv still under way (and after the start: none is
            # started after this) and any send; then both threads end
            self._sender.stop()
            try:
                closing = self._thread.call(partial(self._close, self._sender))
            finally:
                self._thread.stop()
        # shielded: a cancel while a recv still holds the thread must not cancel the
        # job's future, or the thread would skip the job (never reaped nor closed)
        await asyncio.shield(closing)

    def _stop(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                continue
        for pipe in self.pipes:
            try:
                kind, payload = _recv_within(pipe, 10.0)
            except (EOFError, OSError, TimeoutError):
                continue
            if kind == "usage":
                self.usage.append(payload)
        _terminate(self.processes, 5.0)

    def _close(self, sender: SerialThread) -> None:
        _terminate(self.processes)
        sender.join()  # its send to a worker ended has failed
        for pipe in self.pipes:
            pipe.close()
        for process in self.processes:
            process.release()


HASH_PROBE = ("custview", "hash probe")
"""Hashed by each worker with its read of a table: pass 1's join pairs the keys of
tables read by different workers by their hashes, so they must all hash alike."""


def _asking(message: tuple[str, Any]) -> tuple[str, int | None]:
    """A message to a worker as its kind and the member table (rank) it is about."""
    kind, payload = message
    if kind in ("scan", "header"):
        return kind, payload
    if kind in ("give", "keep"):
        return kind, payload[0]
    return kind, None


def _check_hashes(probes: dict[int, int]) -> None:
    """Raises unless every worker (``probes``: worker -> its hash of
    :data:`HASH_PROBE`) hashes alike: a join of tables hashed with different
    seeds would silently split customers."""
    if len(set(probes.values())) > 1:
        seen = ", ".join(f"worker {w}: {h}" for w, h in sorted(probes.items()))
        raise WorkerFailed(
            f"export workers hash keys differently ({seen}): pass 1's join needs "
            "every member table read by processes with one hash seed"
        )


def _context() -> multiprocessing.context.ForkServerContext:
    """The fork server, with the workers' imports loaded once: each export's workers
    are forked from it (a single-threaded process) ready to build, instead of each
    starting an interpreter and importing the settings' dependencies (~1 CPU s)."""
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, multiprocessing.context.ForkServerContext)
    context.set_forkserver_preload(list(PRELOAD))
    return context


PRELOAD = (
    "gateway.export_workers",
    "gateway.formats",
    "gateway.settings",
    "resolvers.export_chunks",
)
"""What the fork server imports (not the exporter's ``__main__``, which a worker
does not need and which may not be safe to import twice: see :func:`_main_hidden`)."""

_HIDING = threading.Lock()


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Workers started meanwhile do not run the exporter's ``__main__`` again.

    multiprocessing has each new process (the fork server's children too) run the
    parent's main script or module first, as spawn must to find functions defined
    there (``multiprocessing.spawn.get_preparation_data`` reads ``__main__``'s
    ``__spec__`` and ``__file__``). A worker's target lives in this module, so that
    run is only cost or harm: the ``custview`` console script would import the
    CLI (rich, starlette) into every worker, and a caller's script without an
    ``if __name__ == "__main__"`` guard would run its export again in each (which
    fails there). While this holds, ``__main__`` shows neither; the lock keeps two
    exports' starts from restoring each other's hidden values."""
    main = sys.modules["__main__"]
    with _HIDING:
        spec = main.__dict__.get("__spec__")
        missing = object()
        path = main.__dict__.pop("__file__", missing)
        main.__spec__ = None
        try:
            yield
        finally:
            main.__spec__ = spec
            if path is not missing:
                main.__file__ = path


def _recv_within(pipe: Connection, seconds: float) -> Any:
    if not pipe.poll(seconds):
        raise TimeoutError
    return pipe.recv()


def _terminate(processes: list[WorkerProcess], grace: float = 0.0) -> None:
    """Stops the workers still running (after ``grace`` seconds) and reaps them all
    (no zombies, no orphans)."""
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()


def _unexpected(exc: BaseException) -> tuple[str, str]:
    """An error other than custview's own as a worker reports it: its type and first
    line without the hidden secrets (:func:`gateway.unexpected.describe`), and its
    traceback with every error it was raised from or while handling, each its type
    and first line, redacted, and where it was raised (code lines, none of the
    values a message or a local may hold: :func:`gateway.unexpected.redacted_traceback`)."""
    from gateway.unexpected import describe, redacted_traceback

    return describe(exc), redacted_traceback(exc)


def _encoding(fmt: str | None, columns: Sequence[Column]) -> tuple[str, tuple[Column, ...]] | None:
    from gateway.formats import CHUNKED

    return (fmt, tuple(columns)) if fmt in CHUNKED else None


def factory(
    loaded: LoadedSettings,
) -> Callable[[str | None, Sequence[Column]], ExportWorkers] | None:
    """Workers for each export (its format and columns) as ``exports.workers`` says;
    None: exports run in process."""
    count = loaded.settings.exports.workers
    if count == 0:
        return None
    return lambda fmt, columns: ExportWorkers(loaded, count, fmt, columns)


# -- the worker process ----------------------------------------------------------


def serve(pipe: Connection, path: Path, settings: Any, connectors: Any) -> None:
    """A worker's main: build each chunk sent until the pipe says stop or closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from connectors import CustviewError
    from gateway.formats import encoder_for
    from gateway.logs import configure_logging
    from gateway.settings import LoadedSettings
    from gateway.unexpected import hide
    from resolvers.export import Encoded
    from resolvers.export_chunks import ChunkMaker
    from resolvers.heap import WALK_THRESHOLDS
    from resolvers.view import Federation

    loaded = LoadedSettings(path, settings, connectors)
    # the exporting process's log policy: a worker's lines (a connector's, the
    # cache's warnings) in its format, and its errors, without its secrets
    hide(loaded.secrets())
    configure_logging(settings.logging)
    federation = Federation(settings.model, loaded.create_connectors())
    maker = ChunkMaker(federation)
    loop = asyncio.new_event_loop()
    # a worker's long-lived objects (imports, settings, connectors) are never
    # garbage: keep full collections from walking them for every chunk's rows; and
    # collect the young generation as rarely as an export's walk does (resolvers/heap.py)
    gc.freeze()
    gc.set_threshold(*WALK_THRESHOLDS)
    young = gc.get_stats()[0]["collections"]
    stopped = False
    waited = 0.0
    encoders: dict[tuple[str, tuple[Column, ...]], Encoder] = {}
    """The export's encoder, once a chunk comes to be encoded (its format and columns)."""
    try:
        while True:
            began = time.perf_counter()
            try:
                message = pipe.recv()
            except (EOFError, OSError):  # the exporter is gone
                return
            waited += time.perf_counter() - began
            if message is None:
                stopped = True
                return
            kind, payload = message
            answer: tuple[str, Any]
            try:
                if kind == "header":
                    answer = ("part", maker.header(payload))
                elif kind == "give":
                    for part in maker.give(*payload):
                        pipe.send(("part", part))
                    continue
                elif kind == "keep":
                    maker.keep(*payload)
                    continue
                elif kind == "join":
                    answer = ("joined", loop.run_until_complete(maker.join(payload)))
                elif kind == "scan":
                    failed = loop.run_until_complete(maker.scan(payload))
                    answer = ("scanned", (failed, hash(HASH_PROBE)))
                else:
                    spec, groups, encoding = payload
                    done = loop.run_until_complete(maker.make(spec, groups))
                    if encoding is not None and done.built:
                        encoder = encoders.get(encoding)
                        if encoder is None:
                            encoder = encoders[encoding] = encoder_for(*encoding)
                        done.encoded = Encoded(encoding[0], encoder.rows(done.rows), len(done.rows))
                        done.rows = []
                    answer = ("chunk", done)
                    del done, groups
            except CustviewError as exc:
                pipe.send(("raise", exc))
                return
            except Exception as exc:  # named with what it was doing (a keep has no answer)
                pipe.send(("error", (*_unexpected(exc), _asking(message))))
                return
            pipe.send(answer)
            del answer, payload
    finally:
        maker.close()
        loop.run_until_complete(federation.aclose())
        loop.close()
        if stopped:
            collected = gc.get_stats()[0]["collections"] - young
            pipe.send(
                ("usage", {**_usage(), "waited_seconds": waited, "young_collections": collected})
            )


def _usage() -> dict[str, float]:
    """CPU seconds, peak RSS and, of the memory now, what is this worker's alone
    (``Pss``: shared pages divided among their holders; ``Private``: no one else's):
    a worker forked from the fork server shares its imports' pages."""
    found = {"cpu_seconds": time.process_time(), "peak_rss_kb": 0.0, "pss_kb": 0.0}
    found["private_kb"] = 0.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                found["peak_rss_kb"] = float(line.split()[1])
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == "Pss":
                found["pss_kb"] = float(rest.split()[0])
            elif name in ("Private_Clean", "Private_Dirty"):
                found["private_kb"] += float(rest.split()[0])
    except OSError:
        pass
    return found
