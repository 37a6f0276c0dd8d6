"""The federated planner for ``customers(filter, orderBy)``.

A filter over golden fields, metrics and related entities of several
sources is answered in two steps:

1. **Reduce** to candidates at the sources: every predicate a source can
   evaluate becomes a filtered read there (member columns for golden
   fields, the relation's table for related entities and metric
   thresholds); the matching records are the seeds. ``AND`` keeps its most
   selective reducible side, ``OR`` unions its sides. A filter that cannot
   be reduced (``NOT``, ``ne``, computed names) falls back to enumerating
   customers, up to a bound — past it the query fails with a hint rather
   than scanning without end.
2. **Evaluate** exactly in memory on the stitched candidates: golden values,
   metrics and related rows, all through the request's batched loaders.

Results are sorted by ``orderBy`` then by customer id, and paged with a
cursor naming the last customer returned.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors import Filter, QueryError, ScanRequest
from connectors.observe import note
from resolvers.coerce import coerce
from resolvers.expr import And, Cond, Expr, FieldPred, Not, Or, Order, RelationPred, holds
from resolvers.filtering import matches_all
from resolvers.model import MemberSpec, RelationSpec
from resolvers.records import Record

if TYPE_CHECKING:
    from resolvers.view import CustomerView, Page, RequestView

_POSITIVE = {"eq", "in", "contains", "startswith", "lt", "le", "gt", "ge"}
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class _Source:
    """Seeds found at the sources for one reducible predicate."""

    records: tuple[Record, ...]


def _pushdown(value: Any) -> Any:
    """A filter value as sources store it (naive UTC timestamps)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, list | tuple):
        return [_pushdown(v) for v in value]
    return value


class Planner:
    """Plans and runs one ``customers(filter, orderBy, first, after)``."""

    def __init__(self, view: RequestView) -> None:
        self.view = view
        self.model = view.model
        self.limit = self.model.planner.max_candidates

    async def search(
        self, expr: Expr | None, order: Sequence[Order], first: int, after: str | None
    ) -> Page:
        from resolvers.view import Page

        if first < 0:
            raise QueryError("'first' must not be negative")
        customers = await self._sort(await self._matching(expr), order)
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
        return await self._sort(await self._matching(expr), order)

    async def count(self, expr: Expr | None) -> int:
        """How many customers match ``expr``."""
        return len(await self._matching(expr))

    async def holds(self, expr: Expr, customer: CustomerView) -> bool:
        """Whether one customer matches ``expr`` (batched with concurrent calls)."""
        return await self._eval(expr, customer)

    async def _matching(self, expr: Expr | None) -> list[CustomerView]:
        reduced = await self._reduce(expr) if expr is not None else None
        customers = (
            await self._stitch(reduced.records) if reduced is not None else await self._everyone()
        )
        if reduced is not None:
            note(f"stitched {len(reduced.records)} seed records into {len(customers)} candidates")
        if expr is not None:
            kept = await asyncio.gather(*(self._eval(expr, c) for c in customers))
            before = len(customers)
            customers = [c for c, ok in zip(customers, kept, strict=True) if ok]
            note(f"checked the whole filter on {before} candidates: {len(customers)} match")
        return customers

    # -- reduction -------------------------------------------------------

    async def _reduce(self, expr: Expr) -> _Source | None:
        if isinstance(expr, FieldPred):
            if expr.field in self.model.metrics:
                return await self._reduce_metric(expr)
            return await self._reduce_field(expr)
        if isinstance(expr, RelationPred):
            rel = self.model.relations[expr.relation]
            where = [(rel.fields[f].column, c) for f, c in expr.where]
            return await self._reduce_relation(rel, where)
        if isinstance(expr, And):
            parts = await asyncio.gather(*(self._reduce(e) for e in expr.items))
            known = [p for p in parts if p is not None]
            if not known:
                return None
            best = min(known, key=lambda p: len(p.records))
            note(f"and: kept its most selective side ({len(best.records)} records)")
            return best
        if isinstance(expr, Or):
            parts = await asyncio.gather(*(self._reduce(e) for e in expr.items))
            if any(p is None for p in parts):
                return None
            return _Source(tuple(r for p in parts if p is not None for r in p.records))
        assert isinstance(expr, Not)
        return None

    async def _reduce_field(self, pred: FieldPred) -> _Source | None:
        if not pred.conds or any(c.op not in _POSITIVE for c in pred.conds):
            return None
        reads = []
        for member in self.model.customer.members:
            column = member.fields.get(pred.field)
            if column is None:
                continue
            if "{" in column:
                return None
            filters = [Filter(column, c.op, _pushdown(c.value)) for c in pred.conds]
            caps = self.view.federation.connectors[member.source].capabilities_for(member.table)
            if not all(caps.can_filter(f.column, f.op) for f in filters):
                return None
            reads.append(self._scan_member(member, filters))
        found = await asyncio.gather(*reads)
        if any(records is None for records in found):
            return None
        return _Source(tuple(r for records in found if records for r in records))

    async def _reduce_metric(self, pred: FieldPred) -> _Source | None:
        metric = self.model.metrics[pred.field]
        rel = self.model.relations[metric.relation]
        where = [(w.column, Cond(w.op, w.value)) for w in metric.where]
        for cond in pred.conds:
            if metric.fn in ("count", "sum") and cond.op in ("gt", "ge"):
                threshold = coerce(cond.value, "float") or 0.0
                if threshold > 0 or (cond.op == "gt" and threshold >= 0):
                    if metric.fn == "sum":
                        assert metric.column is not None
                        where.append((metric.column, Cond("gt", 0)))
                    return await self._reduce_relation(rel, where)
            if metric.fn == "max" and cond.op in ("gt", "ge") and metric.column:
                return await self._reduce_relation(rel, [*where, (metric.column, cond)])
        return None

    async def _reduce_relation(
        self, rel: RelationSpec, where: Sequence[tuple[str, Cond]]
    ) -> _Source | None:
        connector = self.view.federation.connectors[rel.source]
        caps = connector.capabilities_for(rel.table)
        filters = [Filter(column, c.op, _pushdown(c.value)) for column, c in where]
        pushed = [f for f in filters if caps.can_filter(f.column, f.op)]
        rest = [f for f in filters if f not in pushed]
        columns = list(dict.fromkeys([rel.parent.column, *(f.column for f in rest)]))
        request = ScanRequest(rel.table, columns, filters=pushed, limit=self.limit * 10 + 1)
        rows = [row async for row in connector.scan(request)]
        if len(rows) > self.limit * 10:
            return None
        keys = list(dict.fromkeys(r[rel.parent.column] for r in rows if matches_all(r, rest)))
        if len(keys) > self.limit:
            return None
        member = self.view.federation.member(rel.parent.member)
        return _Source(tuple(await self._members_by_key(member, keys)))

    async def _scan_member(self, member: MemberSpec, filters: list[Filter]) -> list[Record] | None:
        connector = self.view.federation.connectors[member.source]
        request = ScanRequest(member.table, member.columns(), filters=filters, limit=self.limit + 1)
        rows = [row async for row in connector.scan(request)]
        if len(rows) > self.limit:
            return None
        return [self.view.federation.stitcher.record(member, row) for row in rows]

    async def _members_by_key(self, member: MemberSpec, keys: list[Any]) -> list[Record]:
        connector = self.view.federation.connectors[member.source]
        groups = await connector.lookup_many(member.table, member.key, keys, member.columns())
        stitcher = self.view.federation.stitcher
        return [stitcher.record(member, row) for rows in groups for row in rows]

    def _too_broad(self) -> QueryError:
        return QueryError(
            f"this filter matches more than {self.limit} records at the sources; add a more "
            "selective condition a source can evaluate (a country, a related-entity condition "
            "such as tickets with status open, or a metric threshold)"
        )

    # -- candidates ------------------------------------------------------

    async def _stitch(self, seeds: Sequence[Record]) -> list[CustomerView]:

        unique = list({r.ref: r for r in seeds}.values())
        if len(unique) > self.limit:
            raise self._too_broad()
        found: dict[Any, CustomerView] = {}
        stitcher = self.view.federation.stitcher
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            resolution = await stitcher.resolve(records=chunk)
            self.view._collect(resolution)
            for seed in chunk:
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
                    f"this query must look at every customer (more than {self.limit}); add a "
                    "condition a source can evaluate (a country, tickets or orders matching "
                    "something, a metric threshold) so the sources narrow it down first"
                )
            if not page.has_next:
                note(f"no source can narrow this filter: enumerated {len(customers)} customers")
                return customers
            after = page.end_cursor

    # -- exact evaluation ------------------------------------------------

    async def _value(self, customer: CustomerView, field: str) -> Any:
        if field in self.model.metrics:
            return await self.view.metric(customer, field)
        return customer.golden.values.get(field)

    async def _eval(self, expr: Expr, customer: CustomerView) -> bool:
        if isinstance(expr, FieldPred):
            value = await self._value(customer, expr.field)
            return all(holds(value, c) for c in expr.conds)
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
            values = await asyncio.gather(*(self._value(c, spec.field) for c in customers))
            keyed = list(zip(values, customers, strict=True))
            present = [p for p in keyed if p[0] is not None]
            missing = [p for p in keyed if p[0] is None]
            present.sort(key=lambda p: p[0], reverse=spec.descending)
            customers = [c for _, c in present + missing]
        return customers


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
