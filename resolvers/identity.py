"""Deterministic identity stitching at read time.

Starting from seed records or seed keys (a normalised email, an E.164
phone), every member table is asked — one batched lookup per table and key
column per round, all sources concurrently — for records that share a key;
the keys of the records found feed the next round, until nothing new turns
up. Records and keys form a graph; its connected components are customers.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from connectors import Connector, ConnectorError, LookupTransform, Row
from resolvers.model import MemberSpec, UnifiedModel
from resolvers.normalize import NORMALIZERS
from resolvers.records import Record, RecordRef

KeyNode = tuple[str, str]
"""An identity key: (key name, normalised value)."""
Node = RecordRef | KeyNode


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Node, Node] = {}

    def find(self, node: Node) -> Node:
        parent = self.parent.setdefault(node, node)
        if parent == node:
            return node
        root = self.find(parent)
        self.parent[node] = root
        return root

    def union(self, a: Node, b: Node) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


@dataclass(slots=True)
class Resolution:
    """The records found and how they group into customers."""

    records: dict[RecordRef, Record] = field(default_factory=dict)
    errors: list[ConnectorError] = field(default_factory=list)
    rounds: int = 0
    _uf: _UnionFind = field(default_factory=_UnionFind)
    _clusters: dict[Node, list[Record]] | None = None

    def cluster(self, node: Node) -> list[Record]:
        """The records of the customer containing ``node``, canonical first."""
        if self._clusters is None:
            groups: dict[Node, list[Record]] = defaultdict(list)
            for ref, record in self.records.items():
                groups[self._uf.find(ref)].append(record)
            for members in groups.values():
                members.sort(key=Record.order)
            self._clusters = dict(groups)
        return self._clusters.get(self._uf.find(node), [])


@dataclass(frozen=True, slots=True)
class _Lookup:
    member: MemberSpec
    rank: int
    key_name: str
    column: str
    variants: dict[str, set[str]]
    """Value sent to the source -> the normalised keys it may stand for."""
    transform: LookupTransform


class Stitcher:
    """Resolves seeds to customers over the configured member tables."""

    def __init__(self, model: UnifiedModel, connectors: Mapping[str, Connector]) -> None:
        self.model = model
        self.members = model.customer.members
        self.connectors = connectors
        self._rank = {m.id: i for i, m in enumerate(self.members)}
        self.extra_columns: dict[str, list[str]] = {}
        """Member id -> columns read besides the member's own (e.g. match inputs)."""

    def columns(self, member: MemberSpec) -> list[str]:
        """Every column read from ``member``'s table, key first."""
        return [*member.columns(), *self.extra_columns.get(member.id, ())]

    def rank(self, member: MemberSpec) -> int:
        return self._rank[member.id]

    def record(self, member: MemberSpec, row: Row) -> Record:
        return Record(member, self._rank[member.id], row)

    def keys_of(self, record: Record) -> Iterable[KeyNode]:
        member, row = record.member, record.row
        region = row.get(member.region) if member.region else None
        for key_name, columns in member.identity.items():
            spec = self.model.identity.keys[key_name]
            normalize = NORMALIZERS[spec.normalize].normalize
            for column in columns:
                value = normalize(row.get(column), region, spec.default_region)
                if value:
                    yield (key_name, value)

    async def resolve(
        self, records: Sequence[Record] = (), keys: Sequence[KeyNode] = ()
    ) -> Resolution:
        res = Resolution()
        queried: set[KeyNode] = set()
        frontier: set[KeyNode] = set(keys)
        for key in keys:
            res._uf.find(key)
        for record in records:
            frontier |= self._add(res, record) - queried
        while frontier and res.rounds < self.model.identity.max_rounds:
            res.rounds += 1
            queried |= frontier
            found = await self._round(res, frontier)
            frontier = set()
            for record, key in found:
                if record.ref not in res.records:
                    frontier |= self._add(res, record)
                res._uf.union(record.ref, key)
            frontier -= queried
        return res

    def _add(self, res: Resolution, record: Record) -> set[KeyNode]:
        res.records[record.ref] = record
        keys = set(self.keys_of(record))
        for key in keys:
            res._uf.union(record.ref, key)
        return keys

    def _plan(self, frontier: set[KeyNode]) -> list[_Lookup]:
        by_name: dict[str, set[str]] = defaultdict(set)
        for name, value in frontier:
            by_name[name].add(value)
        lookups = []
        for rank, member in enumerate(self.members):
            for key_name, columns in member.identity.items():
                values = by_name.get(key_name)
                if not values:
                    continue
                normalizer = NORMALIZERS[self.model.identity.keys[key_name].normalize]
                caps = self.connectors[member.source].capabilities_for(member.table)
                for column in columns:
                    if caps.can_lookup(column, normalizer.transform):
                        transform = normalizer.transform
                    elif caps.can_lookup(column, "exact"):
                        # the source compares as stored: send the normal form itself
                        transform = "exact"
                    else:
                        continue
                    variants: dict[str, set[str]] = defaultdict(set)
                    for value in sorted(values):
                        sent = normalizer.lookup_values(value) if transform != "exact" else (value,)
                        for variant in sent:
                            variants[variant].add(value)
                    lookups.append(
                        _Lookup(member, rank, key_name, column, dict(variants), transform)
                    )
        return lookups

    async def _round(self, res: Resolution, frontier: set[KeyNode]) -> list[tuple[Record, KeyNode]]:
        lookups = self._plan(frontier)
        results = await asyncio.gather(
            *(self._lookup(lookup) for lookup in lookups), return_exceptions=True
        )
        found: list[tuple[Record, KeyNode]] = []
        for lookup, result in zip(lookups, results, strict=True):
            if isinstance(result, ConnectorError):
                res.errors.append(result)
                continue
            if isinstance(result, BaseException):
                raise result
            found.extend(self._matches(lookup, result))
        return found

    async def _lookup(self, lookup: _Lookup) -> list[list[Row]]:
        member = lookup.member
        return await self.connectors[member.source].lookup_many(
            member.table,
            lookup.column,
            list(lookup.variants),
            self.columns(member),
            lookup.transform,
        )

    def _matches(self, lookup: _Lookup, groups: list[list[Row]]) -> list[tuple[Record, KeyNode]]:
        """Re-check each row against the keys (a lookup variant may over-match) and
        drop keys shared by more records than the fan-out limit."""
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
        return [
            (Record(member, lookup.rank, row), (lookup.key_name, value))
            for value, rows in by_key.items()
            if len(rows) <= limit
            for row in rows.values()
        ]
