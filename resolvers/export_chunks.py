"""A whole export's customers built elsewhere (other processes), a chunk at a time.

Pass 2 of the walk (:mod:`resolvers.walk`: reading a chunk's records by key,
golden values, metrics, rows) is most of an export's CPU and needs nothing of
pass 1 but each customer's (member rank, record key) list. So the exporting
process runs pass 1 (the member tables read by the builders, a table each at a
time, :func:`resolvers.walk.scan_member`; their key buckets joined by the
builders, a share each, :mod:`resolvers.walk_join`; the builders' forests merged
here), hands the chunks to
:class:`ChunkBuilders` (the gateway runs them in worker processes) and takes the
built chunks back in order. What governs the export stays here: the audit entry
of a chunk is written by the exporting process before the chunk is yielded, and
masking is applied here; the row rules are applied by the builder to the golden
values it built, with the same :meth:`Grant.admits`, before the rows are built
(as in process). When the grant masks none of the exported columns (decided once
for the export, from the same column actions the masking reads), a builder may
send a chunk encoded in the export's format (:class:`resolvers.export.Encoded`)
instead of its rows: the audit entry needs only the chunk's customer ids and
error codes, which come with it.

A failing source gives what the in-process path gives: raised (HTTP) as the
same error, or collected into ``failures`` (CLI) in the same order.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol

from connectors import ConnectorError
from resolvers import export, walk
from resolvers.export import Chunk, Encoded, Failures, Row, audited_name, builder, leaving
from resolvers.golden_chunk import ChunkSurvivorship
from resolvers.heap import WALK_THRESHOLDS, long_lived_frozen
from resolvers.identity import KeyNode
from resolvers.policy import Grant, RowRule
from resolvers.view import Federation
from resolvers.walk_join import Forest, JoinTask, forest, join_bucket

if TYPE_CHECKING:
    from resolvers.audit import Auditor


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    """What every chunk of one export is built as."""

    table: str
    names: tuple[str, ...]
    rules: tuple[tuple[RowRule, ...], ...] | None
    """The caller's row rules (:attr:`Grant.rows`); None admits every customer."""
    collect: bool
    """Source failures are collected (the CLI) rather than raised (HTTP)."""
    prior: tuple[ConnectorError, ...] = ()
    """Pass 1's failures (a chunk's view starts with them, as in process)."""
    unmasked: bool = False
    """The grant masks none of the columns: the exporter would send the rows as they
    are built, so a builder may send them encoded (:attr:`BuiltChunk.encoded`)."""


@dataclass(slots=True)
class BuiltChunk:
    """One chunk as built elsewhere: the rows before masking, who they are about,
    and what went wrong."""

    built: bool = False
    """Whether any customer was built (else the chunk is not exported at all)."""
    ids: list[str] = field(default_factory=list)
    """The customers the row rules admitted, in order (for the audit)."""
    rows: list[Row] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    """The error codes of the chunk's view (pass 1's included), for the audit."""
    failed: list[ConnectorError] = field(default_factory=list)
    """Failures collected, in the order the in-process path adds them."""
    raised: ConnectorError | None = None
    """The error the in-process path would have raised (``collect`` false)."""
    encoded: Encoded | None = None
    """The rows in the export's format, in place of ``rows`` (left empty), when the
    builder encoded them (only for a spec that is ``unmasked``)."""


class ChunkBuilders(Protocol):
    """Builds a whole export's chunks somewhere else, handing them back in order.

    ``start`` is called first, ``scan`` once (pass 1's reads of the member tables,
    split among the builders), ``join`` once (their buckets, split among the
    builders; the exporter merges what they joined), ``build`` once, and
    ``aclose`` always, last (also when the export is cancelled or fails: whatever
    builds chunks stops then)."""

    def start(self) -> None: ...

    def scan(self, ranks: list[int], stop_on_error: bool) -> AsyncGenerator[walk.MemberScan, None]:
        """Pass 1's reads of these member tables (:func:`resolvers.walk.scan_member`),
        made elsewhere: each one's :meth:`~resolvers.walk.MemberRead.header`, in the
        order asked. With ``stop_on_error`` (the walk raises at the first failed
        read), once a read failed and those before it did not, only its header
        (with the error) comes, and no table after it is read any further."""
        ...

    def join(self, task: JoinTask) -> AsyncIterator[Forest]:
        """The buckets of the reads ``task`` names joined by the builders, each taking
        some buckets (:meth:`ChunkMaker.join`, after :meth:`ChunkMaker.give` and
        :meth:`ChunkMaker.keep` have brought it every read's part of them); each
        builder's forest as it is done."""
        ...

    def build(
        self, spec: ChunkSpec, plans: AsyncIterator[list[walk.Group]]
    ) -> AsyncIterator[BuiltChunk]:
        """Each plan's chunk built, in order; a builder may encode a chunk of a spec
        that is ``unmasked`` (:attr:`BuiltChunk.encoded`), never one of another."""
        ...

    async def aclose(self) -> None: ...


class _Recorded(Failures):
    """Failures, with every addition kept in order (to replay in the exporter)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[ConnectorError] = []

    def add(self, error: ConnectorError) -> None:
        self.seen.append(error)
        super().add(error)


class ChunkMaker:
    """The builder's side: one chunk of groups to rows, as the in-process path does."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation
        self.survivorship = ChunkSurvivorship(federation.survivorship)
        self.held: dict[int, walk.MemberRead] = {}
        self.kept: dict[int, walk._Edges] = {}
        """Member rank -> the buckets of its read that another builder sent to be
        joined here."""
        self._spool: BinaryIO | None = None
        """The file every held read's keys wait in (one open file, however many
        tables are held), emptied once they are joined."""

    async def scan(self, rank: int) -> bool:
        """Reads member table ``rank`` for pass 1, held here until its buckets are
        given away (:meth:`give`) or joined here (:meth:`join`); True if the read
        failed."""
        if self._spool is None:
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (see close)
        read = self.held[rank] = await walk.scan_member(self.federation, rank, self._spool)
        return read.error is not None

    def header(self, rank: int) -> walk.MemberScan:
        """The keys of the read of member table ``rank`` (or why it failed)."""
        return self.held[rank].header()

    def give(self, rank: int, buckets: list[int]) -> Iterator[walk.ScannedBucket]:
        """These buckets of the read of ``rank``, for another builder to join (then
        dropped here)."""
        read = self.held[rank]
        for bucket in buckets:
            yield read.bucket(bucket)

    def keep(self, rank: int, bucket: int, part: walk.ScannedBucket) -> None:
        """Takes in a bucket of a read held by another builder, to join it here."""
        if self._spool is None:
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (see close)
        edges = self.kept.get(rank)
        if edges is None:
            edges = self.kept[rank] = walk._Edges(self._spool)
        edges.add_bucket(bucket, part, 0)

    async def join(self, task: JoinTask) -> Forest:
        """Joins ``task``'s buckets of every read it names (held here or kept),
        a bucket at a time; the reads are dropped once joined."""
        parent = array(walk.NUMBER, range(task.total))
        for bucket in task.buckets:
            hashes, numbers = array("q"), array(walk.NUMBER)
            keys: list[KeyNode] = []
            starts: list[int] = []
            for rank, offset in task.members:
                read = self.held.get(rank)
                edges = read.edges if read is not None else self.kept[rank]
                starts.append(len(hashes))
                hashes.extend(edges.hashes[bucket])
                local = edges.numbers[bucket]
                numbers.extend(array(walk.NUMBER, map(offset.__add__, local)) if offset else local)
                keys += edges.keys(bucket)
                edges.hashes[bucket], edges.numbers[bucket] = array("q"), array(walk.NUMBER)
            await join_bucket(hashes, numbers, keys, starts, parent, task.fanout, task.detached)
            del hashes, numbers, keys
        self.held.clear()
        self.kept.clear()
        if self._spool is not None:
            self._spool.truncate(0)
        return forest(parent)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    async def make(self, spec: ChunkSpec, groups: list[walk.Group]) -> BuiltChunk:
        federation = self.federation
        view = federation.request()
        view.errors.extend(spec.prior)
        failures = _Recorded() if spec.collect else None
        done = BuiltChunk()
        try:
            customers = await walk.build(federation, self.survivorship, groups, view, failures)
            if customers:
                done.built = True
                if spec.rules is not None:
                    grant = Grant((), {}, {}, spec.rules)
                    customers = [c for c in customers if grant.admits(c.golden.values)]
                make = builder(federation.model, spec.table, spec.names, failures)
                done.rows = await make(view, customers)
                done.ids = [c.id for c in customers]
        except ConnectorError as exc:
            done.raised = exc
        done.codes = [e.code for e in view.errors]
        if failures is not None:
            done.failed = failures.seen
        return done


async def farmed_rows(
    federation: Federation,
    table: str,
    names: Sequence[str],
    builders: ChunkBuilders,
    *,
    failures: Failures | None,
    grant: Grant | None,
    auditor: Auditor | None,
    masked: list[tuple[int, str]],
) -> AsyncIterator[Chunk]:
    """:func:`resolvers.export.rows` of every customer, pass 2 built by ``builders``."""
    builders.start()
    try:
        # as the in-process walk (resolvers/heap.py)
        with long_lived_frozen(thresholds=WALK_THRESHOLDS):
            found = await walk.identities(federation, failures, builders)
            spec = ChunkSpec(
                table,
                tuple(names),
                grant.rows if grant is not None else None,
                failures is not None,
                tuple(found.errors),
                unmasked=not masked,
            )
            fields = [audited_name(federation.model, table, n) for n in names]
            salt = grant.salt if grant else ""
            plan = walk.plan(federation, found, export.CHUNK)
            async for done in builders.build(spec, plan):
                if done.raised is not None:
                    raise done.raised
                if failures is not None:
                    for error in done.failed:
                        failures.add(error)
                if done.built:
                    out = done.rows if done.encoded is None else done.encoded
                    yield await leaving(out, done.ids, done.codes, masked, salt, auditor, fields)
    finally:
        await builders.aclose()
