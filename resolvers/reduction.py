"""Reducing a customer filter to candidates at the sources, and key-set checks.

**Reduce.** Every predicate a source can evaluate is planned as a filtered
read there (member columns for golden fields, identity-key lookups for
normalised ones such as email, the relation's table for related entities
and metric thresholds), with an estimate: a ``COUNT(*)`` of the same
filter at that source, sent concurrently. ``AND`` runs only its most
selective side (a side of at most :data:`KEYED` identity keys, such as
``email in [...]``, is taken without counting the others: the counts may
scan their tables, the keys are found by index; nor is a metric threshold
counted once another side counts at most :data:`KEYED` rows, and a lone
related-entity side is read while it is counted, so a selective one costs
no round trip of its own, the read stopped when a threshold counts fewer);
``OR`` runs all of its sides and unions them; ``NOT`` cannot be reduced.

**Chunks.** A read yields its seed records in chunks of at most
``model.planner.max_candidates``, so a condition that matches more than
that (country DE at a million customers) is still answered exactly: the
planner stitches and checks one chunk at a time and keeps only the
customers that match. A read stops (``complete=False``) past ten times the
bound, the most it may stream.

Why not intersect the conditions' key sets before stitching: a customer's
records are joined transitively (a contact shares an email with a support
user and a phone with a shop customer), so the records that satisfy two
conditions need share no key, and a per-record ``HAVING`` (``count >= 2``,
``sum >= 1000``) misses customers whose rows are spread over several
records. Only a set that contains a record of every matching customer is a
sound start; the chunks keep such a set within bounded memory.

**Key sets.** Once candidates are known, related-entity predicates are
checked by sending the candidates' keys to the relation's source in
chunked ``IN`` lists together with the predicate's filters, so only the
keys of matching rows come back (:meth:`Reducer.relation_keys`); metric
predicates go through the per-request metric loaders, which do the same
with ``GROUP BY``. Rows a source returned are re-checked in memory with the
planner's exact semantics (a case-insensitive MariaDB collation may return
more than ``eq`` means).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors import Aggregate, Filter, Row, ScanRequest
from connectors.observe import note
from resolvers.coerce import coerce
from resolvers.expr import And, Cond, Expr, FieldPred, Not, Or, RelationPred, holds
from resolvers.model import MemberSpec, RelationSpec
from resolvers.normalize import normalize_email, normalize_phone
from resolvers.records import Record
from resolvers.tasks import gather_or_cancel
from resolvers.view import _scan_after

if TYPE_CHECKING:
    from resolvers.identity import Resolution
    from resolvers.view import CustomerView, RequestView

_POSITIVE = {"eq", "in", "contains", "startswith", "lt", "le", "gt", "ge"}
KEYED = 500
"""An ``and`` with an identity-key side of at most this many keys reduces by it without
counting its other sides: those keys are found by index in a statement or two a table,
while a count is a statement per side that may scan its table (at a million customers,
counting open tickets took longer than the rest of the request)."""
_UNKNOWN = 10**12
"""The estimate of a read whose source cannot count: tried last."""


@dataclass(frozen=True, slots=True)
class Seeds:
    """Source records found for a reducible predicate (a chunk of a superset of its
    customers' records)."""

    records: tuple[Record, ...]
    complete: bool = True
    """False when a read passed ten times the bound: the predicate matches too much."""
    resolution: Resolution | None = None
    """How the records group into customers, when the read stitched them already
    (identity keys): the planner does not stitch them again."""


Chunks = AsyncIterator[Seeds]


@dataclass(slots=True)
class Read:
    """A planned reduction: what it is, how many rows it should touch, how to run it."""

    label: str
    estimate: int
    chunks: Callable[[], Chunks]
    """The seed records in chunks of at most ``max_candidates`` records, the last one
    ``complete=False`` when the read passed ten times that."""
    holds: Expr | None = None
    """The predicate every customer holding one of the seed records satisfies (a
    related-row condition whose matching rows' parents are the seeds), so it need not
    be checked again; None when the seeds are a superset."""
    started: asyncio.Task[list[Row]] | None = None
    """Its rows, read beside its count (see :meth:`Reducer._first_few`); stopped by
    :meth:`abandon` when another read is taken."""

    def abandon(self) -> None:
        """Stop reading ahead: another read was taken."""
        if self.started is not None:
            self.started.cancel()
            note(f"{self.label}: read beside its count, not taken (stopped)")


def pushdown(value: Any) -> Any:
    """A filter value as sources store it (naive UTC timestamps)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, list | tuple):
        return [pushdown(v) for v in value]
    return value


def _label(subject: str, conds: Sequence[tuple[str, Cond]]) -> str:
    shown = " and ".join(f"{f} {c.op} {c.value!r}" for f, c in conds)
    return f"{subject}({shown})" if shown else subject


class Reducer:
    """Plans and runs the source-side reduction of one filter for one request."""

    def __init__(self, view: RequestView) -> None:
        self.view = view
        self.model = view.model
        self.limit = self.model.planner.max_candidates
        self.ceiling = self.limit * 10
        """The most rows a reduction may read (and seed records it may stream)."""
        self._ahead: list[Read] = []
        """Reads started beside their counts (see :meth:`stop_reading_ahead`)."""

    # -- planning --------------------------------------------------------

    async def plan(self, expr: Expr, ahead: bool = False) -> Read | None:
        """The cheapest way to narrow ``expr`` at the sources; None if none can.
        ``ahead``: a related-entity condition's rows are read beside its count (the
        caller takes or abandons the read)."""
        if isinstance(expr, FieldPred):
            if expr.field in self.model.metrics:
                return await self._plan_metric(expr)
            return await self._plan_field(expr)
        if isinstance(expr, RelationPred):
            rel = self.model.relations[expr.relation]
            where = [(rel.fields[f].column, c) for f, c in expr.where]
            label = _label(expr.relation, expr.where)
            read = await self._plan_relation(rel, where, label, ahead=ahead)
            read.holds = expr  # its rows are re-checked in memory, each seed has one
            return read
        if isinstance(expr, And):
            keyed = [r for r in map(self._keyed, expr.items) if r is not None]
            few = min(keyed, key=lambda r: r.estimate, default=None)
            if few is not None and few.estimate <= KEYED:
                note(
                    f"and: reduce by {few.label} ({few.estimate} identity keys; "
                    "the other conditions not counted)"
                )
                return few
            reads, few = await self._first_few(expr.items)
            if few is not None:
                note(
                    f"and: reduce by {few.label} (~{few.estimate} rows; "
                    "the metric thresholds not counted)"
                )
                return few
            known = [r for r in reads if r is not None]
            if not known:
                return None
            best = min(known, key=lambda r: r.estimate)
            for read in known:
                if read is not best:
                    read.abandon()
            if len(known) > 1:
                others = ", ".join(f"{r.label} ~{r.estimate}" for r in known if r is not best)
                note(f"and: reduce by {best.label} (~{best.estimate} rows; not {others})")
            return best
        if isinstance(expr, Or):
            reads = await gather_or_cancel(*(self.plan(e) for e in expr.items))
            if any(r is None for r in reads):
                return None
            sides = [r for r in reads if r is not None]
            return Read(
                " or ".join(r.label for r in sides),
                sum(r.estimate for r in sides),
                lambda: self._rechunk(self._union(sides)),
            )
        assert isinstance(expr, Not)
        return None

    async def _first_few(self, items: Sequence[Expr]) -> tuple[list[Read | None], Read | None]:
        """Every side of an ``and`` planned (counted). The sides that are not metric
        thresholds are counted first (concurrently); when one counts at most
        :data:`KEYED` rows, the smallest such side is taken and the metric thresholds
        are never counted: such a count covers every row with a positive value (every
        paid order, for a lifetime value), so it scans the relation and cannot beat a
        few hundred rows (at a million customers it took longer than the rest of the
        request). Started beside the plain counts and stopped, it still competed with
        them for the CPU and was waited for until its interrupt landed (the selective
        page at 100,000: 18 -> 17 statements, ~15 -> ~12 CPU ms). Otherwise the metric
        thresholds are counted next, concurrently, and every side's plan returned."""
        metric = [isinstance(e, FieldPred) and e.field in self.model.metrics for e in items]
        if any(metric) and not all(metric):
            # the plain sides first: a metric count started beside them competes for the
            # CPU with the few-row counts it cannot beat, and stopping it waits for its
            # statement's interrupt. A lone related-entity side is read beside its count:
            # it is taken unless it counts more than KEYED rows and a threshold fewer
            # (a round trip less for a selective one; a bounded read stopped otherwise)
            alone = metric.count(False) == 1
            plain = list(
                await gather_or_cancel(
                    *(
                        self.plan(e, ahead=alone)
                        for e, m in zip(items, metric, strict=True)
                        if not m
                    )
                )
            )
            few = min((r for r in plain if r is not None), key=lambda r: r.estimate, default=None)
            if few is not None and few.estimate <= KEYED:
                return [], few
            counted = iter(plain)
            try:
                rest = iter(
                    await gather_or_cancel(
                        *(self.plan(e) for e, m in zip(items, metric, strict=True) if m)
                    )
                )
            except BaseException:
                for read in plain:
                    if read is not None:
                        read.abandon()
                raise
            return [next(rest) if m else next(counted) for m in metric], None
        return list(await gather_or_cancel(*(self.plan(e) for e in items))), None

    async def _union(self, sides: Sequence[Read]) -> Chunks:
        """Each side's chunks in turn (the planner skips customers already seen)."""
        for side in sides:
            async for seeds in side.chunks():
                yield seeds
                if not seeds.complete:
                    return

    async def _rechunk(self, parts: Chunks) -> Chunks:
        """``parts`` regrouped into chunks of exactly ``limit`` records (the last fewer),
        so small parts are stitched together; stops after an incomplete part."""
        buffer: list[Record] = []
        async for seeds in parts:
            if not seeds.complete:
                yield seeds
                return
            buffer.extend(seeds.records)
            while len(buffer) >= self.limit:
                yield Seeds(tuple(buffer[: self.limit]))
                del buffer[: self.limit]
        if buffer:
            yield Seeds(tuple(buffer))

    async def _count(self, source: str, table: str, filters: Sequence[Filter]) -> int:
        connector = self.view.federation.connectors[source]
        caps = connector.capabilities_for(table)
        if not caps.supports_aggregates or not all(
            caps.can_filter(f.column, f.op) for f in filters
        ):
            return _UNKNOWN
        rows = await connector.aggregate(table, [], [Aggregate("count", alias="n")], filters)
        return int(rows[0]["n"]) if rows else 0

    def _keyed(self, expr: Expr) -> Read | None:
        """``expr``'s read when it is an identity-key lookup (``email eq/in``), whose
        estimate (the number of keys) needs no statement; else None."""
        if not isinstance(expr, FieldPred) or expr.field in self.model.metrics:
            return None
        spec = self.model.customer.fields[expr.field]
        if spec.normalize not in ("email", "phone"):
            return None
        if not expr.conds or any(c.op not in _POSITIVE for c in expr.conds):
            return None
        label = _label(expr.field, [("", c) for c in expr.conds]).replace("( ", "(")
        return self._plan_identity(expr, spec.normalize, label)

    async def _plan_field(self, pred: FieldPred) -> Read | None:
        if not pred.conds or any(c.op not in _POSITIVE for c in pred.conds):
            return None
        spec = self.model.customer.fields[pred.field]
        label = _label(pred.field, [("", c) for c in pred.conds]).replace("( ", "(")
        if spec.normalize in ("email", "phone"):
            return self._keyed(pred)
        reads: list[tuple[MemberSpec, list[Filter]]] = []
        for member in self.model.customer.members:
            column = member.fields.get(pred.field)
            if column is None:
                continue
            if "{" in column:
                return None
            filters = [Filter(column, c.op, pushdown(c.value)) for c in pred.conds]
            caps = self.view.federation.connectors[member.source].capabilities_for(member.table)
            if not all(caps.can_filter(f.column, f.op) for f in filters):
                return None
            reads.append((member, filters))
        counts = await gather_or_cancel(*(self._count(m.source, m.table, f) for m, f in reads))
        return Read(label, sum(counts), lambda: self._rechunk(self._scan_members(reads)))

    def _plan_identity(self, pred: FieldPred, kind: str, label: str) -> Read | None:
        """``email eq/in``: the customers holding those identity keys, found by lookups."""
        values: list[Any] = []
        for cond in pred.conds:
            if cond.op not in ("eq", "in"):
                return None
            values.extend(cond.value if cond.op == "in" else [cond.value])
        names = [n for n, k in self.model.identity.keys.items() if k.normalize == kind]
        if not names:
            return None
        region = self.view.federation.default_region
        normal = [
            normalize_email(str(v)) if kind == "email" else normalize_phone(str(v), region)
            for v in values
        ]
        keys = [(names[0], v) for v in dict.fromkeys(normal) if v]

        async def chunks() -> Chunks:
            if not keys:
                return
            resolution = await self.view.federation.stitcher.resolve(keys=keys)
            self.view._collect(resolution)
            yield Seeds(
                tuple(r for key in keys for r in resolution.cluster(key)),
                resolution=resolution,
            )

        return Read(label, len(keys), chunks)

    async def _plan_metric(self, pred: FieldPred) -> Read | None:
        metric = self.model.metrics[pred.field]
        rel = self.model.relations[metric.relation]
        where = [(w.column, Cond(w.op, w.value)) for w in metric.where]
        label = _label(pred.field, [("", c) for c in pred.conds]).replace("( ", "(")
        for cond in pred.conds:
            if metric.fn in ("count", "sum") and cond.op in ("gt", "ge"):
                threshold = coerce(cond.value, "float") or 0.0
                if threshold > 0 or (cond.op == "gt" and threshold >= 0):
                    if metric.fn == "sum":
                        assert metric.column is not None
                        where.append((metric.column, Cond("gt", 0)))
                    return await self._plan_relation(rel, where, label)
            if metric.fn in ("min", "max") and cond.op in ("lt", "le", "gt", "ge"):
                # a customer whose min/max passes has at least one row that passes
                assert metric.column is not None
                return await self._plan_relation(rel, [*where, (metric.column, cond)], label)
        return None

    async def _plan_relation(
        self, rel: RelationSpec, where: Sequence[tuple[str, Cond]], label: str, ahead: bool = False
    ) -> Read:
        connector = self.view.federation.connectors[rel.source]
        caps = connector.capabilities_for(rel.table)
        filters = [Filter(column, c.op, pushdown(c.value)) for column, c in where]
        pushed = [f for f in filters if caps.can_filter(f.column, f.op)]
        started = asyncio.ensure_future(self._relation_rows(rel, where, pushed)) if ahead else None
        try:
            estimate = await self._count(rel.source, rel.table, pushed)
        except BaseException:
            if started is not None:
                started.cancel()
            raise
        read = Read(label, estimate, lambda: self._reduce_relation(rel, where, pushed, started))
        read.started = started
        if started is not None:
            # a read not taken may fail unawaited: its error is the source's to report
            # when it is taken, and nobody's when it is not
            started.add_done_callback(_retrieved)
            self._ahead.append(read)
        return read

    def stop_reading_ahead(self) -> None:
        """Every read started beside its count and still running is stopped: the
        planner is done with this filter's reads (one it took has finished by then)."""
        ahead, self._ahead = self._ahead, []
        for read in ahead:
            if read.started is not None and not read.started.done():
                read.abandon()

    # -- reading ---------------------------------------------------------

    async def _relation_rows(
        self, rel: RelationSpec, where: Sequence[tuple[str, Cond]], pushed: Sequence[Filter]
    ) -> list[Row]:
        """The rows matching the pushable conditions, up to one past the ceiling."""
        connector = self.view.federation.connectors[rel.source]
        columns = list(dict.fromkeys([rel.parent.column, *(column for column, _ in where)]))
        request = ScanRequest(rel.table, columns, filters=pushed, limit=self.ceiling + 1)
        return [row async for row in connector.scan(request)]

    async def _reduce_relation(
        self,
        rel: RelationSpec,
        where: Sequence[tuple[str, Cond]],
        pushed: Sequence[Filter],
        started: asyncio.Task[list[Row]] | None = None,
    ) -> Chunks:
        """The parent records of the rows matching ``where``, ``limit`` keys a chunk
        (the rows read beside the count when ``started``)."""
        if started is not None:
            rows = await started
        else:
            rows = await self._relation_rows(rel, where, pushed)
        if len(rows) > self.ceiling:
            yield Seeds((), complete=False)
            return
        check = _checker(rel, where)
        keys = list(dict.fromkeys(r[rel.parent.column] for r in rows if check(r)))
        del rows
        member = self.view.federation.member(rel.parent.member)
        for start in range(0, len(keys), self.limit):
            part = keys[start : start + self.limit]
            yield Seeds(tuple(await self._members_by_key(member, part)))

    async def _scan_members(self, reads: Sequence[tuple[MemberSpec, list[Filter]]]) -> Chunks:
        """The member rows matching each read's filters, page by page in key order (every
        member's first page at once); incomplete past the ceiling."""
        firsts = await gather_or_cancel(*(self._page(m, f, None) for m, f in reads))
        stitcher = self.view.federation.stitcher
        read = 0
        for (member, filters), first in zip(reads, firsts, strict=True):
            rows, last = first
            while True:
                read += len(rows)
                if read > self.ceiling:
                    yield Seeds((), complete=False)
                    return
                yield Seeds(tuple(stitcher.record(member, row) for row in rows))
                if last is None:
                    break
                rows, last = await self._page(member, filters, last)

    async def _page(
        self, member: MemberSpec, filters: list[Filter], after: Any
    ) -> tuple[list[Row], Any]:
        """Up to ``limit`` rows of ``member`` matching ``filters`` after key ``after``,
        and the key to read on from (None when these were the last). A source that
        cannot page by key is read at once, up to the ceiling."""
        connector = self.view.federation.connectors[member.source]
        caps = connector.capabilities_for(member.table)
        if caps.can_sort(member.key) and (
            caps.supports_keyset or caps.can_filter(member.key, "gt")
        ):
            rows = await _scan_after(connector, member, after, self.limit, filters)
            return rows, rows[-1][member.key] if len(rows) == self.limit else None
        request = ScanRequest(member.table, member.columns(), filters, limit=self.ceiling + 1)
        return [row async for row in connector.scan(request)], None

    async def _members_by_key(self, member: MemberSpec, keys: list[Any]) -> list[Record]:
        connector = self.view.federation.connectors[member.source]
        groups = await connector.lookup_many(member.table, member.key, keys, member.columns())
        stitcher = self.view.federation.stitcher
        return [stitcher.record(member, row) for rows in groups for row in rows]

    # -- key sets ----------------------------------------------------------

    async def relation_keys(
        self, pred: RelationPred, customers: Sequence[CustomerView]
    ) -> set[Any] | None:
        """Parent keys, among the candidates', that have a row matching ``pred``: the
        keys go to the source in chunked ``IN`` lists with the pushable conditions.
        None when the source cannot filter by its parent column."""
        rel = self.model.relations[pred.relation]
        connector = self.view.federation.connectors[rel.source]
        caps = connector.capabilities_for(rel.table)
        parent = rel.parent.column
        if not caps.can_filter(parent, "in"):
            return None
        keys = list(
            dict.fromkeys(
                r.key for c in customers for r in c.records if r.member.id == rel.parent.member
            )
        )
        where = [(rel.fields[f].column, c) for f, c in pred.where]
        filters = [Filter(column, c.op, pushdown(c.value)) for column, c in where]
        pushed = [f for f in filters if caps.can_filter(f.column, f.op)]
        columns = list(dict.fromkeys([parent, *(column for column, _ in where)]))
        size = caps.max_batch_size

        check = _checker(rel, where)

        async def chunk(part: list[Any]) -> list[Any]:
            request = ScanRequest(rel.table, columns, [Filter(parent, "in", part), *pushed])
            return [row[parent] async for row in connector.scan(request) if check(row)]

        found = await gather_or_cancel(
            *(chunk(keys[i : i + size]) for i in range(0, len(keys), size))
        )
        matched = {k for part in found for k in part}
        note(
            f"{pred.relation}: sent {len(keys)} candidate keys to {rel.source} in "
            f"{len(found)} IN list(s); {len(matched)} have a matching row"
        )
        return matched


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _checker(rel: RelationSpec, where: Sequence[tuple[str, Cond]]) -> Callable[[Row], bool]:
    """Whether a relation row matches every ``(column, condition)`` of ``where``, each
    value typed as its entity field (raw when no field maps the column)."""
    types: dict[str, Any] = {}
    for spec in rel.fields.values():
        types.setdefault(spec.column, spec.type)
    checks = [(column, types.get(column), cond) for column, cond in where]

    def check(row: Row) -> bool:
        for column, type_, cond in checks:
            value = row.get(column)
            if not holds(value if type_ is None else coerce(value, type_), cond):
                return False
        return True

    return check
