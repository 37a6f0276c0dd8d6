"""The unified customer view at run time.

:class:`Federation` lives as long as the app and holds the connectors;
:meth:`Federation.request` gives a :class:`RequestView` per request, which
owns the DataLoaders (batched per source per request) and collects the
source errors that degrade the answer instead of failing it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectors import (
    Connector,
    ConnectorError,
    Filter,
    Health,
    QueryError,
    Row,
    ScanRequest,
    Sort,
    WriteAccess,
)
from connectors.resilience import circuit_state
from resolvers import metrics
from resolvers.expr import Expr
from resolvers.fuzzy import AccountRows, Duplicate, Link, Matcher
from resolvers.golden import GoldenRecord, Survivorship
from resolvers.groups import GroupRequest, group_columns
from resolvers.identity import Edge, KeyNode, Resolution, Stitcher
from resolvers.loaders import load_again
from resolvers.metrics import Partial
from resolvers.model import MemberSpec, RelationSpec, UnifiedModel
from resolvers.normalize import normalize_email, normalize_phone
from resolvers.records import Record, RecordRef, canonical
from resolvers.registry import Decision, IdentityRegistry
from resolvers.relation_rows import RelationShape
from resolvers.segments import compile_segments

if TYPE_CHECKING:  # strawberry (~20 MB) is loaded by the first request that batches
    from strawberry.dataloader import DataLoader


_UNKNOWN: Any = object()


@dataclass(slots=True)
class CustomerView:
    """One stitched customer: its member records and golden record."""

    records: list[Record]
    golden: GoldenRecord
    links: dict[RecordRef, Link] = field(default_factory=dict)
    """Records joined by the probabilistic model (not by a shared key), and why."""
    duplicates: list[Duplicate] | None = None
    """Possible duplicates, best first; None when they were not looked for."""
    edges: list[Edge] = field(default_factory=list)
    """Registry edges (steward and batch links) between its records."""
    known_id: str | None = None
    """Its id, when whoever built it has worked it out already (an export's walk)."""
    _id: str | None = field(default=None, repr=False, compare=False)
    metric_values: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """Metric values this request worked out for it (a view lives for one request)."""

    @property
    def id(self) -> str:
        # read by every governed field's audit note, not only by ``id``
        if self._id is None:
            self._id = self.known_id or canonical(self.records).ref.customer_id()
        return self._id


@dataclass(slots=True)
class Page:
    customers: list[tuple[str, CustomerView]]
    has_next: bool
    end_cursor: str | None


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    kind: str
    health: Health
    circuit: str = "closed"
    """The source's circuit breaker: ``closed``, ``half-opened`` or ``opened``."""

    @property
    def status(self) -> str:
        """``DOWN`` when the health check fails; ``CIRCUIT_OPEN`` when it answers but
        calls are still skipped (until the breaker's probe); else ``UP``."""
        if not self.health.ok:
            return "DOWN"
        return "CIRCUIT_OPEN" if self.circuit == "opened" else "UP"


@dataclass(frozen=True, slots=True)
class MatchReason:
    """Why one member record belongs to its customer."""

    record: Record
    method: str
    """``seed`` (the only record), ``key`` (shares identity keys), ``model`` (scored,
    at read time or by a batch run) or ``manual`` (a steward linked it)."""
    keys: list[str]
    """Names of the identity keys it shares with other records of the customer."""
    link: Link | None = None


class Federation:
    """The model and the connectors, shared by all requests."""

    def __init__(
        self,
        model: UnifiedModel,
        connectors: Mapping[str, Connector],
        *,
        default_region: str | None = None,
        registry: IdentityRegistry | None = None,
    ) -> None:
        self.model = model
        self.connectors = connectors
        self.registry = registry
        self.stitcher = Stitcher(model, connectors, registry)
        spec = model.identity.probabilistic
        self.matcher = Matcher(model, spec, connectors, self.stitcher) if spec else None
        if self.matcher is not None:
            self.stitcher.extra_columns = {
                m.id: self.matcher.extra_columns(m) for m in model.customer.members
            }
        for member_id, columns in group_columns(model).items():
            extra = self.stitcher.extra_columns.setdefault(member_id, [])
            have = set(self._member_columns(member_id)) | set(extra)
            extra += [c for c in columns if c not in have]
        self.survivorship = Survivorship(model)
        self.default_region = default_region or model.identity.default_region
        self._members = {m.id: m for m in model.customer.members}
        self._by_table = {(m.source, m.table): m for m in model.customer.members}
        self.segments: dict[str, Expr] = compile_segments(model)
        self.relation_shapes: dict[tuple[str, tuple[str, ...] | None], RelationShape] = {}
        """(relation, selected fields or None for all) -> how its rows become items."""
        self.relation_columns: dict[str, tuple[str, ...]] = {}
        """Relation -> every column its loader reads (``model.relation_columns``, worked
        out once: each request's loaders asked for it, ~5 µs a relation)."""

    def _member_columns(self, member_id: str) -> list[str]:
        return next(m.columns() for m in self.model.customer.members if m.id == member_id)

    def request(self) -> RequestView:
        return RequestView(self)

    def member(self, member_id: str) -> MemberSpec:
        return self._members[member_id]

    def member_for(self, ref: RecordRef) -> MemberSpec:
        member = self._by_table.get((ref.source, ref.table))
        if member is None:
            raise QueryError(f"'{ref}' does not name a customer table of a configured source")
        return member

    def tables(self) -> dict[str, list[str]]:
        """Each source's tables the model reads (members, relations and business
        accounts)."""
        tables: dict[str, set[str]] = {name: set() for name in self.connectors}
        for member in self.model.customer.members:
            tables[member.source].add(member.table)
        for rel in self.model.relations.values():
            tables[rel.source].add(rel.table)
        for account in self.model.business.accounts if self.model.business else ():
            tables[account.source].add(account.table)
        return {name: sorted(found) for name, found in tables.items()}

    async def sources(self) -> list[SourceStatus]:
        tables = self.tables()
        names = list(self.connectors)
        healths = await asyncio.gather(*(self.connectors[n].health(tables[n]) for n in names))
        return [
            SourceStatus(n, self.connectors[n].source_kind, h, circuit_state(self.connectors[n]))
            for n, h in zip(names, healths, strict=True)
        ]

    async def write_access(self) -> dict[str, WriteAccess]:
        """Per source: could its credentials write the tables the model reads?"""
        tables = self.tables()
        names = list(self.connectors)
        found = await asyncio.gather(*(self.connectors[n].write_access(tables[n]) for n in names))
        return dict(zip(names, found, strict=True))

    async def open(self) -> None:
        """Opens custview's own registry (the sources connect on first use)."""
        if self.registry is not None:
            await self.registry.open()

    def customer(self, resolution: Resolution, records: list[Record]) -> CustomerView:
        """The customer made of ``records`` (one cluster of ``resolution``)."""
        edges: list[Edge] = []
        if resolution.edges:
            refs = {r.ref for r in records}
            edges = [e for e in resolution.edges if e.a in refs and e.b in refs]
        return CustomerView(records, self.survivorship.build(records), edges=edges)

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.connectors.values()))
        if self.registry is not None:
            await self.registry.aclose()


async def _scan_after(
    connector: Connector,
    member: MemberSpec,
    last: Any,
    limit: int,
    filters: Sequence[Filter] = (),
) -> list[Row]:
    """Up to ``limit`` member rows (matching ``filters``, which the source must be able
    to evaluate) after key ``last`` in key order, however the source can do it: a
    keyset read, a ``key > last`` filter, or (bounded) in memory."""
    caps = connector.capabilities_for(member.table)
    columns = member.columns()
    order = [Sort(member.key)]
    if caps.supports_keyset and caps.can_sort(member.key):
        after = None if last is None else [last]
        request = ScanRequest(member.table, columns, filters, order, limit=limit, after=after)
    elif caps.can_sort(member.key) and caps.can_filter(member.key, "gt"):
        past = [] if last is None else [Filter(member.key, "gt", last)]
        request = ScanRequest(member.table, columns, [*filters, *past], order, limit=limit)
    else:
        request = ScanRequest(member.table, columns, filters)
        rows = [row async for row in connector.scan(request)]
        rows.sort(key=lambda row: row[member.key])
        return [r for r in rows if last is None or r[member.key] > last][:limit]
    return [row async for row in connector.scan(request)]


def _encode_cursor(rank: int, key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([rank, key]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        rank, key = json.loads(raw)
    except (ValueError, TypeError):
        raise QueryError(f"'{cursor}' is not a cursor returned by this API") from None
    if not isinstance(rank, int):
        raise QueryError(f"'{cursor}' is not a cursor returned by this API")
    return rank, key


@dataclass(slots=True)
class RequestView:
    """Per-request state: loaders, resolved customers and source errors."""

    federation: Federation
    errors: list[ConnectorError] = field(default_factory=list)
    rounds: int = 0
    """Stitching rounds this request needed (each: one lookup per table and key column)."""
    _loaders: dict[str, DataLoader[Any, list[Row]]] = field(default_factory=dict)
    _metric_loaders: dict[str, DataLoader[Any, Partial]] = field(default_factory=dict)
    """Metric name -> the loader of the read computing it (shared by that read's metrics)."""
    _groups: GroupRequest | None = None

    def groups(self) -> GroupRequest:
        """Business and household grouping for this request, with its own loaders."""
        if self._groups is None:
            fed = self.federation
            self._groups = GroupRequest(self.model, fed.connectors, fed.stitcher, self.errors)
        return self._groups

    def customer_of(self, records: list[Record]) -> CustomerView:
        """A customer view of already stitched ``records`` (canonical first)."""
        return CustomerView(records, self.federation.survivorship.build(records))

    @property
    def model(self) -> UnifiedModel:
        return self.federation.model

    def segment(self, name: str) -> Expr:
        """The filter of segment ``name``."""
        found = self.federation.segments.get(name)
        if found is None:
            known = ", ".join(self.federation.segments) or "none configured"
            raise QueryError(f"no segment named '{name}' (known: {known})")
        return found

    def failure(self, source: str) -> ConnectorError | None:
        """The first error ``source`` gave during this request, if any."""
        if not self.errors:  # most requests: no generator to find none in
            return None
        return next((e for e in self.errors if e.source == source), None)

    def _collect(self, resolution: Resolution) -> None:
        self.errors.extend(resolution.errors)
        self.rounds += resolution.rounds

    async def _customer(
        self, resolution: Resolution, node: RecordRef | KeyNode
    ) -> CustomerView | None:
        """The customer containing ``node``; with probabilistic matching configured,
        extended by its linked candidates and told its possible duplicates."""
        records = resolution.cluster(node)
        if not records:
            return None
        matcher = self.federation.matcher
        customer = self.federation.customer(resolution, records)
        if matcher is None:
            return customer
        registry = self.federation.registry
        ext = await matcher.extend(
            records,
            # once a batch run has linked everyone, links come from the registry only,
            # so a lookup and a list agree; the live model then reports duplicates
            link=registry is None or not registry.has_run,
            blocked=registry.blocked if registry is not None else None,
        )
        self.errors.extend(ext.errors)
        self.rounds += ext.rounds
        if ext.records:
            records = sorted([*records, *ext.records], key=Record.order)
        golden = self.federation.survivorship.build(records)
        return CustomerView(records, golden, ext.links, ext.duplicates, customer.edges)

    async def explain(self, customer: CustomerView) -> list[MatchReason]:
        """Per member record: the identity keys it shares with the others, or the
        model score that linked it."""
        stitcher = self.federation.stitcher
        keys = {r.ref: set(stitcher.keys_of(r)) for r in customer.records}
        count: dict[KeyNode, int] = {}
        for found in keys.values():
            for key in found:
                count[key] = count.get(key, 0) + 1
        reasons = []
        by_ref = {r.ref: r for r in customer.records}
        manual = {e.a for e in customer.edges if e.kind == "manual"}
        manual |= {e.b for e in customer.edges if e.kind == "manual"}
        batch = [e for e in customer.edges if e.kind == "model" and e.b not in customer.links]
        matcher = self.federation.matcher
        accounts: AccountRows = {}
        if batch and matcher is not None:
            read = {r.ref: r for e in batch for r in (by_ref[e.a], by_ref[e.b])}
            self.errors.extend(await matcher.read_accounts(read.values(), accounts))
        for edge in batch:
            customer.links[edge.b] = self._batch_link(by_ref[edge.b], by_ref[edge.a], accounts)
        for record in customer.records:
            shared = sorted({name for name, value in keys[record.ref] if count[(name, value)] > 1})
            link = customer.links.get(record.ref)
            if record.ref in manual:
                reasons.append(MatchReason(record, "manual", shared, link))
            elif link is not None:
                reasons.append(MatchReason(record, "model", shared, link))
            elif shared:
                reasons.append(MatchReason(record, "key", shared))
            else:
                reasons.append(MatchReason(record, "seed", shared))
        return reasons

    def _batch_link(self, record: Record, matched: Record, accounts: AccountRows) -> Link:
        """A batch link explained: the same model scores the pair again, in process."""
        matcher = self.federation.matcher
        assert matcher is not None  # batch links are followed only with a model
        score = matcher.model.score(
            matcher.match_record(record, accounts), matcher.match_record(matched, accounts)
        )
        return Link(record.ref, matched.ref, score)

    async def by_key(self, key_name: str, value: str) -> CustomerView | None:
        resolution = await self.federation.stitcher.resolve(keys=[(key_name, value)])
        self._collect(resolution)
        return await self._customer(resolution, (key_name, value))

    async def by_email(self, email: str) -> CustomerView | None:
        name = self._key_named("email", "email_provider")
        provider = self.model.identity.keys[name].normalize == "email_provider"
        normal = normalize_email(email, provider_rules=provider)
        if normal is None:
            raise QueryError(f"'{email}' is not an email address")
        return await self.by_key(name, normal)

    async def by_phone(self, phone: str) -> CustomerView | None:
        normal = normalize_phone(phone, self.federation.default_region)
        if normal is None:
            raise QueryError(f"'{phone}' is not a phone number")
        return await self.by_key(self._key_named("phone"), normal)

    def _key_named(self, normalizer: str, *alike: str) -> str:
        for name, spec in self.model.identity.keys.items():
            if spec.normalize in (normalizer, *alike):
                return name
        raise QueryError(f"no identity key normalises {normalizer}s in this configuration")

    async def by_ref(self, ref: RecordRef) -> CustomerView | None:
        seed = await self.record(ref)
        if seed is None:
            return None
        resolution = await self.federation.stitcher.resolve(records=[seed])
        self._collect(resolution)
        return await self._customer(resolution, seed.ref)

    async def by_id(self, customer_id: str) -> CustomerView | None:
        return await self.by_ref(RecordRef.from_customer_id(customer_id))

    async def record(self, ref: RecordRef) -> Record | None:
        """The member record ``ref`` names, read from its source; None if it is gone."""
        member = self.federation.member_for(ref)
        stitcher = self.federation.stitcher
        key = stitcher.typed_key(member, ref.key)
        if key is None:
            raise QueryError(f"'{ref}': {member.id} keys are integers")
        (rows,) = await stitcher.fetch(member, [key])
        return stitcher.record(member, rows[0]) if rows else None

    # -- steward decisions (custview's own registry; never a source) ------------

    def _registry(self) -> IdentityRegistry:
        registry = self.federation.registry
        if registry is None:
            raise QueryError("no identity registry is configured (see 'registry' in the config)")
        return registry

    async def _existing(self, ref: RecordRef) -> Record:
        record = await self.record(ref)
        if record is None:
            raise QueryError(f"'{ref}' does not exist in source '{ref.source}'")
        return record

    async def link(self, actor: str, a: RecordRef, b: RecordRef) -> Decision:
        """A steward says records ``a`` and ``b`` are the same customer."""
        registry = self._registry()
        await asyncio.gather(self._existing(a), self._existing(b))
        return await registry.decide(actor, "link", str(a), str(b))

    async def unlink(self, actor: str, ref: RecordRef) -> tuple[Decision, RecordRef | None]:
        """A steward takes record ``ref`` out of its customer; returns the decision and
        a record that stayed with the customer (to show what remains)."""
        registry = self._registry()
        registry.refuse_erased(str(ref))
        before = await self.by_ref(ref)
        if before is None:
            raise QueryError(f"'{ref}' does not exist in source '{ref.source}'")
        mates = [r.ref for r in before.records if r.ref != ref]
        decision = await registry.decide(actor, "unlink", str(ref))
        return decision, mates[0] if mates else None

    async def not_duplicate(self, actor: str, a: str, b: str) -> Decision:
        """A steward says ``a`` and ``b`` (customer ids or record refs) are different
        people: the model never links them and never lists one as the other's
        possible duplicate. Records joined by shared keys stay joined (unlink one)."""
        registry = self._registry()
        left, right = (
            RecordRef.from_customer_id(x) if x.startswith("cus_") else RecordRef.parse(x)
            for x in (a, b)
        )
        if left == right:
            raise QueryError("a decision needs two different records")
        await asyncio.gather(self._existing(left), self._existing(right))
        return await registry.decide(actor, "not_duplicate", str(left), str(right))

    async def undo(self, actor: str, seq: int) -> Decision:
        return await self._registry().undo(actor, seq)

    def decisions(self, customer: CustomerView | None = None) -> list[Decision]:
        registry = self.federation.registry
        if registry is None:
            return []
        refs = None if customer is None else [str(r.ref) for r in customer.records]
        return registry.decisions(refs)

    async def page(self, first: int, after: str | None) -> Page:
        """Customers in a stable order: by canonical member record (member rank, key).

        A record is emitted when it is the canonical (first) record of its
        customer, so every customer appears exactly once; the cursor is the
        position of the last emitted record.
        """
        if first < 0:
            raise QueryError("'first' must not be negative")
        rank, last = _decode_cursor(after) if after else (0, None)
        members = self.model.customer.members
        found: list[tuple[str, CustomerView]] = []
        while rank < len(members) and len(found) <= first:
            member = members[rank]
            want = first + 1 - len(found)
            limit = want + want // 4 + 2
            connector = self.federation.connectors[member.source]
            rows = await _scan_after(connector, member, last, limit)
            if not rows:
                rank, last = rank + 1, None
                continue
            seeds = [self.federation.stitcher.record(member, row) for row in rows]
            resolution = await self.federation.stitcher.resolve(records=seeds)
            self._collect(resolution)
            for seed in seeds:
                last = seed.key
                cluster = resolution.cluster(seed.ref)
                if cluster and cluster[0].ref == seed.ref:
                    view = self.federation.customer(resolution, cluster)
                    found.append((_encode_cursor(rank, seed.key), view))
                    if len(found) > first:
                        break
        page = found[:first]
        return Page(page, len(found) > first, page[-1][0] if page else after)

    def known_metric(self, customer: CustomerView, name: str) -> tuple[bool, Any]:
        """``(True, value)`` when this request worked metric ``name`` out for the
        customer already and its source has not failed since, else ``(False, None)``:
        a listed customer's metric read without a coroutine."""
        values = customer.metric_values
        if not values or name not in values:
            return False, None
        spec = self.model.metrics[name]
        if self.errors and self.failure(self.model.relations[spec.relation].source):
            return False, None
        return True, values[name]

    async def metric(self, customer: CustomerView, name: str) -> Any:
        """A computed metric of the customer, batched with every other customer's."""
        return (await self.metric_many([customer], name))[0]

    async def metric_many(self, customers: Sequence[CustomerView], name: str) -> list[Any]:
        """A computed metric of each customer: one batched load for all of them (a
        value worked out already is kept on the customer: a listed customer's metric
        was often loaded by the filter or sort that found it)."""
        spec = self.model.metrics[name]
        rel = self.model.relations[spec.relation]
        failure = self.failure(rel.source)
        if failure is not None:
            raise failure
        known = [
            c.metric_values.get(name, _UNKNOWN) if c.metric_values else _UNKNOWN for c in customers
        ]
        missing = [c for c, v in zip(customers, known, strict=True) if v is _UNKNOWN]
        if not missing:
            return known
        member = rel.parent.member
        owned = [[r.key for r in c.records if r.member.id == member] for c in missing]
        keys = list(dict.fromkeys(k for ks in owned for k in ks))
        partials: list[Partial] = []
        if keys:
            loader = self._metric_loader(name, rel)
            try:
                partials = await loader.load_many(keys)
            except asyncio.CancelledError as cancelled:
                partials = await load_again(loader, keys, cancelled)
        found = dict(zip(keys, partials, strict=True))
        values = [metrics.combine(spec, [found[k].get(name) for k in ks]) for ks in owned]
        for customer, value in zip(missing, values, strict=True):
            if customer.metric_values is None:
                customer.metric_values = {}
            customer.metric_values[name] = value
        if len(missing) == len(customers):
            return values
        computed = iter(values)
        return [next(computed) if v is _UNKNOWN else v for v in known]

    def _metric_loader(self, name: str, rel: RelationSpec) -> DataLoader[Any, Partial]:
        """The loader of metric ``name`` and of the metrics the same read computes
        (:func:`metrics.computed_with`: those sharing its relation and ``where``, or
        its relation's pushed metrics when the source filters each aggregate): metrics
        of other reads are not computed."""
        loader = self._metric_loaders.get(name)
        if loader is None:
            connector = self.federation.connectors[rel.source]
            specs = metrics.computed_with(connector, rel, self.model.metrics, name)

            async def load(keys: list[Any]) -> list[Partial]:
                return await metrics.compute(connector, rel, specs, keys)

            size = connector.capabilities_for(rel.table).max_batch_size
            from strawberry.dataloader import DataLoader

            loader = DataLoader(load_fn=load, max_batch_size=size)
            self._metric_loaders.update(dict.fromkeys(specs, loader))
        return loader

    def _loader(self, name: str, rel: RelationSpec) -> DataLoader[Any, list[Row]]:
        loader = self._loaders.get(name)
        if loader is None:
            connector = self.federation.connectors[rel.source]
            known = self.federation.relation_columns.get(name)
            if known is None:
                known = tuple(self.model.relation_columns(name))
                self.federation.relation_columns[name] = known
            columns = list(known)

            async def load(keys: list[Any]) -> list[list[Row]]:
                return await connector.lookup_many(rel.table, rel.parent.column, keys, columns)

            size = connector.capabilities_for(rel.table).max_batch_size
            from strawberry.dataloader import DataLoader

            loader = DataLoader(load_fn=load, max_batch_size=size)
            self._loaders[name] = loader
        return loader

    async def prefetch_related(self, customers: Sequence[CustomerView], name: str) -> None:
        """Reads the rows of relation ``name`` for all ``customers`` now, in the
        statement their fields' loads would batch into (the same keys in the same
        order), so that each customer's :meth:`related_rows` finds its rows read.
        Nothing is read when the relation's batch has begun, when the keys do not fit
        one batch or when the source failed already; a failed read is each key's
        answer (its fields fail with it), as a failed batch is."""
        rel = self.model.relations[name]
        if self.failure(rel.source) is not None:
            return
        member = rel.parent.member
        keys = [
            r.key
            for c in customers
            if isinstance(c, CustomerView)
            for r in c.records
            if r.member.id == member
        ]
        if not keys:
            return
        loader = self._loader(name, rel)
        if _idle(loader, keys):
            with suppress(Exception):  # the keys' futures hold it
                await _load_now(loader, keys)

    async def related_rows(
        self, customer: CustomerView, name: str, alone: bool = False
    ) -> list[Row]:
        """The raw source rows of relation ``name`` for the customer, batched per request.

        ``alone``: the caller knows no other customer's rows of this relation are
        asked for in this request (a single customer's fields): then the lookup is
        made at once, without waiting a loop turn for a batch — the same statement
        the batch would be, its rows cached for the request as the loader caches them.
        """
        rel = self.federation.model.relations[name]  # :attr:`model`, without its frame
        failure = self.failure(rel.source)
        if failure is not None:
            # the customer's records in that source could not even be found
            raise failure
        keys = [r.key for r in customer.records if r.member.id == rel.parent.member]
        if not keys:
            return []
        loader = self._loader(name, rel)
        groups: Sequence[list[Row]]
        try:
            if alone and _idle(loader, keys):
                groups = await _load_now(loader, keys)
            elif len(keys) == 1:
                # the usual customer (one record in the table's member): its key's
                # future awaited as it is, not through a gather of one (~3.5 µs and a
                # loop turn)
                return list(await loader.load(keys[0]))
            else:
                groups = _read(loader, keys) or await loader.load_many(keys)
        except asyncio.CancelledError as cancelled:
            # a read shared with a cancelled prefetch or field, unless this one is
            groups = await load_again(loader, keys, cancelled)
        return [row for group in groups for row in group]

    async def related(
        self,
        customer: CustomerView,
        name: str,
        first: int | None = None,
        fields: Collection[str] | None = None,
        alone: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows of relation ``name`` owned by the customer's member records (with
        ``fields``, only those fields are read and coerced; ``alone``: see
        :meth:`related_rows`)."""
        rows = await self.related_rows(customer, name, alone)
        key = (name, None if fields is None else tuple(fields))
        shape = self.federation.relation_shapes.get(key)
        if shape is None:
            shape = RelationShape.of(self.model.relations[name], fields)
            self.federation.relation_shapes[key] = shape
        items = shape.items(rows)
        return items if first is None else items[: max(first, 0)]


def _idle(loader: DataLoader[Any, list[Row]], keys: list[Any]) -> bool:
    """Whether ``loader`` has no batch waiting to be sent and none of ``keys``
    asked for yet in this request, and the keys fit one batch."""
    batch = loader.batch
    if not (
        (batch is None or batch.dispatched or not batch.tasks)
        and len(keys) <= (loader.max_batch_size or len(keys))
    ):
        return False
    get = loader.cache_map.get
    for key in keys:  # noqa: SIM110 (a loop, not all() of a generator: no frame per key)
        if get(key) is not None:
            return False
    return True


def _read(loader: DataLoader[Any, list[Row]], keys: list[Any]) -> list[list[Row]]:
    """The keys' rows when every one is read already (:meth:`RequestView.prefetch_related`),
    without a gather of their futures and the loop turn it waits; else empty."""
    found = []
    for key in keys:
        future = loader.cache_map.get(key)
        if future is None or not future.done() or future.cancelled() or future.exception():
            return []
        found.append(future.result())
    return found


async def _load_now(loader: DataLoader[Any, list[Row]], keys: list[Any]) -> list[list[Row]]:
    """``loader.load_many(keys)`` as one call of its load function, now: the keys'
    futures are in its cache first, so a load of the same keys meanwhile (the
    timeline reading the same relation) waits for this one as it would for the batch."""
    unique = list(dict.fromkeys(keys))
    futures = [asyncio.get_running_loop().create_future() for _ in unique]
    for key, future in zip(unique, futures, strict=True):
        loader.cache_map.set(key, future)
    try:
        values = list(await loader.load_fn(unique))
        if len(values) != len(unique):
            raise ValueError(f"the loader answered {len(values)} groups for {len(unique)} keys")
    except BaseException as error:
        for key, future in zip(unique, futures, strict=True):
            if future.done():  # cancelled by a task that waited for it (and was cancelled)
                continue
            if isinstance(error, Exception):
                future.set_exception(error)
                future.exception()  # retrieved: whoever awaits it sees it
            else:
                # cancelled: nothing read, nothing left for a later read to find (a
                # later prefetch or read at once of these keys reads them); whoever
                # waits for them reads them again (:func:`resolvers.loaders.load_again`)
                if loader.cache_map.get(key) is future:
                    loader.cache_map.delete(key)
                future.cancel()
        raise
    failed: BaseException | None = None
    for future, value in zip(futures, values, strict=True):
        # a future done already was cancelled by a task that waited for it (and was
        # cancelled): the others waiting read the key again (:func:`load_again`)
        if isinstance(value, BaseException):
            failed = failed or value
            if not future.done():
                future.set_exception(value)
                future.exception()
        elif not future.done():
            future.set_result(value)
    if failed is not None:
        raise failed
    found = dict(zip(unique, values, strict=True))
    return [found[key] for key in keys]
