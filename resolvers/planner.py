"""The federated planner for ``customers(filter, orderBy)``.

A filter over golden fields, metrics and related entities of several
sources is answered in three steps:

1. **Reduce** to candidates at the sources (:mod:`resolvers.reduction`):
   the most selective predicate a source can evaluate (by ``COUNT`` at each
   source) is read there and its records are stitched into candidate
   customers, ``max_candidates`` seed records at a time. A filter that
   cannot be reduced (``NOT``, ``ne``, computed names), or whose reduction
   passes ten times the bound, falls back to enumerating customers, up to
   the bound — past it the query fails with a hint rather than scanning
   without end.
2. **Key sets**: each chunk's candidates' keys go to the other sources in
   chunked ``IN`` lists with the remaining related-entity conditions and
   metric aggregates, so only matching keys and grouped values come back.
3. **Evaluate** exactly in memory on the candidates: golden values,
   metrics and the key sets. Only the matching customers are kept from
   chunk to chunk (at most ``max_candidates`` of them; a count keeps none),
   and a seed record of a customer already checked is not stitched again.

Results are sorted by ``orderBy`` then by customer id, and paged with a
cursor naming the last customer returned. Comparison semantics are
:func:`resolvers.expr.holds`: ``eq``/``in`` exact (case-sensitive),
``contains``/``startswith`` case-insensitive; normalised fields (email,
phone) compare normalised values.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectors import QueryError
from connectors.observe import note
from resolvers.coerce import coerce
from resolvers.collector import collector_paused
from resolvers.expr import And, Cond, Expr, FieldPred, Not, Or, Order, RelationPred, holds
from resolvers.normalize import normalize_email, normalize_phone
from resolvers.records import Record, RecordRef
from resolvers.reduction import Read, Reducer, Seeds

if TYPE_CHECKING:
    from resolvers.identity import Resolution
    from resolvers.view import CustomerView, Page, RequestView

_CHUNK = 500


@dataclass(slots=True)
class _Matches:
    """What a reduced filter found, chunk by chunk."""

    customers: list[CustomerView] = field(default_factory=list)
    count: int = 0
    checked: set[RecordRef] = field(default_factory=set)
    """Every record of the candidates checked so far: their seeds are not stitched again."""


class Planner:
    """Plans and runs one ``customers(filter, orderBy, first, after)``."""

    def __init__(self, view: RequestView) -> None:
        self.view = view
        self.model = view.model
        self.limit = self.model.planner.max_candidates
        self.reducer = Reducer(view)
        self._metrics: dict[str, dict[int, Any]] = {}
        """Metric -> customer (by identity) -> value, loaded in bulk for this query."""
        self._broad: str | None = None
        self._listed: tuple[str, ...] = ()
        """Metrics the caller reads of the page (see :meth:`search`)."""
        self._first = 0

    async def search(
        self,
        expr: Expr | None,
        order: Sequence[Order],
        first: int,
        after: str | None,
        listed: Sequence[str] = (),
    ) -> Page:
        """A page of the customers matching ``expr``. ``listed``: metrics the caller
        reads of the listed customers; when a chunk holds at most ``first`` candidates
        they are loaded for them while the filter is checked at the sources (a round
        trip less; the page's loads find them in the request's metric loaders)."""
        from resolvers.view import Page

        if first < 0:
            raise QueryError("'first' must not be negative")
        self._listed, self._first = tuple(listed), first
        customers = await self._sort((await self._matching(expr)).customers, order)
        if order:
            note(f"sorted {len(customers)} customers by {_orders(order)}, then by id")
        start = 0
        if after:
            wanted = _decode(after)
            ids = [c.id for c in customers]
            if wanted not in ids:
                raise QueryError(
                    "the cursor's customer no longer matches; start again without 'after'"
                )
            start = ids.index(wanted) + 1
        page = customers[start : start + first]
        note(f"page: customers {start + 1}-{start + len(page)} of {len(customers)}")
        edges = [(_encode(c.id), c) for c in page]
        return Page(edges, start + first < len(customers), edges[-1][0] if edges else after)

    async def matching(self, expr: Expr | None, order: Sequence[Order]) -> list[CustomerView]:
        """Every customer satisfying ``expr``, sorted by ``order`` then canonical record."""
        return await self._sort((await self._matching(expr)).customers, order)

    async def count(self, expr: Expr | None) -> int:
        """How many customers match ``expr`` (without keeping them when the sources
        can narrow it, so a count may pass ``max_candidates``)."""
        return (await self._matching(expr, keep=False)).count

    async def holds(self, expr: Expr, customer: CustomerView) -> bool:
        """Whether one customer matches ``expr`` (batched with concurrent calls)."""
        return await self._eval(expr, customer)

    async def _matching(self, expr: Expr | None, *, keep: bool = True) -> _Matches:
        try:
            read = await self.reducer.plan(expr) if expr is not None else None
            if expr is not None and read is not None:
                found = await self._reduced(expr, read, keep=keep)
                if found is not None:
                    return found
        finally:
            # a read started beside its count that the plan did not take (a side of an
            # `or` that gave up, a union stopped early) stops here, not in the background
            self.reducer.stop_reading_ahead()
        customers = await self._everyone()
        if expr is not None:
            before = len(customers)
            customers = await self._filter(expr, customers)
            note(f"checked the whole filter on {before} candidates: {len(customers)} match")
        return _Matches(customers, len(customers))

    async def _reduced(self, expr: Expr, read: Read, *, keep: bool) -> _Matches | None:
        """The customers matching ``expr`` among those of ``read``'s seed records, one
        chunk at a time; None when the read passed its ceiling (enumerate instead)."""
        found = _Matches()
        chunks = 0
        async for seeds in read.chunks():
            if not seeds.complete:
                self._broad = read.label
                note(f"{read.label} matches more than the bound at its source")
                self._forget([])
                return None
            chunks += 1
            with collector_paused():  # a chunk's objects die by reference counting
                customers = await self._chunk(_without(expr, read.holds), seeds, found, chunks)
            found.count += len(customers)
            if keep:
                found.customers.extend(customers)
                if len(found.customers) > self.limit:
                    raise self._too_many()
            self._forget(found.customers)
        if chunks > 1:
            note(
                f"{read.label}: {chunks} chunks of at most {self.limit} seed records, "
                f"{found.count} customers match"
            )
        return found

    async def _chunk(
        self, expr: Expr | None, seeds: Seeds, found: _Matches, chunks: int
    ) -> list[CustomerView]:
        """The customers of one chunk's seeds that match ``expr`` (None: all of them;
        customers already checked skipped, their records marked checked)."""
        fresh = [r for r in seeds.records if r.ref not in found.checked]
        stitched = await self._stitch(fresh, seeds.resolution)
        customers = [c for c in stitched if c.records[0].ref not in found.checked]
        found.checked.update(r.ref for c in customers for r in c.records)
        note(f"{_nth(chunks)}stitched {len(fresh)} seed records into {len(customers)} candidates")
        before = len(customers)
        if expr is None:
            note(f"the read's condition is the whole filter: {before} candidates match")
            return customers
        if self._listed and chunks == 1 and before <= self._first:
            customers, _ = await asyncio.gather(
                self._filter(expr, customers), self._preload(customers)
            )
        else:
            customers = await self._filter(expr, customers)
        note(f"checked the whole filter on {before} candidates: {len(customers)} match")
        return customers

    async def _preload(self, customers: list[CustomerView]) -> None:
        """The listed metrics of a few candidates, into the request's metric loaders
        (a failure is the listed field's to report, as it would be without this)."""
        await asyncio.gather(
            *(self.view.metric_many(customers, name) for name in self._listed),
            return_exceptions=True,
        )

    def _forget(self, kept: Sequence[CustomerView]) -> None:
        """Drops loaded metric values of every customer but ``kept`` (the values are
        keyed by object identity, which a dropped customer's successor may reuse)."""
        alive = {id(c) for c in kept}
        for values in self._metrics.values():
            for key in [k for k in values if k not in alive]:
                del values[key]

    async def _filter(self, expr: Expr, customers: list[CustomerView]) -> list[CustomerView]:
        """The customers (in order) matching ``expr``, decided for all of them at once:
        in-memory conditions first, so the sources only see the keys still in play."""
        if not customers:
            return []
        if isinstance(expr, FieldPred):
            conds = self._normal(expr)
            values = await self._values(customers, expr.field)
            return [
                c for c, v in zip(customers, values, strict=True) if all(holds(v, k) for k in conds)
            ]
        if isinstance(expr, RelationPred):
            return await self._related(expr, customers)
        if isinstance(expr, And):
            local = [e for e in expr.items if self._in_memory(e)]
            for item in local:
                customers = await self._filter(item, customers)
            remote = [e for e in expr.items if not self._in_memory(e)]
            found = await asyncio.gather(*(self._filter(e, customers) for e in remote))
            for part in found:
                ids = {id(c) for c in part}
                customers = [c for c in customers if id(c) in ids]
            return customers
        if isinstance(expr, Or):
            kept: set[int] = set()
            left = customers
            for item in sorted(expr.items, key=lambda e: not self._in_memory(e)):
                kept |= {id(c) for c in await self._filter(item, left)}
                left = [c for c in left if id(c) not in kept]
            return [c for c in customers if id(c) in kept]
        assert isinstance(expr, Not)
        inside = {id(c) for c in await self._filter(expr.item, customers)}
        return [c for c in customers if id(c) not in inside]

    def _in_memory(self, expr: Expr) -> bool:
        """Whether ``expr`` needs only golden values (no source)."""
        if isinstance(expr, FieldPred):
            return expr.field not in self.model.metrics
        if isinstance(expr, And | Or):
            return all(self._in_memory(e) for e in expr.items)
        if isinstance(expr, Not):
            return self._in_memory(expr.item)
        return False

    async def _related(
        self, pred: RelationPred, customers: list[CustomerView]
    ) -> list[CustomerView]:
        """Customers with a related row matching ``pred``: their keys sent to the
        relation's source at once, or (when it cannot filter by key) rows per customer."""
        keyed = await self.reducer.relation_keys(pred, customers)
        if keyed is None:
            ok = await asyncio.gather(*(self._eval(pred, c) for c in customers))
            return [c for c, yes in zip(customers, ok, strict=True) if yes]
        member = self.model.relations[pred.relation].parent.member
        return [
            c for c in customers if any(r.key in keyed for r in c.records if r.member.id == member)
        ]

    async def _values(self, customers: list[CustomerView], field: str) -> list[Any]:
        """``field`` (golden or metric) of each customer, metrics loaded for all at once."""
        if field not in self.model.metrics:
            return [c.golden.value(field) for c in customers]
        known = self._metrics.setdefault(field, {})
        missing = [c for c in customers if id(c) not in known]
        if missing:
            values = await self.view.metric_many(missing, field)
            known.update((id(c), v) for c, v in zip(missing, values, strict=True))
        return [known[id(c)] for c in customers]

    def _too_broad(self) -> QueryError:
        return QueryError(
            f"this filter matches more than {self.limit} records at the sources; add a more "
            "selective condition a source can evaluate (a country, a related-entity condition "
            "such as tickets with status open, or a metric threshold)"
        )

    def _too_many(self) -> QueryError:
        return QueryError(
            f"this filter matches more than {self.limit} customers; add a more selective "
            "condition, or count them (segment count) instead of listing them"
        )

    def _hint(self) -> str:
        if self._broad is None:
            return ""
        return f" (its most selective condition, {self._broad}, matches too many rows)"

    # -- candidates ------------------------------------------------------

    async def _stitch(
        self, seeds: Sequence[Record], resolution: Resolution | None = None
    ) -> list[CustomerView]:
        # in record order, whatever order the sources returned rows in: the same
        # filter stitches the same seeds the same way, so every page sees the same
        # customers; a chunk at once (bounded above), one statement per table and round
        unique = sorted({r.ref: r for r in seeds}.values(), key=Record.order)
        if not unique:
            return []
        if len(unique) > self.limit:
            raise self._too_broad()
        if resolution is None:  # else the read stitched them (and collected it)
            resolution = await self.view.federation.stitcher.resolve(records=unique)
            self.view._collect(resolution)
        found: dict[Any, CustomerView] = {}
        for seed in unique:
            cluster = resolution.cluster(seed.ref)
            if cluster and cluster[0].ref not in found:
                found[cluster[0].ref] = self.view.federation.customer(resolution, cluster)
        return list(found.values())

    async def _everyone(self) -> list[CustomerView]:
        customers: list[CustomerView] = []
        after: str | None = None
        while True:
            page = await self.view.page(_CHUNK, after)
            customers.extend(c for _, c in page.customers)
            if len(customers) > self.limit:
                raise QueryError(
                    f"this query must look at every customer (more than {self.limit})"
                    f"{self._hint()}; add a "
                    "condition a source can evaluate (a country, tickets or orders matching "
                    "something, a metric threshold) so the sources narrow it down first"
                )
            if not page.has_next:
                note(f"no source can narrow this filter: enumerated {len(customers)} customers")
                return customers
            after = page.end_cursor

    # -- exact evaluation ------------------------------------------------

    def _normal(self, pred: FieldPred) -> tuple[Cond, ...]:
        """Conditions on a normalised field (email, phone) compare normalised values."""
        spec = self.model.customer.fields.get(pred.field)
        kind = spec.normalize if spec is not None else None
        if kind not in ("email", "phone"):
            return pred.conds
        region = self.view.federation.default_region

        def norm(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            found = normalize_email(value) if kind == "email" else normalize_phone(value, region)
            return found or value

        return tuple(
            Cond(c.op, [norm(v) for v in c.value] if c.op == "in" else norm(c.value))
            if c.op in ("eq", "ne", "in")
            else c
            for c in pred.conds
        )

    async def _eval(self, expr: Expr, customer: CustomerView) -> bool:
        if isinstance(expr, FieldPred):
            (value,) = await self._values([customer], expr.field)
            return all(holds(value, c) for c in self._normal(expr))
        if isinstance(expr, RelationPred):
            rel = self.model.relations[expr.relation]
            rows = await self.view.related_rows(customer, expr.relation)
            return any(
                all(
                    holds(coerce(row.get(rel.fields[f].column), rel.fields[f].type), c)
                    for f, c in expr.where
                )
                for row in rows
            )
        if isinstance(expr, And):
            results = await asyncio.gather(*(self._eval(e, customer) for e in expr.items))
            return all(results)
        if isinstance(expr, Or):
            results = await asyncio.gather(*(self._eval(e, customer) for e in expr.items))
            return any(results)
        assert isinstance(expr, Not)
        return not await self._eval(expr.item, customer)

    async def _sort(
        self, customers: list[CustomerView], order: Sequence[Order]
    ) -> list[CustomerView]:
        customers = sorted(customers, key=lambda c: c.records[0].order())
        for spec in reversed(order):
            values = await self._values(customers, spec.field)
            keyed = list(zip(values, customers, strict=True))
            present = [p for p in keyed if p[0] is not None]
            missing = [p for p in keyed if p[0] is None]
            present.sort(key=lambda p: p[0], reverse=spec.descending)
            customers = [c for _, c in present + missing]
        return customers


def _nth(chunk: int) -> str:
    return "" if chunk == 1 else f"chunk {chunk}: "


def _orders(order: Sequence[Order]) -> str:
    return ", ".join(f"{o.field}{' desc' if o.descending else ''}" for o in order)


def _encode(customer_id: str) -> str:
    return "q" + base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    if not cursor.startswith("q"):
        raise QueryError(f"'{cursor}' is not a cursor of a filtered or ordered query")
    raw = cursor[1:]
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise QueryError(f"'{cursor}' is not a cursor of a filtered or ordered query") from None


def _without(expr: Expr, held: Expr | None) -> Expr | None:
    """``expr`` less a predicate every candidate is known to satisfy (``held``, the
    reducing read's, alone or as a side of a top-level ``and``); None when nothing
    is left to check."""
    if held is None:
        return expr
    if expr == held:
        return None
    if isinstance(expr, And) and held in expr.items:
        rest = tuple(e for e in expr.items if e != held)
        return rest[0] if len(rest) == 1 else And(rest)
    return expr
