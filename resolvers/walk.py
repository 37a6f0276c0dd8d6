"""Every customer in listing order, for whole-view exports: two passes over the members.

Listing customers page by page stitches a chunk of seed records by asking the
other member tables for their keys, round after round; walking everyone that
way stitches each customer once per member record and costs a round trip per
key column per round. An export of every customer instead:

1. **identities**: reads each member table once (key, identity and region
   columns only), numbers the records in listing order (member rank, then key)
   and joins the records that share a normalised identity key with a
   union-find over those numbers; the lowest number of a customer is its
   listing record. A key held by more than ``identity.max_key_fanout`` records
   of one table joins none of them (as a read-time lookup drops it).
2. **customers**: walks the listing records in order, ``chunk`` customers at a
   time, reads their member records by primary key (one batched lookup per
   member table) and builds the golden values.

Memory is a few machine words per member record (its key, its union-find
parent and chain link, its key hashes until they are joined) plus one chunk,
whatever the width of a record: no customer data is kept. Records are paired
by a 64-bit hash of each key, but joined only when the keys are equal: the
keys wait in a temporary spool file, listed per hash bucket (identifiers only,
deleted when pass 1 ends) and are read back one bucket at a time, so a hash collision
never merges two customers. An export with workers has them read the tables and
join the buckets, a share each, and merges their union-finds here
(:mod:`resolvers.walk_join`: a customer's keys may lie in several buckets).

The closure is complete (not cut at ``identity.max_rounds``). The identity
registry is followed as read-time stitching follows it (unlinked records,
steward links, batch links from ``custview resolve``, not-duplicate marks:
:mod:`resolvers.walk_registry`), so customers, their ids and their records are
those the API gives. A customer holding an erased record (a registry
tombstone) is left out, as everywhere.
"""

from __future__ import annotations

import asyncio
import bisect
import marshal
import tempfile
from array import array
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter, le
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from connectors import ConnectorError, Row, ScanRequest, Sort
from resolvers.golden import GoldenRecord
from resolvers.golden_chunk import ChunkSurvivorship
from resolvers.identity import KeyNode
from resolvers.model import MemberSpec
from resolvers.records import Record
from resolvers.view import CustomerView, Federation, RequestView
from resolvers.walk_join import Forest, JoinTask, join_bucket, merge
from resolvers.walk_registry import Locate, RegistryLinks

if TYPE_CHECKING:
    from resolvers.export import Failures

BUCKETS = 32
"""Key hashes are joined bucket by bucket, so one bucket's index is in memory at a time."""
YIELD_EVERY = 50_000
"""CPU-bound loops give the event loop a turn this often (other requests, cancellation)."""
NUMBER = "i"
"""Record numbers are 32-bit: an export walks at most 2**31 - 1 member records."""
KEY_HASH: Callable[[KeyNode], int] = hash
"""How pass 1 hashes an identity key (a test injects a weak one to force collisions)."""
SCAN_BATCH = 1_024
"""Rows of one member whose keys pass 1 reads together (a column at a time)."""
SPOOL_EVERY = 1_024
"""Keys kept in memory per bucket before they are appended to the spool file (a
key waiting is ~150 bytes: 4,096 a bucket held ~20 MB of pass 1's peak)."""


@dataclass(slots=True)
class _Member:
    spec: MemberSpec
    rank: int
    offset: int = 0
    keys: array[int] | list[Any] = field(default_factory=lambda: array("q"))


@dataclass(slots=True)
class Identities:
    """Pass 1: the member records, numbered in listing order, joined into customers."""

    members: list[_Member]
    parent: array[int]
    """Record number -> its customer's listing record (its lowest number)."""
    errors: list[ConnectorError]


class _Edges:
    """(key hash, record number) pairs, bucketed by hash, with where each member starts;
    the keys themselves, in the same order, wait in one spool file (a segment of
    marshalled lists at a time, listed per bucket) until the join checks that records
    sharing a hash share the key.

    One file, not one per bucket: a worker holds each member table it read until the
    exporter takes it, and ~30 tables of 32 files each would near the open-files limit.
    ``spool`` shares a file among several reads (their segments apart); without it,
    the edges open their own and close it in :meth:`close`."""

    def __init__(self, spool: BinaryIO | None = None) -> None:
        self.hashes = [array("q") for _ in range(BUCKETS)]
        self.numbers = [array(NUMBER) for _ in range(BUCKETS)]
        self.starts: list[list[int]] = [[] for _ in range(BUCKETS)]
        self.owned = spool is None
        self.file: BinaryIO = tempfile.TemporaryFile() if spool is None else spool  # noqa: SIM115 (see close)
        self.segments: list[list[tuple[int, int]]] = [[] for _ in range(BUCKETS)]
        """Bucket -> the (offset, length) of its spooled keys in the file, in order."""
        self.pending: list[list[KeyNode]] = [[] for _ in range(BUCKETS)]
        self.marks: list[tuple[list[int], int]] = []
        """Per member begun: each bucket's number of segments and the file's end."""

    def begin_member(self) -> None:
        for bucket in range(BUCKETS):
            self.starts[bucket].append(len(self.hashes[bucket]))
            self.spool(bucket)
        self.marks.append(([len(s) for s in self.segments], self._end()))

    def forget_member(self) -> None:
        """Drops what the member begun last gave (its read failed)."""
        counts, end = self.marks[-1]
        for bucket in range(BUCKETS):
            del self.hashes[bucket][self.starts[bucket][-1] :]
            del self.numbers[bucket][self.starts[bucket][-1] :]
            self.pending[bucket].clear()
            del self.segments[bucket][counts[bucket] :]
        if self.owned:
            self.file.truncate(end)

    def _end(self) -> int:
        return self.file.seek(0, 2)

    def _write(self, bucket: int, data: bytes) -> None:
        if data:
            self.segments[bucket].append((self._end(), len(data)))
            self.file.write(data)

    def keys(self, bucket: int) -> list[KeyNode]:
        """The keys of one bucket's pairs, in order (read back once, then dropped).
        Each segment is one marshalled list, read as bytes and then loaded (loading
        from the file itself reads it item by item: ~6x the CPU)."""
        self.spool(bucket)
        spool = self.file
        found: list[KeyNode] = []
        for offset, length in self.segments[bucket]:
            spool.seek(offset)
            found += marshal.loads(spool.read(length))
        self.segments[bucket] = []
        return found

    def spooled(self, bucket: int) -> tuple[bytes, bytes]:
        """The keys of one bucket's pairs as spooled (marshalled lists, in order), and
        the size of each list (``array("q")`` bytes)."""
        self.spool(bucket)
        spool = self.file
        found = []
        for offset, length in self.segments[bucket]:
            spool.seek(offset)
            found.append(spool.read(length))
        return b"".join(found), array("q", [n for _, n in self.segments[bucket]]).tobytes()

    def add_bucket(self, bucket: int, part: ScannedBucket, offset: int) -> None:
        """Appends one bucket of a member read elsewhere (:func:`scan_member`), its
        record numbers moved past the members before it (``offset``). A part that
        does not add up (its lists' sizes against its spooled bytes, its hashes
        against its record numbers) is refused before anything is taken in: a
        mismatch would drop or misread keys without an error."""
        hashes, local, sizes = array("q"), array(NUMBER), array("q")
        hashes.frombytes(part.hashes)
        local.frombytes(part.numbers)
        sizes.frombytes(part.sizes)
        if sum(sizes) != len(part.spooled) or len(hashes) != len(local):
            raise ValueError(
                f"bucket {bucket} of a member read elsewhere does not add up: "
                f"{len(hashes)} key hashes for {len(local)} records, "
                f"{len(part.spooled)} bytes of keys for lists of {sum(sizes)}"
            )
        self.hashes[bucket].extend(hashes)
        self.numbers[bucket].extend(array(NUMBER, map(offset.__add__, local)) if offset else local)
        self.spool(bucket)
        offset = self._end()
        self.file.write(part.spooled)
        segments = self.segments[bucket]
        for size in sizes:
            segments.append((offset, size))
            offset += size

    def spool(self, bucket: int) -> None:
        pending = self.pending[bucket]
        if pending:
            self._write(bucket, marshal.dumps(pending))
            pending.clear()

    def close(self) -> None:
        if self.owned:
            self.file.close()


@dataclass(slots=True)
class MemberScan:
    """What the walk needs of one member table read elsewhere (a worker process), sent
    as plain bytes: its keys in listing order, or the error that stopped the read. Its
    buckets (:class:`ScannedBucket`) go to whichever process joins them."""

    rank: int
    keys: bytes | list[Any] = b""
    """Machine integers as ``array("q")`` bytes, else the Python values."""
    error: ConnectorError | None = None


@dataclass(slots=True)
class ScannedBucket:
    """One bucket of a member read elsewhere: its (key hash, record number counted
    from 0) pairs, and their keys as spooled (marshalled lists, in the same order)
    with each list's size."""

    hashes: bytes
    numbers: bytes
    spooled: bytes
    sizes: bytes
    """Each marshalled list's size in ``spooled``, as ``array("q")`` bytes."""


class MemberRead:
    """One member table's pass 1 read, held where it was made (:func:`scan_member`)
    until its :meth:`header` and its buckets are asked for."""

    def __init__(self, member: _Member, edges: _Edges, error: ConnectorError | None) -> None:
        self.member = member
        self.edges = edges
        self.error = error

    def header(self) -> MemberScan:
        keys = self.member.keys
        if self.error is not None:
            return MemberScan(self.member.rank, error=self.error)
        return MemberScan(self.member.rank, keys.tobytes() if isinstance(keys, array) else keys)

    def bucket(self, bucket: int) -> ScannedBucket:
        """One bucket of the read as another process takes it in (then dropped here)."""
        edges = self.edges
        part = ScannedBucket(
            edges.hashes[bucket].tobytes(), edges.numbers[bucket].tobytes(), *edges.spooled(bucket)
        )
        edges.hashes[bucket], edges.numbers[bucket] = array("q"), array(NUMBER)
        edges.segments[bucket] = []
        return part

    def close(self) -> None:
        self.edges.close()


async def scan_member(
    federation: Federation, rank: int, spool: BinaryIO | None = None
) -> MemberRead:
    """Pass 1's read of one member table (``rank``), to be joined by another process
    (:func:`identities` with ``scans``). Key hashes are this process's: every member
    of one walk must be read by processes that hash alike (forked from one parent).
    ``spool``: a file the read's keys wait in beside other reads' (else its own)."""
    member = _Member(federation.model.customer.members[rank], rank)
    edges = _Edges(spool)
    edges.begin_member()
    try:
        await _scan_keys(federation, member, edges)
    except ConnectorError as exc:
        edges.close()
        return MemberRead(member, edges, exc)
    except BaseException:
        edges.close()
        raise
    return MemberRead(member, edges, None)


class Elsewhere(Protocol):
    """Pass 1 made by other processes (:class:`resolvers.export_chunks.ChunkBuilders`):
    every member table read there, its keys sent here, its buckets joined there."""

    def scan(self, ranks: list[int], stop_on_error: bool) -> AsyncGenerator[MemberScan, None]:
        """Member ranks, whether to stop at the first failed read -> the
        :meth:`MemberRead.header` of each, in that order (when stopping, only the
        failed read's)."""
        ...

    def join(self, task: JoinTask) -> AsyncIterator[Forest]:
        """The reads' buckets joined (``task`` without its buckets: the joiners share
        them out), each joiner's forest as it is done."""
        ...


async def _scanned(member: _Member, headers: AsyncGenerator[MemberScan, None]) -> int:
    """Takes a member's read made elsewhere into this walk; returns its number of records."""
    scan = await anext(headers)
    assert isinstance(scan, MemberScan), scan
    # a read that stops the walk comes in place of the reads before it (read fine)
    assert scan.rank == member.rank or scan.error is not None, scan
    if scan.error is not None:
        raise scan.error
    if isinstance(scan.keys, bytes):
        keys = array("q")
        keys.frombytes(scan.keys)
        member.keys = keys
    else:
        member.keys = scan.keys
    return len(member.keys)


async def _scan_keys(federation: Federation, member: _Member, edges: _Edges) -> int:
    """Reads one member table's identity columns; returns its number of records.
    Rows are taken ``SCAN_BATCH`` at a time and their keys read a column at a time."""
    spec = member.spec
    connector = federation.connectors[spec.source]
    read = _KeyBatch(federation.stitcher.key_columns(spec), member, edges)
    identity = [c for columns in spec.identity.values() for c in columns]
    columns = list(dict.fromkeys([spec.key, *identity, *([spec.region] if spec.region else [])]))
    caps = connector.capabilities_for(spec.table)
    order = [Sort(spec.key)] if caps.can_sort(spec.key) else []
    rows: list[Row] = []
    async for row in connector.scan(ScanRequest(spec.table, columns, order_by=order)):
        rows.append(row)
        if len(rows) >= SCAN_BATCH:
            read.add(rows)
            rows = []
    if rows:
        read.add(rows)
    if not read.in_order:
        _sort_member(member, edges)
    return len(member.keys)


class _KeyBatch:
    """Pass 1's reading of one member's rows, a batch at a time: their record keys
    (machine integers while they all are), whether those come in listing order, and
    their identity keys' (hash, record number) pairs and keys, per bucket."""

    def __init__(
        self,
        key_columns: Callable[[list[Row]], list[tuple[str, list[Any]]]],
        member: _Member,
        edges: _Edges,
    ) -> None:
        self.key_columns = key_columns
        self.member = member
        self.edges = edges
        self.number = member.offset
        self.in_order = True
        self.last: Any = None
        """The last record key's :func:`_order` position (None before the first)."""

    def add(self, rows: list[Row]) -> None:
        member = self.member
        found = list(map(itemgetter(member.spec.key), rows))
        self._keys(found)
        self._identities(self.key_columns(rows))
        self.number += len(rows)

    def _keys(self, found: list[Any]) -> None:
        """Appends the batch's record keys and checks their order (C-level comparisons
        while they are machine integers)."""
        member = self.member
        keys = member.keys
        if isinstance(keys, array):
            try:
                numbers = array("q", found)
            except (TypeError, OverflowError):  # not a machine integer: keep Python values
                member.keys = [*keys, *found]
            else:
                keys.extend(numbers)
                if self.in_order:
                    last = self.last
                    self.in_order = (last is None or last <= (0, found[0])) and all(
                        map(le, found, islice(found, 1, None))
                    )
                self.last = (0, found[-1])
                return
        else:
            keys.extend(found)
        last, in_order = self.last, self.in_order
        for key in found:
            position = (0, key) if key.__class__ is int else _order(key)
            if last is not None and position < last:
                in_order = False
            last = position
        self.last, self.in_order = last, in_order

    def _identities(self, columns: list[tuple[str, list[Any]]]) -> None:
        """Each identity key of each row (a key a record holds twice once) as a
        (hash, record number) pair and its key, in the key's bucket."""
        edges = self.edges
        hashes, numbers, pending, spool = edges.hashes, edges.numbers, edges.pending, edges.spool
        hash_key = KEY_HASH
        start = self.number
        for at, (key_name, values) in enumerate(columns):
            # the same key name read from an earlier column: a row holding the same
            # key there too holds it once
            earlier = [v for name, v in columns[:at] if name == key_name]
            for number, value in enumerate(values, start):
                if not value:
                    continue
                if earlier and any(e[number - start] == value for e in earlier):
                    continue
                identity_key = (key_name, value)
                key_hash = hash_key(identity_key)
                bucket = key_hash % BUCKETS
                hashes[bucket].append(key_hash)
                numbers[bucket].append(number)
                waiting = pending[bucket]
                waiting.append(identity_key)
                if len(waiting) >= SPOOL_EVERY:
                    spool(bucket)


def _sort_member(member: _Member, edges: _Edges) -> None:
    """Renumbers a member read out of listing order (a source that cannot sort)."""
    keys = list(member.keys)
    ranked = sorted(range(len(keys)), key=lambda i: _order(keys[i]))
    moved = array(NUMBER, [0]) * len(keys)
    for new, old in enumerate(ranked):
        moved[old] = new
    sorted_keys = [keys[i] for i in ranked]
    try:
        member.keys = array("q", sorted_keys)
    except (TypeError, OverflowError):
        member.keys = sorted_keys
    for bucket in range(BUCKETS):
        numbers = edges.numbers[bucket]
        for at in range(edges.starts[bucket][-1], len(numbers)):
            numbers[at] = member.offset + moved[numbers[at] - member.offset]


def _order(key: Any) -> tuple[int, int | str]:
    """:meth:`Record.order` within one member."""
    return (0, key) if isinstance(key, int) else (1, str(key))


def _locator(members: Sequence[_Member]) -> Locate:
    """Record reference -> record number, by binary search in pass 1's keys (each
    member's are in listing order); None when no member table holds the record."""
    by_table = {(m.spec.source, m.spec.table): m for m in members}

    def locate(ref: str) -> int | None:
        source, _, rest = ref.partition("/")
        table, _, key = rest.partition("/")
        member = by_table.get((source, table))
        if member is None or not key:
            return None
        keys = member.keys
        probes: list[int | str] = [int(key), key] if key.lstrip("-").isdigit() else [key]
        for probe in probes:
            if isinstance(keys, array):  # machine integers, in order: C comparisons
                if not isinstance(probe, int):
                    continue
                at = bisect.bisect_left(keys, probe)
            else:
                at = bisect.bisect_left(keys, _order(probe), key=_order)
            if at < len(keys) and str(keys[at]) == key:
                return member.offset + at
        return None

    return locate


async def identities(
    federation: Federation, failures: Failures | None = None, elsewhere: Elsewhere | None = None
) -> Identities:
    """Pass 1 over every member table. A table that cannot be read raises, unless
    ``failures`` collects it: its records are then left out. With ``elsewhere``, the
    tables are read and their buckets joined there (all of them: see
    :func:`scan_member`), the joiners' forests merged here."""
    members = [_Member(m, i) for i, m in enumerate(federation.model.customer.members)]
    errors: list[ConnectorError] = []
    registry = federation.registry
    if registry is not None:
        try:
            await registry.refresh()
        except ConnectorError as exc:  # walk on the decisions already known
            if failures is None:
                raise
            failures.add(exc)
            errors.append(exc)
    edges = _Edges() if elsewhere is None else None
    total = 0
    read = (
        None if elsewhere is None else elsewhere.scan([m.rank for m in members], failures is None)
    )
    fine: list[tuple[int, int]] = []
    """(rank, offset) of each member read."""
    try:
        for member in members:
            member.offset = total
            try:
                if edges is not None:
                    edges.begin_member()
                    total += await _scan_keys(federation, member, edges)
                else:
                    assert read is not None
                    total += await _scanned(member, read)
            except ConnectorError as exc:
                if failures is None:
                    raise
                failures.add(exc)
                errors.append(exc)
                member.keys = array("q")
                if edges is not None:
                    edges.forget_member()
            else:
                fine.append((member.rank, member.offset))
        links = RegistryLinks()
        if registry is not None:
            threshold = federation.stitcher.link_threshold
            links = RegistryLinks.read(registry, threshold, _locator(members))
        parent = array(NUMBER, range(total))
        fanout = federation.model.identity.max_key_fanout
        if edges is not None:
            await _join(edges, parent, fanout, links.detached)
        else:
            assert elsewhere is not None
            task = JoinTask(fine, total, fanout, frozenset(links.detached))
            fresh = True
            async for joined in elsewhere.join(task):
                await merge(parent, joined, fresh)
                fresh = False
    finally:
        if edges is not None:
            edges.close()
        if read is not None:
            await read.aclose()
    await links.join(parent, YIELD_EVERY)
    # union by the lower number keeps parent[x] <= x, so one forward pass flattens
    for number in range(total):
        up = parent[number]
        if up != number:
            parent[number] = parent[up]
        if number % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return Identities(members, parent, errors)


async def _join(edges: _Edges, parent: array[int], fanout: int, detached: Collection[int]) -> None:
    """Union-find over the records sharing a key, bucket by bucket
    (:func:`resolvers.walk_join.join_bucket`)."""
    for bucket in range(BUCKETS):
        keys = edges.keys(bucket)
        hashes, numbers = edges.hashes[bucket], edges.numbers[bucket]
        await join_bucket(hashes, numbers, keys, edges.starts[bucket], parent, fanout, detached)
        # this bucket's pairs are joined: give their memory back
        edges.hashes[bucket], edges.numbers[bucket] = array("q"), array(NUMBER)
        del keys


async def _chains(parent: array[int]) -> array[int]:
    """Record number -> the next record of the same customer (-1 after the last)."""
    after = array(NUMBER, [-1]) * len(parent)
    tail = array(NUMBER, range(len(parent)))
    for number, root in enumerate(parent):
        if root != number:
            after[tail[root]] = number
            tail[root] = number
        if number % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return after


Group = list[tuple[int, Any]]
"""One customer's member records as (member rank, record key), in record-number order:
what pass 2 needs of pass 1 to read and build a customer (anywhere, e.g. another process)."""


async def customers(
    federation: Federation, chunk: int, failures: Failures | None = None
) -> AsyncIterator[tuple[RequestView, list[CustomerView]]]:
    """Every customer, in the ``customers`` list's order, ``chunk`` at a time."""
    found = await identities(federation, failures)
    survivorship = ChunkSurvivorship(federation.survivorship)
    async for groups in plan(federation, found, chunk):
        view = federation.request()
        view.errors.extend(found.errors)
        built = await build(federation, survivorship, groups, view, failures)
        if built:
            yield view, built


async def plan(federation: Federation, found: Identities, chunk: int) -> AsyncIterator[list[Group]]:
    """Pass 2's chunks of customers (``chunk`` listing records at a time, in order),
    each customer as its records' (member rank, key); a customer holding an erased
    record is left out, and a chunk left with none is skipped."""
    parent = found.parent
    after = await _chains(parent)
    members = found.members
    offsets = [m.offset for m in members]
    registry = federation.registry
    erased = registry.is_erased if registry is not None and registry.stats["erasures"] else None
    start = 0
    while start < len(parent):
        groups: list[Group] = []
        number = start
        listed = 0
        while number < len(parent) and listed < chunk:
            if parent[number] == number:
                listed += 1
                numbers = [number]
                while (number_after := after[numbers[-1]]) != -1:
                    numbers.append(number_after)
                if erased is None or not any(erased(_ref(members, offsets, n)) for n in numbers):
                    groups.append(_located(members, offsets, numbers))
            number += 1
        start = number
        if groups:
            yield groups


def _located(members: Sequence[_Member], offsets: list[int], numbers: list[int]) -> Group:
    found: Group = []
    for number in numbers:
        at = bisect.bisect_right(offsets, number) - 1
        found.append((at, members[at].keys[number - offsets[at]]))
    return found


async def build(
    federation: Federation,
    survivorship: ChunkSurvivorship,
    groups: list[Group],
    view: RequestView,
    failures: Failures | None,
) -> list[CustomerView]:
    """The customers of one chunk: their records read by key (a record gone since
    pass 1 is left out, a customer left with none too) and their golden values."""
    kept = [members for members in await _read(federation, groups, view, failures) if members]
    if not kept:
        return []
    built = survivorship.customers(kept)
    return [
        CustomerView(members, GoldenRecord(golden, {}), known_id=customer_id)
        for members, (golden, customer_id) in zip(kept, built, strict=True)
    ]


def _ref(members: Sequence[_Member], offsets: list[int], number: int) -> str:
    """The ``source/table/key`` reference of record ``number`` (from pass 1)."""
    member = members[bisect.bisect_right(offsets, number) - 1]
    return f"{member.spec.source}/{member.spec.table}/{member.keys[number - member.offset]}"


async def _read(
    federation: Federation, groups: list[Group], view: RequestView, failures: Failures | None
) -> list[list[Record]]:
    """The records of each group, in order (a record gone is left out), read by key:
    one batched lookup per table."""
    wanted: dict[int, list[Any]] = {}
    for group in groups:
        for rank, key in group:
            keys = wanted.get(rank)
            if keys is None:
                wanted[rank] = [key]
            else:
                keys.append(key)
    ranks = list(wanted)
    specs = federation.model.customer.members
    results = await asyncio.gather(
        *(_fetch(federation, specs[rank], wanted[rank]) for rank in ranks),
        return_exceptions=True,
    )
    nothing: dict[Any, Record] = {}
    by_key = [nothing] * len(specs)
    for rank, result in zip(ranks, results, strict=True):
        if isinstance(result, ConnectorError):
            if failures is None:
                raise result
            failures.add(result)
            view.errors.append(result)
            continue
        if isinstance(result, BaseException):
            raise result
        spec = specs[rank]
        by_key[rank] = {
            key: Record(spec, rank, rows[0])
            for key, rows in zip(wanted[rank], result, strict=True)
            if rows  # gone since pass 1: left out
        }
    found = [records.get for records in by_key]
    return [
        [record for rank, key in group if (record := found[rank](key)) is not None]
        for group in groups
    ]


async def _fetch(federation: Federation, spec: MemberSpec, keys: list[Any]) -> list[list[Row]]:
    connector = federation.connectors[spec.source]
    return await connector.lookup_many(
        spec.table, spec.key, keys, federation.stitcher.columns(spec)
    )
