"""The unified customer view flattened to typed rows, streamed for BI exports.

Exportable tables, all derived from the configured model:

* ``customers``: ``id``, every golden field, every metric, ``source_records``
  (the member records' refs joined by ``;``);
* one table per relation (``tickets``, ``orders``, ...): ``customer_id`` then
  the relation's fields, in the same order as ``Customer.<relation>``;
* ``source_records``: ``customer_id``, ``source``, ``table``, ``id``, ``ref``.

Without a filter, customers come in the stable ``customers`` order. A whole
export reads every member table's identity keys once, joins them in memory
(a few machine words per record) and then reads the customers' records by key
a chunk at a time (:mod:`resolvers.walk`), following the identity registry as
read-time stitching does. Asked for chunks of a given size (SQL's ``LIMIT``),
each member table is read in key order a chunk of seeds at a time and every chunk is stitched by
lookups (one batched lookup per table and key column per round), each
customer emitted at its canonical record. A chunk has its own request view,
so memory stays bounded whatever the number of customers. With a filter or
an order, the planner picks the customers exactly as ``customers(filter:,
orderBy:)`` does (bounded by ``model.planner.max_candidates``) and rows are
built a chunk at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any

from connectors import ConnectorError, QueryError
from resolvers import metrics as metric_values
from resolvers import walk
from resolvers.expr import Expr, Order
from resolvers.heap import WALK_THRESHOLDS, long_lived_frozen
from resolvers.metrics import NO_KEY, Owners
from resolvers.model import FieldType, UnifiedModel
from resolvers.planner import Planner
from resolvers.policy import ForbiddenField, Grant, mask
from resolvers.view import CustomerView, Federation, RequestView, _scan_after

if TYPE_CHECKING:
    from resolvers.audit import Auditor
    from resolvers.export_chunks import ChunkBuilders

Row = tuple[Any, ...]
"""One exported row, values in column order, typed as the column says."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """A chunk's rows already encoded in the export's format by the process that built
    them (an export worker: :mod:`resolvers.export_chunks`), so that they cross to the
    exporting process as bytes, not as values. Only a chunk nothing masks is encoded
    so (:attr:`resolvers.export_chunks.ChunkSpec.unmasked`); the exporter writes its
    bytes where the format's encoder would have written the rows'."""

    form: str
    """The format that encoded it (the exporter checks it is the export's)."""
    data: bytes
    count: int
    """How many rows it holds."""

    def __len__(self) -> int:
        return self.count


Chunk = list[Row] | Encoded
"""One chunk of an export as it leaves :func:`rows`: its rows, or their bytes."""

CUSTOMERS = "customers"
SOURCE_RECORDS = "source_records"
CHUNK = 500
"""Customers stitched per step: one page of seeds, one batched read per relation."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: FieldType
    description: str = ""


def tables(model: UnifiedModel) -> dict[str, list[Column]]:
    """Every exportable table and its full column set, in order."""
    customer = [Column("id", "id", "Stable, opaque customer id")]
    customer += [Column(n, f.type, f.description) for n, f in model.customer.fields.items()]
    customer += [Column(n, m.type, m.description) for n, m in model.metrics.items()]
    customer.append(Column(SOURCE_RECORDS, "string", "Member record refs, ';'-separated"))
    found = {CUSTOMERS: customer}
    owner = Column("customer_id", "id", "The customer the row belongs to")
    for name, rel in model.relations.items():
        found.setdefault(
            name, [owner, *(Column(f, s.type, s.description) for f, s in rel.fields.items())]
        )
    found.setdefault(
        SOURCE_RECORDS,
        [
            owner,
            Column("source", "string"),
            Column("table", "string"),
            Column("id", "string", "The record's key in its table"),
            Column("ref", "string", "source/table/id"),
        ],
    )
    return found


def columns(model: UnifiedModel, table: str, wanted: Sequence[str] | None = None) -> list[Column]:
    """The columns of ``table``; ``wanted`` picks and orders a subset."""
    every = tables(model)
    if table not in every:
        raise QueryError(f"unknown export '{table}'; known: {', '.join(every)}")
    by_name = {c.name: c for c in every[table]}
    if not wanted:
        return every[table]
    unknown = [c for c in wanted if c not in by_name]
    if unknown:
        raise QueryError(
            f"unknown {table} column(s) {', '.join(unknown)}; known: {', '.join(by_name)}"
        )
    return [by_name[c] for c in wanted]


def governed_columns(
    model: UnifiedModel, table: str, wanted: Sequence[str] | None, grant: Grant | None
) -> list[Column]:
    """:func:`columns` as ``grant`` allows: denied columns are left out of the default
    set, and asking for one (or for a denied relation) is ``FORBIDDEN_FIELD``."""
    found = columns(model, table, wanted)
    if grant is None or grant.full:
        return found
    if table in model.relations and grant.action(table) == "deny":
        raise ForbiddenField(f"your role may not read {table}")
    if not wanted:
        return [c for c in found if column_action(model, grant, table, c.name) != "deny"]
    denied = [c.name for c in found if column_action(model, grant, table, c.name) == "deny"]
    if denied:
        raise ForbiddenField(f"your role may not read {table} column(s) {', '.join(denied)}")
    return found


def column_action(model: UnifiedModel, grant: Grant, table: str, column: str) -> str:
    """The policy's action for one export column (the same as for its GraphQL field)."""
    if table == CUSTOMERS:
        if column == "id":
            return "allow"
        return grant.action("sourceRecords" if column == SOURCE_RECORDS else column)
    if table in model.relations:
        if column == "customer_id":
            return "allow"
        return grant.entity_action(model.relations[table].entity, column)
    return "allow"  # source_records: references only


def audited_name(model: UnifiedModel, table: str, column: str) -> str:
    """A column as the audit log names fields, the GraphQL way (``Customer.email``)."""
    if table == CUSTOMERS:
        return f"Customer.{'sourceRecords' if column == SOURCE_RECORDS else column}"
    if table in model.relations:
        return f"{model.relations[table].entity}.{column}"
    return f"SourceRecord.{column}"


class Failures(dict[str, str]):
    """Source -> first reason it failed during an export."""

    def add(self, error: ConnectorError) -> None:
        self.setdefault(error.source, error.reason)


async def customer_chunks(
    federation: Federation,
    expr: Expr | None = None,
    order: Sequence[Order] = (),
    *,
    chunk: int | None = None,
    failures: Failures | None = None,
    ids: Sequence[str] | None = None,
) -> AsyncIterator[tuple[RequestView, list[CustomerView]]]:
    """The matching customers, ``chunk`` at a time, with the view that found them.

    Every customer (no filter, no order) without a ``chunk``: the two-pass walk
    (:mod:`resolvers.walk`), fastest per customer, its first chunk after one read
    of every member table's keys. With a ``chunk`` (a caller that wants the first
    few soon, such as SQL's ``LIMIT``): page by page, each chunk of seeds stitched
    by lookups."""
    whole = chunk is None
    chunk = chunk or CHUNK
    if ids is not None:
        view = federation.request()
        found = await _by_ids(view, ids, expr)
        _check(view, failures)
        for start in range(0, len(found), chunk):
            yield view, found[start : start + chunk]
        return
    if expr is not None or order:
        view = federation.request()
        found = await Planner(view).matching(expr, order)
        _check(view, failures)
        for start in range(0, len(found), chunk):
            yield view, found[start : start + chunk]
        return
    if whole:
        # resolvers/heap.py: the long-lived objects left out (~1 CPU s in 9 at 100,000)
        # and the young generation collected rarely (~2.3 CPU s in 25)
        with long_lived_frozen(thresholds=WALK_THRESHOLDS):
            async for step in walk.customers(federation, chunk, failures):
                yield step
        return
    members = federation.model.customer.members
    for member in members:
        connector = federation.connectors[member.source]
        last: Any = None
        while True:
            view = federation.request()
            try:
                scanned = await _scan_after(connector, member, last, chunk)
            except ConnectorError as exc:
                if failures is None:
                    raise
                # customers whose canonical record is in that table cannot be listed
                failures.add(exc)
                break
            if not scanned:
                break
            seeds = [federation.stitcher.record(member, row) for row in scanned]
            last = seeds[-1].key
            resolution = await federation.stitcher.resolve(records=seeds)
            view.errors.extend(resolution.errors)
            _check(view, failures)
            # every seed is resolved once; a customer is emitted at its canonical record
            customers = []
            for seed in seeds:
                cluster = resolution.cluster(seed.ref)
                if cluster and cluster[0].ref == seed.ref:
                    customers.append(federation.customer(resolution, cluster))
            if customers:
                yield view, customers
            if len(scanned) < chunk:
                break


def _check(view: RequestView, failures: Failures | None) -> None:
    if view.errors and failures is None:
        raise view.errors[0]
    for error in view.errors:
        if failures is not None:
            failures.add(error)


async def _by_ids(view: RequestView, ids: Sequence[str], expr: Expr | None) -> list[CustomerView]:
    """The customers these ids (or their merged-away records) name, matching ``expr``."""
    found: dict[str, CustomerView] = {}
    for customer_id in dict.fromkeys(ids):
        try:
            customer = await view.by_id(customer_id)
        except QueryError:  # not a customer id at all: no such customer
            continue
        if customer is not None:
            found.setdefault(customer.id, customer)
    customers = list(found.values())
    if expr is None:
        return customers
    planner = Planner(view)
    kept = await asyncio.gather(*(planner.holds(expr, c) for c in customers))
    return [c for c, ok in zip(customers, kept, strict=True) if ok]


async def rows(
    federation: Federation,
    table: str,
    wanted: Sequence[Column],
    expr: Expr | None = None,
    order: Sequence[Order] = (),
    *,
    chunk: int | None = None,
    failures: Failures | None = None,
    grant: Grant | None = None,
    auditor: Auditor | None = None,
    ids: Sequence[str] | None = None,
    builders: ChunkBuilders | None = None,
) -> AsyncIterator[Chunk]:
    """Chunks of typed rows of ``table`` for the customers matching ``expr``.

    A failing source raises, unless ``failures`` is given: then the export
    goes on with what the other sources know, and ``failures`` collects
    source -> reason for the caller to report. With a ``grant``, only the
    customers its row rules admit are exported, masked as it says (the same
    policy object the GraphQL resolvers ask). With an ``auditor``, each chunk
    is recorded (ids and columns) before it is yielded; if that fails, the
    export stops. With ``ids``, only the customers those ids name are read
    (looked up one by one, not searched for). With ``builders``, an export of
    every customer (no filter, order, ids or chunk size) has its chunks built by
    them (:mod:`resolvers.export_chunks`: other processes), the same rows in the
    same order, masked and audited here; when the grant masks none of ``wanted``,
    builders that can encode the export's format send their chunks' bytes
    (:class:`Encoded`), which only an encoder of that format may take.
    """
    model = federation.model
    names = [c.name for c in wanted]
    actions = [column_action(model, grant, table, n) for n in names] if grant else []
    masked = [(at, action) for at, action in enumerate(actions) if action != "allow"]
    if builders is not None and expr is None and not order and chunk is None and ids is None:
        from resolvers.export_chunks import farmed_rows

        async for out in farmed_rows(
            federation, table, names, builders,
            failures=failures, grant=grant, auditor=auditor, masked=masked,
        ):  # fmt: skip
            yield out
        return
    build = builder(model, table, wanted, failures)
    fields = [audited_name(model, table, n) for n in names]
    salt = grant.salt if grant else ""
    async for view, customers in customer_chunks(
        federation, expr, order, chunk=chunk, failures=failures, ids=ids
    ):
        if grant is not None and grant.rows is not None:
            customers = [c for c in customers if grant.admits(c.golden.values)]
        out = await build(view, customers)
        customer_ids = [c.id for c in customers] if auditor is not None else []
        codes = [e.code for e in view.errors] if auditor is not None else []
        yield await leaving(out, customer_ids, codes, masked, salt, auditor, fields)


async def leaving(
    out: Chunk,
    ids: list[str],
    codes: list[str],
    masked: list[tuple[int, str]],
    salt: str,
    auditor: Auditor | None,
    fields: list[str],
) -> Chunk:
    """A chunk as it leaves, built here or elsewhere: masked as the grant says, and
    recorded by the auditor (its customers' ``ids``, the source errors' ``codes``)
    before it is yielded."""
    if masked:
        if isinstance(out, Encoded):  # a real check: an assert would vanish under -O
            raise RuntimeError("a chunk encoded by its builder cannot be masked")
        out = masked_rows(out, masked, salt)
    if auditor is not None:
        from resolvers.audit import outcome_of

        await auditor.record(ids, fields, outcome_of(codes), (), codes)
    return out


def masked_rows(rows: list[Row], masked: list[tuple[int, str]], salt: str) -> list[Row]:
    """``rows`` with the columns policy masks (at, action) masked, the others as they are."""
    out = []
    for row in rows:
        values = list(row)
        for at, action in masked:
            values[at] = mask(values[at], action, salt)
        out.append(tuple(values))
    return out


Builder = Callable[[RequestView, list[CustomerView]], Awaitable[list[Row]]]


def builder(
    model: UnifiedModel, table: str, wanted: Sequence[Column | str], failures: Failures | None
) -> Builder:
    """How chunks of customers become rows of ``table`` (``wanted``: columns or names)."""
    names = [c if isinstance(c, str) else c.name for c in wanted]
    if table == CUSTOMERS:
        return _CustomerRows(model, names, failures).build
    if table in model.relations:
        return _RelationRows(table, names, failures).build

    async def records(view: RequestView, customers: list[CustomerView]) -> list[Row]:
        return [
            tuple(
                _record_value(c.id, r.member.source, r.member.table, r.key, r.ref, n) for n in names
            )
            for c in customers
            for r in c.records
        ]

    return records


def _record_value(customer: str, source: str, table: str, key: Any, ref: Any, name: str) -> Any:
    values = {"customer_id": customer, "source": source, "table": table, "id": str(key)}
    return values[name] if name in values else str(ref)


class _CustomerRows:
    """Customers as rows; metrics for a whole chunk in one batched read per relation,
    combined a metric at a time."""

    def __init__(self, model: UnifiedModel, names: list[str], failures: Failures | None) -> None:
        self.model = model
        self.names = names
        self.failures = failures
        self.ranks = {m.id: rank for rank, m in enumerate(model.customer.members)}
        self.id_at = [at for at, name in enumerate(names) if name == "id"]
        self.refs_at = [at for at, name in enumerate(names) if name == SOURCE_RECORDS]
        # a metric's value over a golden field's of the same name
        self.metric_at = [(at, name) for at, name in enumerate(names) if name in model.metrics]
        self.by_relation: dict[str, list[str]] = {}
        for _, name in self.metric_at:
            self.by_relation.setdefault(model.metrics[name].relation, []).append(name)
        self.parent_ranks = list(
            dict.fromkeys(self.ranks[model.relations[r].parent.member] for r in self.by_relation)
        )
        # what each column holds, the first that applies: the record references, the
        # customer id, a metric, else the golden value of that name (None if none)
        metrics = {name for _, name in self.metric_at}
        self.plan = [
            (
                "refs"
                if at in self.refs_at
                else "id"
                if at in self.id_at
                else "metric"
                if name in metrics
                else "golden",
                name,
            )
            for at, name in enumerate(names)
        ]

    async def build(self, view: RequestView, customers: list[CustomerView]) -> list[Row]:
        owned, refs = self._owned(customers)
        found = await asyncio.gather(
            *(
                self._metrics(view, customers, owned, rel, names)
                for rel, names in self.by_relation.items()
            )
        )
        computed: dict[str, list[Any]] = {}
        for per_metric in found:
            computed.update(per_metric)
        if not self.plan:
            return [()] * len(customers)
        # a column at a time, then zipped into rows
        values = [c.golden.values for c in customers]
        ids: list[Any] | None = None
        out: list[list[Any] | map[Any]] = []
        for kind, name in self.plan:
            if kind == "golden":
                out.append(map(dict.get, values, repeat(name)))
            elif kind == "metric":
                out.append(computed[name])
            elif kind == "id":
                ids = ids or [c.id for c in customers]
                out.append(ids)
            else:
                out.append(refs)
        return list(zip(*out, strict=True))

    def _owned(self, customers: list[CustomerView]) -> tuple[dict[int, Owners], list[str]]:
        """Member rank -> the customers' keys of that member, for the members that the
        metrics' relations hang off, and each customer's records' references joined by
        ``;`` when the rows show them (one pass over the records for all)."""
        owned = {rank: Owners([NO_KEY] * len(customers)) for rank in self.parent_ranks}
        sole = {rank: owners.sole for rank, owners in owned.items()}
        refs: list[str] = []
        with_refs = bool(self.refs_at)
        for at, customer in enumerate(customers):
            texts = []
            for record in customer.records:
                member = record.member
                key = record.row[member.key]
                keys = sole.get(record.rank)
                if keys is not None:
                    if keys[at] is NO_KEY:
                        keys[at] = key
                    else:  # its second key or more: all of them in ``more``
                        _another(owned[record.rank].more, keys[at], at, key)
                if with_refs:
                    # :meth:`Record.ref_text`, the key already at hand
                    texts.append(member.ref_prefix + str(key))
            if with_refs:
                refs.append(";".join(texts))
        for owners in owned.values():
            for at in owners.more:  # not a sole key
                owners.sole[at] = NO_KEY
        return owned, refs

    async def _metrics(
        self,
        view: RequestView,
        customers: list[CustomerView],
        owned_by_rank: dict[int, Owners],
        relation: str,
        names: list[str],
    ) -> dict[str, list[Any]]:
        """Metric -> its value per customer, for the metrics ``names`` over ``relation``;
        None where its source failed."""
        rel = self.model.relations[relation]
        failure = view.failure(rel.source)
        owned = owned_by_rank[self.ranks[rel.parent.member]]
        keys = owned.keys()
        specs = {n: self.model.metrics[n] for n in names}
        values: dict[str, dict[Any, Any]] = {n: {} for n in names}
        if failure is None and keys:
            connector = view.federation.connectors[rel.source]
            size = connector.capabilities_for(rel.table).max_batch_size
            try:
                parts = await asyncio.gather(
                    *(
                        metric_values.compute_columns(connector, rel, specs, keys[i : i + size])
                        for i in range(0, len(keys), size)
                    )
                )
            except ConnectorError as exc:
                failure = exc
            else:
                for part in parts:
                    for name, by_key in part.items():
                        values[name].update(by_key)
        if failure is not None:
            if self.failures is None:
                raise failure
            self.failures.add(failure)
            return {n: [None] * len(customers) for n in names}
        return {
            n: metric_values.combine_column(spec, owned, values[n]) for n, spec in specs.items()
        }


def _another(more: dict[int, list[Any]], first: Any, at: int, key: Any) -> None:
    """Customer ``at`` has another key after ``first``: all its keys go to ``more``."""
    keys = more.get(at)
    if keys is None:
        more[at] = [first, key]
    else:
        keys.append(key)


class _RelationRows:
    """Rows of one relation with their customer's id, as ``Customer.<relation>`` lists them."""

    def __init__(self, relation: str, names: list[str], failures: Failures | None) -> None:
        self.relation = relation
        self.names = names
        self.failures = failures

    async def build(self, view: RequestView, customers: list[CustomerView]) -> list[Row]:
        found = await asyncio.gather(
            *(view.related(c, self.relation) for c in customers),
            return_exceptions=True,
        )
        out = []
        for customer, items in zip(customers, found, strict=True):
            if isinstance(items, ConnectorError):
                if self.failures is None:
                    raise items
                self.failures.add(items)
                continue
            if isinstance(items, BaseException):
                raise items
            for item in items:
                item["customer_id"] = customer.id
                out.append(tuple(item.get(n) for n in self.names))
        return out
