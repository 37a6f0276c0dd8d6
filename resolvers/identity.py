"""Deterministic identity stitching at read time.

Starting from seed records or seed keys (a normalised email, an E.164
phone), every member table is asked — one batched lookup per table and round
covering all its key columns, all sources concurrently — for records that
share a key; the keys of the records found feed the next round, until
nothing new turns up. Records and keys form a graph; its connected components are customers.
A key held by more records of one table than ``identity.max_key_fanout``
(a shared info@ mailbox, a switchboard number) joins none of that table's
records, whichever record stitching started from: the edges from records
to keys are kept and joined only when the clusters are built, once every
lookup has said which keys are crowded where (as the export walk does).

With an identity registry, the graph has two more kinds of edge: steward
links (hard, like a shared key) and batch links from ``custview resolve``
at or above the link threshold (soft: they never join two groups a steward
marked as not duplicates; two such records that share a key, or a steward
link, are still one customer). Records a steward unlinked follow no key and
no batch link. Linked records are fetched by primary key in the same rounds;
a link to a record that no source holds joins nothing.
A customer holding a record of an erased person (a registry tombstone) is
left out of every cluster: the record still joins others by key while the
sources keep it, so the person's other records stay hidden too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, TypeVar

from connectors import Connector, ConnectorError, KeyLookup, LookupTransform, Row
from connectors.observe import note
from resolvers.model import MemberSpec, UnifiedModel
from resolvers.normalize import NORMALIZERS, normalize_email, normalize_phone, normalize_phones
from resolvers.records import Record, RecordRef
from resolvers.registry import IdentityRegistry
from resolvers.tasks import settled

_T = TypeVar("_T")

KeyNode = tuple[str, str]
"""An identity key: (key name, normalised value)."""
Node = RecordRef | KeyNode
GraphNode = str | KeyNode
"""A node of the stitching graph: a record by its reference's text (a ``str``, so
hashed and compared in C: ~2,000 finds a page), or an identity key."""


def _graph_node(node: Node) -> GraphNode:
    return node.text if isinstance(node, RecordRef) else node


def link_order(score: float, a: str, b: str) -> tuple[float, str, str]:
    """The order batch links are followed in: best score first, then by the pair's
    refs, so equal scores (common: equal comparison vectors score the same) are
    followed in the same order whichever record stitching started from."""
    return (-score, min(a, b), max(a, b))


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[GraphNode, GraphNode] = {}

    def find(self, node: GraphNode) -> GraphNode:
        # ``is`` first: a root is usually its own parent object; a loop, not
        # recursion (~2,000 finds a page)
        above = self.parent.setdefault(node, node)
        if above is node or above == node:
            return node
        return self.above(node, above)

    def above(self, node: GraphNode, parent_of: GraphNode) -> GraphNode:
        """:meth:`find` of a node that is not a root, whose parent the caller read
        (the walk up, every node on it then pointed at the root)."""
        parent = self.parent
        path = [node]
        root = parent_of
        above = parent[root]
        while above is not root and above != root:
            path.append(root)
            root = above
            above = parent[root]
        for step in path:
            parent[step] = root
        return root

    def union(self, a: GraphNode, b: GraphNode) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra is not rb and ra != rb:
            self.parent[ra] = rb


@dataclass(frozen=True, slots=True)
class Edge:
    """A registry edge followed while stitching."""

    a: RecordRef
    b: RecordRef
    kind: str
    """``manual`` (a steward's link) or ``model`` (a batch link)."""
    score: float | None = None


@dataclass(slots=True)
class Resolution:
    """The records found and how they group into customers."""

    records: dict[RecordRef, Record] = field(default_factory=dict)
    errors: list[ConnectorError] = field(default_factory=list)
    rounds: int = 0
    edges: list[Edge] = field(default_factory=list)
    registry: IdentityRegistry | None = None
    detached_holders: dict[KeyNode, list[RecordRef]] = field(default_factory=dict)
    """Key -> records holding it that a steward unlinked (they follow no key)."""
    key_edges: list[tuple[RecordRef, KeyNode, str]] = field(default_factory=list)
    """(record, key it holds, its member id): joined when clusters are built."""
    crowded: set[tuple[KeyNode, str]] = field(default_factory=set)
    """(key, member id): the key is held by more of that table's records than the
    fan-out limit, so it joins none of them."""
    _known: dict[tuple[int, Any], Record] = field(default_factory=dict)
    """(member rank, key as read) -> the record found: a row found again (by another
    key, in a later round) reuses it and its reference (one graph node object, so
    the union-find compares by identity; no reference built again)."""
    _uf: _UnionFind = field(default_factory=_UnionFind)
    _soft: _UnionFind = field(default_factory=_UnionFind)
    _softened: bool = False
    """Whether a batch link joined two groups (:meth:`_merge_soft`): until one does,
    every node is its own root in ``_soft`` and :meth:`_root` does not ask it."""
    _clusters: dict[GraphNode, list[Record]] | None = None

    def _root(self, node: GraphNode) -> GraphNode:
        root = self._uf.find(node)
        return self._soft.find(root) if self._softened else root

    def _merge_soft(self) -> None:
        """Steward links join records at once; then batch links join those groups, in
        :func:`link_order`, unless a steward marked a record of one group as not a
        duplicate of a record of the other. A link to a record no source holds (any
        more) joins nothing: whether it did would depend on where stitching started."""
        records = self.records
        held = [e for e in self.edges if e.a in records and e.b in records]
        if not held:
            return
        for edge in held:
            if edge.kind == "manual":
                self._uf.union(edge.a.text, edge.b.text)
        refs: dict[GraphNode, set[str]] = defaultdict(set)
        for ref in records:
            refs[self._uf.find(ref.text)].add(ref.text)
        soft = sorted(
            (e for e in held if e.kind == "model"),
            key=lambda e: link_order(e.score or 0.0, str(e.a), str(e.b)),
        )
        for edge in soft:
            ra, rb = self._root(edge.a.text), self._root(edge.b.text)
            if ra == rb:
                continue
            left, right = refs.get(ra, set()), refs.get(rb, set())
            if self.registry is not None and self.registry.blocked(left, right):
                continue
            self._softened = True
            self._soft.union(ra, rb)
            refs[self._soft.find(ra)] = left | right

    def cluster(self, node: Node) -> list[Record]:
        """The records of the customer containing ``node``, in listing order (the first
        one represents the customer in lists; :func:`canonical` names it). Empty for
        a customer holding an erased record: an erased person is in no answer."""
        if self._clusters is None:
            crowded, climb, parent = self.crowded, self._uf.above, self._uf.parent
            seen = parent.setdefault
            for ref, key, member in self.key_edges:  # union, written out
                if crowded and (key, member) in crowded:
                    continue
                # find, written out for a node that is its own root (new, or a root
                # already: most) or a root's child, which need no walk up the tree
                a = ref.text
                ra = seen(a, a)
                if ra is not a and ra != a:
                    up = parent[ra]
                    if up is not ra and up != ra:
                        ra = climb(a, ra)
                rb = seen(key, key)
                if rb is not key and rb != key:
                    up = parent[rb]
                    if up is not rb and up != rb:
                        rb = climb(key, rb)
                if ra is not rb and ra != rb:
                    parent[ra] = rb
            self._merge_soft()
            groups: dict[GraphNode, list[Record]] = defaultdict(list)
            for ref, record in self.records.items():
                groups[self._root(ref.text)].append(record)
            for members in groups.values():
                members.sort(key=Record.order)
            registry = self.registry
            self._clusters = {
                root: members
                for root, members in groups.items()
                if registry is None or not any(registry.is_erased(str(r.ref)) for r in members)
            }
        found = self._clusters.get(self._root(_graph_node(node)), [])
        holders = self.detached_holders.get(node) if isinstance(node, tuple) else None
        if not found and holders:
            # only unlinked records hold the key: the lookup answers the first of them
            first = min((self.records[r] for r in holders), key=Record.order)
            return self.cluster(first.ref)
        return found


def _variants(
    values: Sequence[str], lookup_values: Callable[[str], tuple[str, ...]] | None
) -> dict[str, set[str]]:
    """Value sent to a source -> the normalised keys it may stand for, in the
    order of ``values`` (each value's own variants in their order)."""
    if lookup_values is None:
        return {value: {value} for value in values}
    variants: dict[str, set[str]] = {}
    for value in values:
        for variant in lookup_values(value):
            held = variants.get(variant)
            if held is None:
                variants[variant] = {value}
            else:
                held.add(value)
    return variants


@dataclass(slots=True)
class _Lookup:
    member: MemberSpec
    rank: int
    key_name: str
    column: str
    variants: dict[str, set[str]]
    """Value sent to the source -> the normalised keys it may stand for."""
    transform: LookupTransform


_EMAIL = NORMALIZERS["email"].normalize
"""The email key's normaliser: :func:`resolvers.normalize.normalize_email` of the value."""

_KeyColumns = tuple[tuple[str, LookupTransform, Callable[[str], tuple[str, ...]] | None], ...]


class Stitcher:
    """Resolves seeds to customers over the configured member tables."""

    def __init__(
        self,
        model: UnifiedModel,
        connectors: Mapping[str, Connector],
        registry: IdentityRegistry | None = None,
    ) -> None:
        self.model = model
        self.members = model.customer.members
        self.connectors = connectors
        self.registry = registry
        spec = model.identity.probabilistic
        self.link_threshold = spec.link if spec is not None else None
        """Batch links count from this probability up (none without a model)."""
        self._rank = {m.id: i for i, m in enumerate(self.members)}
        self._by_table = {(m.source, m.table): m for m in self.members}
        self._by_id = {m.id: m for m in self.members}
        self.extra_columns: dict[str, list[str]] = {}
        self._key_readers: dict[int, tuple[MemberSpec, Callable[[Row], list[KeyNode]], str]] = {}
        self._key_columns: dict[tuple[int, str], tuple[Any, MemberSpec, _KeyColumns]] = {}
        """(id(member), key) -> the capabilities and member it was worked out for,
        and :meth:`_columns_of`'s answer."""
        """Member id -> columns read besides the member's own (e.g. match inputs)."""

    def columns(self, member: MemberSpec) -> list[str]:
        """Every column read from ``member``'s table, key first."""
        return [*member.read_columns, *self.extra_columns.get(member.id, ())]

    def rank(self, member: MemberSpec) -> int:
        return self._rank[member.id]

    def record(self, member: MemberSpec, row: Row) -> Record:
        return Record(member, self._rank[member.id], row)

    def member_for(self, ref: RecordRef) -> MemberSpec | None:
        return self._by_table.get((ref.source, ref.table))

    def keys_of(self, record: Record) -> Iterable[KeyNode]:
        return self.keys_of_row(record.member, record.row)

    def keys_of_row(self, member: MemberSpec, row: Row) -> Iterable[KeyNode]:
        """The normalised identity keys of one ``member`` row."""
        region = row.get(member.region) if member.region else None
        for key_name, columns in member.identity.items():
            spec = self.model.identity.keys[key_name]
            normalize = NORMALIZERS[spec.normalize].normalize
            for column in columns:
                value = normalize(row.get(column), region, spec.default_region)
                if value:
                    yield (key_name, value)

    def _key_plan(
        self, member: MemberSpec
    ) -> list[tuple[str, Callable[[object, object, str | None], str | None], str, str | None]]:
        """Each identity column of ``member``: its key name, normaliser, column and
        default region, in the order its keys are read."""
        return [
            (key_name, NORMALIZERS[spec.normalize].normalize, column, spec.default_region)
            for key_name, columns in member.identity.items()
            for spec in [self.model.identity.keys[key_name]]
            for column in columns
        ]

    def key_reader(self, member: MemberSpec) -> Callable[[Row], list[KeyNode]]:
        """:meth:`keys_of_row` for many rows of one member (each key's spec and
        normaliser looked up once, not once per row)."""
        plan = self._key_plan(member)
        region_column = member.region

        def read(row: Row) -> list[KeyNode]:
            region = row.get(region_column) if region_column else None
            found = []
            for key_name, normalize, column, default in plan:
                value = normalize(row.get(column), region, default)
                if value:
                    found.append((key_name, value))
            return found

        return read

    def key_columns(self, member: MemberSpec) -> Callable[[list[Row]], list[tuple[str, list[Any]]]]:
        """:meth:`key_reader` a column at a time, for many rows of one member: each
        identity column's key name and normalised value of every row (falsy where the
        row holds no key there), in :meth:`key_reader`'s order. The values are read out
        of the rows and normalised by C-level maps (no Python frame per row)."""
        plan = self._key_plan(member)
        region_column = member.region

        def read(rows: list[Row]) -> list[tuple[str, list[Any]]]:
            regions = list(map(dict.get, rows, repeat(region_column))) if region_column else None
            found = []
            for key_name, normalize, column, default in plan:
                values = map(dict.get, rows, repeat(column))
                if normalize is normalize_phone:  # each distinct region read once
                    keys = normalize_phones(values, regions or repeat(None), default)
                elif normalize is _EMAIL:
                    keys = list(map(normalize_email, values))
                else:
                    keys = list(map(normalize, values, regions or repeat(None), repeat(default)))
                found.append((key_name, keys))
            return found

        return read

    async def resolve(
        self, records: Sequence[Record] = (), keys: Sequence[KeyNode] = ()
    ) -> Resolution:
        registry = self.registry
        res = Resolution(registry=registry)
        if registry is not None:
            try:
                await registry.refresh()
            except ConnectorError as exc:  # stitch on the decisions already known
                res.errors.append(exc)
        queried: set[KeyNode] = set()
        frontier: set[KeyNode] = set(keys)
        linked: set[RecordRef] = set()
        for key in keys:
            res._uf.find(key)
        for record in records:
            ref = record.ref  # a property: read once
            frontier |= self._add(res, record, ref) - queried
            if registry is not None:  # :meth:`_edges` finds none without one
                linked |= self._edges(res, ref)
        while (frontier or linked) and res.rounds < self.model.identity.max_rounds:
            res.rounds += 1
            queried |= frontier
            found, fetched = await self._round(res, frontier, linked - set(res.records))
            frontier, linked = set(), set()
            for record, key in found:
                ref = record.ref
                if ref not in res.records:
                    frontier |= self._add(res, record, ref)
                    if registry is not None:
                        linked |= self._edges(res, ref)
                if registry is not None and registry.is_detached(ref.text):  # _detached
                    res.detached_holders.setdefault(key, []).append(ref)
                else:
                    res.key_edges.append((ref, key, record.member.id))
            for record in fetched:
                ref = record.ref
                if ref not in res.records:
                    frontier |= self._add(res, record, ref)
                    if registry is not None:
                        linked |= self._edges(res, ref)
            frontier -= queried
        if frontier or linked:
            note(
                f"identity.max_rounds ({self.model.identity.max_rounds}) reached: "
                f"{len(frontier)} keys and {len(linked)} linked records not followed"
            )
        return res

    def _detached(self, ref: RecordRef) -> bool:
        return self.registry is not None and self.registry.is_detached(str(ref))

    def _add(self, res: Resolution, record: Record, ref: RecordRef) -> set[KeyNode]:
        """Note ``record`` (whose ``ref`` the caller read) found; its identity keys."""
        res.records[ref] = record
        res._known.setdefault((record.rank, record.key), record)
        registry = self.registry
        if registry is not None and registry.is_detached(ref.text):  # :meth:`_detached`
            return set()  # a steward unlinked it: it follows no key
        read, member_id = self._key_reader_of(record.member)
        keys = set(read(record.row))
        # (ref, key, member_id) of each key, made by C-level iterators (no generator frame)
        res.key_edges.extend(zip(repeat(ref), keys, repeat(member_id)))
        return keys

    def _key_reader_of(self, member: MemberSpec) -> tuple[Callable[[Row], list[KeyNode]], str]:
        """The member's compiled :meth:`key_reader` and its id (a formatted string),
        made once per member (by identity: the model's specs live as long as this)."""
        found = self._key_readers.get(id(member))
        if found is None or found[0] is not member:
            found = self._key_readers[id(member)] = (member, self.key_reader(member), member.id)
        return found[1], found[2]

    def _edges(self, res: Resolution, ref: RecordRef) -> set[RecordRef]:
        """Registry edges of ``ref`` (steward links, batch links at or above the
        threshold), followed when clusters are built. Returns refs still to fetch."""
        registry = self.registry
        if registry is None:
            return set()
        wanted: set[RecordRef] = set()
        text = str(ref)
        for other in registry.manual_edges(text):
            other_ref = self._parse(other)
            if other_ref is not None:
                res.edges.append(Edge(ref, other_ref, "manual"))
                wanted.add(other_ref)
        if self.link_threshold is not None:
            for other, score in registry.machine_edges(text).items():
                other_ref = self._parse(other)
                if other_ref is not None and score >= self.link_threshold:
                    res.edges.append(Edge(ref, other_ref, "model", score))
                    wanted.add(other_ref)
        return {w for w in wanted if w not in res.records}

    def _parse(self, text: str) -> RecordRef | None:
        """A registry ref that still names a configured member table."""
        try:
            ref = RecordRef.parse(text)
        except ConnectorError:
            return None
        return ref if self.member_for(ref) is not None else None

    def key_lookups(self, records: Sequence[Record]) -> list[tuple[MemberSpec, str, list[str]]]:
        """``(member, column, values sent)`` of every lookup that finds ``records``
        by their identity keys, pushed-down variants included."""
        nodes = {node for record in records for node in self.keys_of(record)}
        return [(lk.member, lk.column, list(lk.variants)) for lk in self._plan(nodes)]

    def _plan(self, frontier: set[KeyNode]) -> list[_Lookup]:
        by_name: dict[str, set[str]] = defaultdict(set)
        for name, value in frontier:
            by_name[name].add(value)
        # the values sent for a key (phone digit forms) are the same for every column
        # looked up with the same transform: worked out once per round
        sent_for: dict[tuple[str, str], dict[str, set[str]]] = {}
        lookups = []
        for rank, member in enumerate(self.members):
            for key_name in member.identity:
                values = by_name.get(key_name)
                if not values:
                    continue
                for column, transform, sent in self._columns_of(member, key_name):
                    variants = sent_for.get((key_name, transform))
                    if variants is None:
                        variants = sent_for[key_name, transform] = _variants(sorted(values), sent)
                    lookups.append(_Lookup(member, rank, key_name, column, variants, transform))
        return lookups

    def _columns_of(self, member: MemberSpec, key_name: str) -> _KeyColumns:
        """``(column, transform, values sent for a normal form or None)`` of each
        column of ``member`` that finds key ``key_name``, as its source's
        capabilities allow: worked out once per capabilities object (two stitching
        rounds a customer 360 asked the same of each member table)."""
        caps = self.connectors[member.source].capabilities_for(member.table)
        cached = self._key_columns.get((id(member), key_name))
        if cached is not None and cached[0] is caps and cached[1] is member:
            return cached[2]
        normalizer = NORMALIZERS[self.model.identity.keys[key_name].normalize]
        found: list[tuple[str, LookupTransform, Callable[[str], tuple[str, ...]] | None]] = []
        for column in member.identity[key_name]:
            if caps.can_lookup(column, normalizer.transform):
                transform = normalizer.transform
            elif caps.can_lookup(column, "exact"):
                # the source compares as stored: send the normal form itself
                transform = "exact"
            else:
                continue
            sent = normalizer.lookup_values if transform != "exact" else None
            found.append((column, transform, sent))
        columns = tuple(found)
        self._key_columns[id(member), key_name] = (caps, member, columns)
        return columns

    async def _round(
        self, res: Resolution, frontier: set[KeyNode], refs: set[RecordRef]
    ) -> tuple[list[tuple[Record, KeyNode]], list[Record]]:
        lookups = self._plan(frontier)
        by_member: dict[str, list[Any]] = defaultdict(list)
        for ref in sorted(refs, key=str):
            member = self.member_for(ref)
            if member is not None:
                key = self.typed_key(member, ref.key)
                if key is not None:
                    by_member[member.id].append(key)
        fetches = [(self._member(m), keys) for m, keys in by_member.items()]
        tables: dict[str, list[_Lookup]] = defaultdict(list)
        for lookup in lookups:
            tables[lookup.member.id].append(lookup)
        groups = list(tables.values())
        # every lookup, then every fetch, at once (the first in this task)
        results = await settled(
            [*(self._lookup(g) for g in groups), *(self.fetch(m, keys) for m, keys in fetches)]
        )
        looked: list[list[list[list[Row]]] | BaseException] = results[: len(groups)]
        read: list[list[list[Row]] | BaseException] = results[len(groups) :]
        found: list[tuple[Record, KeyNode]] = []
        fetched: list[Record] = []
        for group, result in zip(groups, looked, strict=True):
            # a list (rows found) is its own :meth:`_ok`: asked only of anything else
            per_lookup = result if result.__class__ is list else self._ok(res, result)
            if per_lookup:  # else the source failed: recorded, nothing found there
                for lookup, rows in zip(group, per_lookup, strict=True):
                    found.extend(self._matches(res, lookup, rows))
        for (member, _), by_key in zip(fetches, read, strict=True):
            rows_of = by_key if by_key.__class__ is list else self._ok(res, by_key)
            fetched.extend(self.record(member, row) for rows in rows_of for row in rows)
        return found, fetched

    @staticmethod
    def _ok(res: Resolution, result: list[_T] | BaseException) -> list[_T]:
        """A batch's result; a source's failure is recorded (and reads as nothing)."""
        if isinstance(result, ConnectorError):
            res.errors.append(result)
            return []
        if isinstance(result, BaseException):
            raise result
        return result

    def _member(self, member_id: str) -> MemberSpec:
        return self._by_id[member_id]

    @staticmethod
    def typed_key(member: MemberSpec, key: str) -> Any:
        """A reference's key as the member table stores it; None when it cannot be."""
        if member.key_type == "int":
            return int(key) if key.lstrip("-").isdigit() else None
        return key

    async def fetch(self, member: MemberSpec, keys: list[Any]) -> list[list[Row]]:
        """Member rows by primary key, one batched lookup."""
        return await self.connectors[member.source].lookup_many(
            member.table, member.key, keys, self.columns(member)
        )

    async def _lookup(self, lookups: list[_Lookup]) -> list[list[list[Row]]]:
        """Every key column of one member table in one batched lookup."""
        member = lookups[0].member
        return await self.connectors[member.source].lookup_many_columns(
            member.table,
            [KeyLookup(lk.column, list(lk.variants), lk.transform) for lk in lookups],
            self.columns(member),
        )

    def _matches(
        self, res: Resolution, lookup: _Lookup, groups: list[list[Row]]
    ) -> list[tuple[Record, KeyNode]]:
        """Re-check each row against the keys (a lookup variant may over-match) and
        drop keys shared by more records than the fan-out limit (noted in
        ``res.crowded``, so records of this table already found join by them neither)."""
        spec = self.model.identity.keys[lookup.key_name]
        normalize = NORMALIZERS[spec.normalize].normalize
        member = lookup.member
        by_key: dict[str, dict[object, Row]] = defaultdict(dict)
        for variant, rows in zip(lookup.variants, groups, strict=True):
            wanted = lookup.variants[variant]
            for row in rows:
                region = row.get(member.region) if member.region else None
                value = normalize(row.get(lookup.column), region, spec.default_region)
                if value in wanted:
                    by_key[value][row[member.key]] = row
        limit = self.model.identity.max_key_fanout
        known, rank = res._known, lookup.rank
        matched: list[tuple[Record, KeyNode]] = []
        for value, held in by_key.items():
            if len(held) > limit:
                res.crowded.add(((lookup.key_name, value), member.id))
                continue
            key = (lookup.key_name, value)
            for row_key, row in held.items():
                record = known.get((rank, row_key))
                if record is None:
                    record = Record(member, rank, row)
                matched.append((record, key))
        return matched
