"""Businesses and households: customers grouped by where they work and where they live.

Nothing is stored. A customer's **business** is found from its records — the
account key a contact or user points at (``account_id``, ``organization_id``),
a company name typed on a lead, a work email's domain — and closed over the
account tables: account rows are fetched by key, and other account tables are
asked for rows with the same domain or company name (casefolded lookups,
re-checked after normalisation in memory). The members of a business are the
member records pointing at its accounts (a batched ``IN (...)`` per member
table), naming it, or writing from its domain (a pushed-down ``contains``
filter where the source has one), stitched into customers.

A customer's **household** is the home of its most recently updated record
that has an address: the normalised (country, postcode, street, surname).
Its members are the records at that postcode (one batched lookup per member
table), re-checked on the whole key in memory, stitched into customers, and
kept when their own current home is the same.

Every lookup goes through a per-request DataLoader per table, column and
transform, so a page of customers asks each table once per round. Ids are
opaque and derived from identifiers: a business with an account row is named
by its canonical account record (first account table, smallest key); other
groups by their canonical member record plus a hash of the normalised key,
never the key itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectors import (
    Connector,
    ConnectorError,
    Filter,
    LookupTransform,
    QueryError,
    Row,
    ScanRequest,
    Sort,
)
from resolvers.coerce import coerce
from resolvers.identity import Stitcher
from resolvers.loaders import load_again
from resolvers.matching import normalize as norm
from resolvers.matching.features import FREE_MAIL_DOMAINS
from resolvers.model import (
    BusinessAccountSpec,
    BusinessSpec,
    HouseholdSpec,
    MemberSpec,
    UnifiedModel,
)
from resolvers.records import Record, RecordRef

if TYPE_CHECKING:  # strawberry (~20 MB) is loaded by the first request that groups
    from strawberry.dataloader import DataLoader

BUSINESS_PREFIX = "biz_"
HOUSEHOLD_PREFIX = "hh_"
_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC)

Node = tuple[str, str]
"""``("acct", ref)``, ``("domain", normal form)`` or ``("name", normal form)``."""
HomeKey = tuple[str, str, str, str]
"""(country, postcode, street, surname), normalised."""


def group_columns(model: UnifiedModel) -> dict[str, list[str]]:
    """Member id -> the columns grouping reads from its records."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for member_id, link in model.business.members.items() if model.business else ():
        wanted[member_id] += [c for c in (link.column, link.company, link.email) if c]
    for member_id, home in model.household.members.items() if model.household else ():
        columns = (home.street, home.postcode, home.surname, home.given_name, home.country)
        wanted[member_id] += [c for c in columns if c]
    return {member_id: list(dict.fromkeys(columns)) for member_id, columns in wanted.items()}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_group_id(prefix: str, ref: RecordRef, key: str | None = None) -> str:
    """``prefix`` + the canonical record, and a hash of the group's key when the
    record alone does not name the group."""
    text = str(ref) if key is None else f"{ref}#{_digest(key)}"
    return prefix + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_group_id(prefix: str, group_id: str) -> tuple[RecordRef, str | None]:
    """The canonical record and key hash (None for an account-named business)."""
    what = "business" if prefix == BUSINESS_PREFIX else "household"
    if not group_id.startswith(prefix):
        raise QueryError(f"'{group_id}' is not a {what} id")
    raw = group_id[len(prefix) :]
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise QueryError(f"'{group_id}' is not a {what} id") from None
    ref_text, _, digest = text.partition("#")
    return RecordRef.parse(ref_text), digest or None


@dataclass(frozen=True, slots=True)
class Account:
    """One row of an account table (a CRM account, a support organization)."""

    spec: BusinessAccountSpec
    rank: int
    row: Row

    @property
    def ref(self) -> RecordRef:
        return RecordRef(self.spec.source, self.spec.table, str(self.row[self.spec.key]))

    def order(self) -> tuple[int, int, int | str]:
        key = self.row[self.spec.key]
        return (self.rank, 0, key) if isinstance(key, int) else (self.rank, 1, str(key))


@dataclass(slots=True)
class Business:
    """A business: its account rows and the domains and names it is known by."""

    accounts: list[Account]
    domains: set[str]
    names: set[str]
    spellings: set[str] = field(default_factory=set)
    """Company names as typed (casefolded), for looking members up by name."""
    named_by: list[Record] = field(default_factory=list)
    """The records it was found from (members even where no lookup reaches them)."""

    @property
    def key(self) -> str:
        """What names a business without accounts (its smallest domain, else name)."""
        if self.domains:
            return "domain:" + min(self.domains)
        return "name:" + min(self.names)

    def name(self) -> str | None:
        for account in self.accounts:
            if account.spec.name and account.row.get(account.spec.name):
                return str(account.row[account.spec.name]).strip()
        return min(self.spellings, default=None) or min(self.domains, default=None)


@dataclass(slots=True)
class _Graph:
    parent: dict[Node, Node] = field(default_factory=dict)
    accounts: dict[RecordRef, Account] = field(default_factory=dict)
    spellings: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    named: dict[str, set[RecordRef]] = field(default_factory=lambda: defaultdict(set))
    """Company name -> the accounts carrying or matching it (joined by ``_join_names``)."""

    def find(self, node: Node) -> Node:
        root = self.parent.setdefault(node, node)
        if root != node:
            root = self.parent[node] = self.find(root)
        return root

    def union(self, a: Node, b: Node) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def business(self, seed: Node) -> Business:
        root = self.find(seed)
        nodes = [n for n in list(self.parent) if self.find(n) == root]
        accounts = sorted(
            (self.accounts[RecordRef.parse(v)] for k, v in nodes if k == "acct"),
            key=Account.order,
        )
        names = {v for k, v in nodes if k == "name"}
        spellings = {s for n in names for s in self.spellings.get(n, ())}
        return Business(accounts, {v for k, v in nodes if k == "domain"}, names, spellings)


class GroupRequest:
    """Per-request grouping: the loaders, and the source errors met on the way."""

    def __init__(
        self,
        model: UnifiedModel,
        connectors: Mapping[str, Connector],
        stitcher: Stitcher,
        errors: list[ConnectorError],
    ) -> None:
        self.model = model
        self.connectors = connectors
        self.stitcher = stitcher
        self.errors = errors
        self.members = {m.id: m for m in model.customer.members}
        self._needed = group_columns(model)
        self._pending: dict[RecordRef, Record] = {}
        from strawberry.dataloader import DataLoader  # loaded by the first request that groups

        self._clusters: DataLoader[RecordRef, list[Record]] = DataLoader(
            load_fn=self._load_clusters
        )
        business = model.business
        self._not_companies = {
            n for n in (norm.company(v) for v in (business.not_companies if business else ())) if n
        }
        self._loaders: dict[tuple[Any, ...], DataLoader[Any, list[Row]]] = {}

    # -- lookups ---------------------------------------------------------------

    async def lookup(
        self,
        source: str,
        table: str,
        column: str,
        values: Iterable[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[tuple[Any, list[Row]]]:
        """``(value, rows)`` per value, batched with every other lookup of this
        request on the same table, column and transform; a failing source gives none."""
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return []
        key = (source, table, column, transform, tuple(columns))
        loader = self._loaders.get(key)
        if loader is None:
            connector = self.connectors[source]

            async def load(keys: list[Any]) -> list[list[Row]]:
                return await connector.lookup_many(table, column, keys, list(columns), transform)

            size = connector.capabilities_for(table).max_batch_size
            from strawberry.dataloader import DataLoader

            loader = self._loaders[key] = DataLoader(load_fn=load, max_batch_size=size)
        try:
            try:
                groups = await loader.load_many(wanted)
            except asyncio.CancelledError as cancelled:
                groups = await load_again(loader, wanted, cancelled)
        except ConnectorError as exc:
            self.errors.append(exc)
            return []
        return list(zip(wanted, groups, strict=True))

    def _text_probe(
        self, source: str, table: str, column: str, values: Iterable[str]
    ) -> tuple[LookupTransform, list[str]] | None:
        """How to look text up in ``column``: casefolded where the source can, else as given."""
        caps = self.connectors[source].capabilities_for(table)
        items = [v for v in values if v]
        if caps.can_lookup(column, "casefold"):
            return "casefold", sorted({" ".join(v.split()).casefold() for v in items})
        if caps.can_lookup(column, "exact"):
            return "exact", sorted(set(items))
        return None

    def _records(self, member: MemberSpec, pairs: list[tuple[Any, list[Row]]]) -> list[Record]:
        return [self.stitcher.record(member, row) for _, rows in pairs for row in rows]

    # -- businesses ------------------------------------------------------------

    @property
    def business_spec(self) -> BusinessSpec:
        assert self.model.business is not None
        return self.model.business

    def _free_mail(self, domain: str) -> bool:
        extra = self.business_spec.free_mail_domains
        return domain in FREE_MAIL_DOMAINS or domain in norm.GMAIL_DOMAINS or domain in extra

    def _account_spec(self, account_id: str) -> tuple[int, BusinessAccountSpec]:
        for rank, spec in enumerate(self.business_spec.accounts):
            if spec.id == account_id:
                return rank, spec
        raise KeyError(account_id)  # pragma: no cover - the model validates references

    def business_seeds(self, records: Sequence[Record]) -> tuple[list[Node], dict[str, set[str]]]:
        """The business keys ``records`` carry, strongest first (account keys, then
        email domains, then company names), and the names as typed."""
        accounts: list[Node] = []
        domains: list[Node] = []
        names: list[Node] = []
        spellings: dict[str, set[str]] = defaultdict(set)
        for record in records:
            spec = self.business_spec.members.get(record.member.id)
            if spec is None:
                continue
            row = record.row
            if spec.account and spec.column and row.get(spec.column) is not None:
                _, acct = self._account_spec(spec.account)
                ref = RecordRef(acct.source, acct.table, str(row[spec.column]))
                accounts.append(("acct", str(ref)))
            if spec.email and (email := norm.email(row.get(spec.email), provider_rules=False)):
                host = email.rpartition("@")[2]
                if not self._free_mail(host):
                    domains.append(("domain", host))
            name = norm.company(row.get(spec.company)) if spec.company else None
            if spec.company and name and name not in self._not_companies:
                names.append(("name", name))
                spellings[name].add(str(row[spec.company]))
        return list(dict.fromkeys([*accounts, *domains, *names])), spellings

    async def complete(self, records: Sequence[Record]) -> list[Record]:
        """``records`` with every column grouping reads: rows read without them (a
        page's scan) are read again by key, batched per table."""
        needed = self._needed
        missing = [r for r in records if any(c not in r.row for c in needed.get(r.member.id, ()))]
        if not missing:
            return list(records)
        by_member: dict[str, list[Record]] = defaultdict(list)
        for record in missing:
            by_member[record.member.id].append(record)
        fresh: dict[RecordRef, Record] = {}
        for member_id, items in by_member.items():
            member = self.members[member_id]
            pairs = await self.lookup(
                member.source,
                member.table,
                member.key,
                [r.key for r in items],
                self.stitcher.columns(member),
            )
            for record in self._records(member, pairs):
                fresh[record.ref] = record
        return [fresh.get(r.ref, r) for r in records]

    async def business_of(self, records: Sequence[Record]) -> Business | None:
        records = await self.complete(records)
        seeds, spellings = self.business_seeds(records)
        if not seeds:
            return None
        graph = await self._close(seeds, spellings)
        found = [n for n in seeds if n[0] != "acct" or RecordRef.parse(n[1]) in graph.accounts]
        if not found:
            return None
        business = graph.business(found[0])
        business.named_by = [r for r in records if self._names(r, business)]
        return business

    def _names(self, record: Record, business: Business) -> bool:
        """Whether ``record`` points at, names or writes from ``business``."""
        seeds, _ = self.business_seeds([record])
        accounts = {str(a.ref) for a in business.accounts}
        return any(
            (kind == "acct" and value in accounts)
            or (kind == "domain" and value in business.domains)
            or (kind == "name" and value in business.names)
            for kind, value in seeds
        )

    async def _close(self, seeds: Sequence[Node], spellings: Mapping[str, set[str]]) -> _Graph:
        """Account rows and keys reachable from ``seeds``, in at most three rounds."""
        graph = _Graph()
        for name, typed in spellings.items():
            graph.spellings[name] |= typed
        for node in seeds:
            graph.find(node)
        frontier = set(seeds)
        seen: set[Node] = set()
        for _ in range(3):
            frontier -= seen
            if not frontier:
                break
            seen |= frontier
            found = await self._account_round(frontier, graph)
            frontier = set()
            for account, via in found:
                node = ("acct", str(account.ref))
                if account.ref not in graph.accounts:
                    graph.accounts[account.ref] = account
                    frontier |= self._account_keys(account, node, graph)
                if via is not None and via[0] == "name":
                    graph.named[via[1]].add(account.ref)
                elif via is not None:
                    graph.union(node, via)
        self._join_names(graph)
        return graph

    def _join_names(self, graph: _Graph) -> None:
        """A company name joins the accounts carrying it unless they have different
        domains: two businesses may share a name (Orbit Supply in two countries)."""
        for name, refs in graph.named.items():
            domains = set()
            for ref in refs:
                account = graph.accounts[ref]
                column = account.spec.domain
                if column and (host := norm.domain(account.row.get(column))):
                    domains.add(host)
            if len(domains) <= 1:
                for ref in refs:
                    graph.union(("acct", str(ref)), ("name", name))

    def _account_keys(self, account: Account, node: Node, graph: _Graph) -> set[Node]:
        """The keys an account row carries: its domain (joined at once) and its name
        (looked up, joined by ``_join_names``)."""
        keys: set[Node] = set()
        spec, row = account.spec, account.row
        if spec.domain and (host := norm.domain(row.get(spec.domain))):
            keys.add(("domain", host))
            graph.union(node, ("domain", host))
        if spec.name and (name := _usual_name(row.get(spec.name))):
            keys.add(("name", name))
            graph.spellings[name].add(str(row[spec.name]).strip())
            graph.named[name].add(account.ref)
        return keys

    async def _account_round(
        self, frontier: set[Node], graph: _Graph
    ) -> list[tuple[Account, Node | None]]:
        by_table: dict[str, list[RecordRef]] = defaultdict(list)
        for kind, value in frontier:
            if kind == "acct":
                ref = RecordRef.parse(value)
                by_table[f"{ref.source}.{ref.table}"].append(ref)
        domains = sorted(v for k, v in frontier if k == "domain")
        names = sorted(v for k, v in frontier if k == "name")
        jobs = []
        for rank, spec in enumerate(self.business_spec.accounts):
            refs = by_table.get(spec.id, [])
            if refs:
                jobs.append(self._accounts_by_key(rank, spec, refs))
            if spec.domain and domains:
                jobs.append(self._accounts_by_text(rank, spec, spec.domain, "domain", domains))
            if spec.name and names:
                jobs.append(self._accounts_by_text(rank, spec, spec.name, "name", names))
        results = await asyncio.gather(*jobs)
        return [item for result in results for item in result]

    async def _accounts_by_key(
        self, rank: int, spec: BusinessAccountSpec, refs: list[RecordRef]
    ) -> list[tuple[Account, Node | None]]:
        keys: list[Any] = [int(r.key) if spec.key_type == "int" else r.key for r in refs]
        keys = [k for k in keys if not isinstance(k, str) or k]
        pairs = await self.lookup(spec.source, spec.table, spec.key, keys, spec.columns())
        return [(Account(spec, rank, row), None) for _, rows in pairs for row in rows]

    async def _accounts_by_text(
        self,
        rank: int,
        spec: BusinessAccountSpec,
        column: str,
        kind: str,
        wanted: list[str],
    ) -> list[tuple[Account, Node | None]]:
        """Account rows whose domain, or name, is one of ``wanted`` (normal forms). Names
        are asked for in their usual spellings and only usual spellings count, so two
        accounts sharing a name find each other from either side."""
        values = wanted if kind == "domain" else _spellings(wanted)
        probe = self._text_probe(spec.source, spec.table, column, values)
        if probe is None:
            return []
        normal = norm.domain if kind == "domain" else _usual_name
        found: list[tuple[Account, Node | None]] = []
        pairs = await self.lookup(
            spec.source, spec.table, column, probe[1], spec.columns(), probe[0]
        )
        limit = self.business_spec.max_members
        for _, rows in pairs:
            if len(rows) > limit:
                continue
            for row in rows:
                value = normal(row.get(column))
                if value in wanted:
                    found.append((Account(spec, rank, row), (kind, value)))
        return found

    async def business_members(self, business: Business) -> list[list[Record]]:
        """The business's customers (their records, canonical first), in canonical order."""
        jobs = [
            self._members_of(self.members[member_id], spec_id, business)
            for member_id, spec_id in self.business_spec.members.items()
        ]
        found: dict[RecordRef, Record] = {r.ref: r for r in business.named_by}
        for records in await asyncio.gather(*jobs):
            for record in records:
                found.setdefault(record.ref, record)
        return await self._customers(list(found.values()))

    async def _members_of(self, member: MemberSpec, spec: Any, business: Business) -> list[Record]:
        columns = self.stitcher.columns(member)
        limit = self.business_spec.max_members
        records: list[Record] = []
        if spec.account and spec.column:
            keys = [a.row[a.spec.key] for a in business.accounts if a.spec.id == spec.account]
            pairs = await self.lookup(member.source, member.table, spec.column, keys, columns)
            records += self._records(member, pairs)[:limit]
        if spec.company and business.names:
            values = _spellings(sorted(business.names))
            probe = self._text_probe(member.source, member.table, spec.company, values)
            if probe is not None:
                pairs = await self.lookup(
                    member.source, member.table, spec.company, probe[1], columns, probe[0]
                )
                records += [
                    r
                    for r in self._records(member, pairs)
                    if norm.company(r.row.get(spec.company)) in business.names
                ][:limit]
        if spec.email:
            records += await self._members_by_domain(member, spec.email, business, limit)
        return records

    async def _members_by_domain(
        self, member: MemberSpec, column: str, business: Business, limit: int
    ) -> list[Record]:
        connector = self.connectors[member.source]
        caps = connector.capabilities_for(member.table)
        if not caps.can_filter(column, "contains") or not business.domains:
            return []
        records: list[Record] = []
        for host in sorted(business.domains):
            request = ScanRequest(
                member.table,
                self.stitcher.columns(member),
                [Filter(column, "contains", "@" + host)],
                order_by=[Sort(member.key)] if caps.can_sort(member.key) else [],
                limit=limit if caps.supports_limit else None,
            )
            try:
                rows = [row async for row in connector.scan(request)]
            except ConnectorError as exc:
                self.errors.append(exc)
                continue
            for row in rows[:limit]:
                email = norm.email(row.get(column), provider_rules=False)
                if email and email.rpartition("@")[2] == host:
                    records.append(self.stitcher.record(member, row))
        return records

    async def _customers(self, records: list[Record]) -> list[list[Record]]:
        """The customers ``records`` belong to, canonical first; the stitching of every
        caller waiting at once runs as one resolution (one lookup per table and round)."""
        if not records:
            return []
        for record in records:
            self._pending.setdefault(record.ref, record)
        refs = [r.ref for r in records]
        try:
            found = await self._clusters.load_many(refs)
        except asyncio.CancelledError as cancelled:
            found = await load_again(self._clusters, refs, cancelled)
        clusters: dict[RecordRef, list[Record]] = {}
        for cluster in found:
            if cluster:
                clusters.setdefault(cluster[0].ref, cluster)
        return sorted(clusters.values(), key=lambda c: c[0].order())

    async def _load_clusters(self, refs: list[RecordRef]) -> list[list[Record]]:
        resolution = await self.stitcher.resolve(records=[self._pending[r] for r in refs])
        self.errors.extend(resolution.errors)
        return [resolution.cluster(r) for r in refs]

    async def business_id(self, business: Business) -> str:
        if business.accounts:
            return encode_group_id(BUSINESS_PREFIX, business.accounts[0].ref)
        members = await self.business_members(business)
        anchor = members[0][0].ref if members else None
        if anchor is None:
            raise QueryError("a business without accounts or members has no id")
        return encode_group_id(BUSINESS_PREFIX, anchor, business.key)

    async def business_by_id(self, business_id: str) -> Business | None:
        ref, digest = decode_group_id(BUSINESS_PREFIX, business_id)
        if digest is None:
            self._account_spec_for(ref)
            node: Node = ("acct", str(ref))
            graph = await self._close([node], {})
            return graph.business(node) if ref in graph.accounts else None
        record = await self._fetch(ref)
        if record is None:
            return None
        resolution = await self.stitcher.resolve(records=[record])
        self.errors.extend(resolution.errors)
        business = await self.business_of(resolution.cluster(record.ref))
        if business is None or (not business.accounts and _digest(business.key) != digest):
            return None
        return business

    def _account_spec_for(self, ref: RecordRef) -> tuple[int, BusinessAccountSpec]:
        try:
            return self._account_spec(f"{ref.source}.{ref.table}")
        except KeyError:
            raise QueryError(f"'{ref}' is not a business account table") from None

    async def businesses_page(
        self, first: int, after: str | None
    ) -> tuple[list[tuple[str, Business]], bool]:
        """Businesses with accounts, by canonical account (table order, then key):
        a keyset read of each account table, emitting a business at its canonical row."""
        rank, last = _decode_cursor(after) if after else (0, None)
        accounts = self.business_spec.accounts
        found: list[tuple[str, Business]] = []
        while rank < len(accounts) and len(found) <= first:
            spec = accounts[rank]
            rows = await self._scan_accounts(spec, last, first + 1 - len(found) + 2)
            if not rows:
                rank, last = rank + 1, None
                continue
            seeds: list[Node] = [("acct", str(Account(spec, rank, r).ref)) for r in rows]
            graph = await self._close(seeds, {})
            for row, seed in zip(rows, seeds, strict=True):
                last = row[spec.key]
                business = graph.business(seed)
                if business.accounts and str(business.accounts[0].ref) == seed[1]:
                    found.append((_encode_cursor(rank, last), business))
                    if len(found) > first:
                        break
        return found[:first], len(found) > first

    async def _scan_accounts(self, spec: BusinessAccountSpec, last: Any, limit: int) -> list[Row]:
        connector = self.connectors[spec.source]
        caps = connector.capabilities_for(spec.table)
        if not (caps.supports_keyset and caps.can_sort(spec.key)):
            raise QueryError(
                f"businesses: {spec.id} cannot be read in key order; "
                f"list it after the account tables that can"
            )
        request = ScanRequest(
            spec.table,
            spec.columns(),
            order_by=[Sort(spec.key)],
            limit=limit,
            after=None if last is None else [last],
        )
        return [row async for row in connector.scan(request)]

    async def _fetch(self, ref: RecordRef) -> Record | None:
        member = next(
            (m for m in self.members.values() if (m.source, m.table) == (ref.source, ref.table)),
            None,
        )
        if member is None:
            raise QueryError(f"'{ref}' does not name a customer table of a configured source")
        key: Any = ref.key
        if member.key_type == "int":
            if not ref.key.lstrip("-").isdigit():
                raise QueryError(f"'{ref}': {member.id} keys are integers")
            key = int(ref.key)
        pairs = await self.lookup(
            member.source, member.table, member.key, [key], self.stitcher.columns(member)
        )
        rows = pairs[0][1] if pairs else []
        return self.stitcher.record(member, rows[0]) if rows else None

    # -- households ------------------------------------------------------------

    @property
    def household_spec(self) -> HouseholdSpec:
        assert self.model.household is not None
        return self.model.household

    def home(self, record: Record) -> HomeKey | None:
        """The record's normalised (country, postcode, street, surname), if complete."""
        spec = self.household_spec.members.get(record.member.id)
        if spec is None:
            return None
        row = record.row
        country = norm.country(row.get(spec.country)) if spec.country else None
        postcode = norm.postcode(row.get(spec.postcode), country)
        street = norm.street(row.get(spec.street), country)
        surname = norm.surname(row.get(spec.surname))
        if not (postcode and street and surname):
            return None
        return (country or "", postcode, street, surname)

    def current_home(self, records: Sequence[Record]) -> tuple[HomeKey, list[Record]] | None:
        """The home of the most recently updated record that has one, and the
        customer's records at that home."""
        homes = [(home, r) for r in records if (home := self.home(r)) is not None]
        if not homes:
            return None
        homes.sort(key=lambda h: h[1].order())
        _, newest = max(homes, key=lambda h: self._updated(h[1]))  # ties: canonical first
        key = self.home(newest)
        assert key is not None
        return key, [r for home, r in homes if home == key]

    @staticmethod
    def _updated(record: Record) -> dt.datetime:
        column = record.member.updated_at
        value = coerce(record.row.get(column), "datetime") if column else None
        return value or _EPOCH

    async def household_of(self, records: Sequence[Record]) -> Household | None:
        records = await self.complete(records)
        current = self.current_home(records)
        if current is None:
            return None
        key, at_home = current
        found: dict[RecordRef, Record] = {}
        jobs = [
            self._residents(self.members[member_id], spec.postcode, key, at_home)
            for member_id, spec in self.household_spec.members.items()
        ]
        for rows in await asyncio.gather(*jobs):
            for record in rows:
                found.setdefault(record.ref, record)
        customers = [
            cluster
            for cluster in await self._customers(list(found.values()))
            if (home := self.current_home(cluster)) is not None and home[0] == key
        ]
        if self._people(customers) < self.household_spec.min_customers:
            return None
        anchor = min((r for c in customers for r in c if self.home(r) == key), key=Record.order)
        return Household(key, customers, anchor.ref)

    def _people(self, customers: list[list[Record]]) -> int:
        """How many different people ``customers`` are: customers sharing a given name
        at one home count once (one person's records that did not stitch)."""
        names: set[str] = set()
        unnamed = 0
        for records in customers:
            given = {
                name
                for r in records
                if (spec := self.household_spec.members.get(r.member.id)) and spec.given_name
                if (name := norm.given_name(r.row.get(spec.given_name)))
            }
            if not given:
                unnamed += 1
            elif names.isdisjoint(given):
                names |= given
        return len(names) + unnamed

    async def _residents(
        self, member: MemberSpec, column: str, key: HomeKey, at_home: Sequence[Record]
    ) -> list[Record]:
        typed = {
            str(r.row[c])
            for r in at_home
            if (c := self.household_spec.members[r.member.id].postcode) and r.row.get(c)
        }
        values = {*typed, key[1], key[1].replace(" ", "")}
        probe = self._text_probe(member.source, member.table, column, values)
        if probe is None:
            return []
        pairs = await self.lookup(
            member.source, member.table, column, probe[1], self.stitcher.columns(member), probe[0]
        )
        limit = self.household_spec.max_members
        return [
            record
            for _, rows in pairs
            if len(rows) <= limit
            for record in (self.stitcher.record(member, row) for row in rows)
            if self.home(record) == key
        ]

    async def household_by_id(self, household_id: str) -> Household | None:
        ref, digest = decode_group_id(HOUSEHOLD_PREFIX, household_id)
        record = await self._fetch(ref)
        if record is None:
            return None
        resolution = await self.stitcher.resolve(records=[record])
        self.errors.extend(resolution.errors)
        household = await self.household_of(resolution.cluster(record.ref))
        if household is None or _digest(household.text_key) != digest:
            return None
        return household


@dataclass(frozen=True, slots=True)
class Household:
    """Customers sharing a home: the normalised key, the customers, the canonical record."""

    key: HomeKey
    customers: list[list[Record]]
    anchor: RecordRef

    @property
    def text_key(self) -> str:
        return "|".join(self.key)

    @property
    def id(self) -> str:
        return encode_group_id(HOUSEHOLD_PREFIX, self.anchor, self.text_key)


def _usual_name(value: object) -> str | None:
    """The company's normal form, when ``value`` is one of its usual spellings."""
    name = norm.company(value)
    if name is None or not isinstance(value, str):
        return None
    return name if " ".join(value.split()).casefold() in norm.company_spellings(name) else None


def _spellings(names: Iterable[str]) -> list[str]:
    return sorted({s for name in names for s in norm.company_spellings(name)})


def _encode_cursor(rank: int, key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([rank, key]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, Any]:
    try:
        rank, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise QueryError(f"'{cursor}' is not a cursor returned by this API") from None
    if not isinstance(rank, int):
        raise QueryError(f"'{cursor}' is not a cursor returned by this API")
    return rank, key
