"""The hand-written SQL floor the benchmark compares custview against.

It answers the two benchmarked GraphQL queries for the demo configuration
with the least work that still gives the same answer: plain SQL through
aiosqlite (the driver custview's demo sources use), one statement per member
table per stitching round (all identity columns of a table in one ``OR``),
independent statements issued concurrently, children fetched with ``IN``
lists, and the JSON built from dicts with ``json.dumps``.

Identity stitching follows :mod:`resolvers.identity` exactly — normalised
email and E.164 phone keys, phone digit variants, the re-check of every
matched row, the key fan-out limit and the round limit — because a floor
that stitched differently would not be answering the same question. The
lookup expressions are :func:`connectors.sql.expressions.transformed`
compiled to text, so the demo's expression indexes are used.

With ``CUSTVIEW_BENCH_FLOOR_INLINE=1`` (``python -m tests.bench.hot
--floor-inline``) each statement runs on the event loop's own thread in
``sqlite3`` instead (one connection per source, no thread hop), the strategy
custview's SQLite direct path uses for short statements: the floor with
the same driver strategy.

The demo schema (member tables, columns, survivorship) is written out here
on purpose: this is what a person would hand-write for these databases. If
``config/demo.yaml`` changes, the benchmark's equality check says so.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import column
from sqlalchemy.dialects import sqlite

from connectors.sql.expressions import transformed
from resolvers.normalize import normalize_email, normalize_phone, phone_digit_variants

MAX_ROUNDS = 5
"""``identity.max_rounds`` (the model's default)."""
MAX_KEY_FANOUT = 25
"""``identity.max_key_fanout`` (the model's default)."""
DEFAULT_REGION = "US"
"""The phone key's ``default_region`` in demo.yaml."""
MAX_PARAMS = 30_000
"""Bind parameters a statement may hold (SQLite's limit is 32,766)."""
POOL_SIZE = 3
INLINE_ENV = "CUSTVIEW_BENCH_FLOOR_INLINE"
"""``1``: the floor runs its statements on the loop's thread (see above)."""
"""Connections per database: enough for the concurrent statements of one request."""

KeyNode = tuple[str, str]


@functools.cache
def _sql(expr_column: str, transform: str) -> str:
    compiled = transformed(column(expr_column), transform).compile(  # type: ignore[arg-type]
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


@dataclass(frozen=True)
class Member:
    """A member table of the demo's Customer, as the floor reads it."""

    source: str
    table: str
    rank: int
    columns: tuple[str, ...]
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    region: str | None
    name: tuple[str, ...]
    """Columns filled into the ``"{a} {b}"`` name template; empty when name is a column."""
    golden: tuple[tuple[str, str], ...]
    """(golden field, column) for every other mapped field."""

    @functools.cached_property
    def golden_columns(self) -> dict[str, str]:
        return dict(self.golden)

    @functools.cached_property
    def identity(self) -> tuple[tuple[str, str, str], ...]:
        """(key name, column, SQL expression) for each identity column."""
        return tuple(("email", c, _sql(c, "casefold")) for c in self.emails) + tuple(
            ("phone", c, _sql(c, "digits")) for c in self.phones
        )


_PERSON = (("firstName", "first_name"), ("lastName", "last_name"), ("email", "email"))
_TS = (("createdAt", "created_at"), ("updatedAt", "updated_at"))
_ADDRESS = (("street", "street"), ("city", "city"), ("postcode", "postcode"))

MEMBERS: tuple[Member, ...] = (
    Member(
        "crm",
        "contacts",
        0,
        (
            "id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "street",
            "city",
            "postcode",
            "country",
            "birth_date",
            "lifecycle_stage",
            "created_at",
            "updated_at",
            "mobile",
        ),
        ("email",),
        ("phone", "mobile"),
        "country",
        ("first_name", "last_name"),
        (
            *_PERSON,
            ("phone", "phone"),
            *_ADDRESS,
            ("country", "country"),
            ("birthDate", "birth_date"),
            ("lifecycleStage", "lifecycle_stage"),
            *_TS,
        ),
    ),
    Member(
        "crm",
        "leads",
        1,
        ("id", "first_name", "last_name", "email", "phone", "created_at", "updated_at"),
        ("email",),
        ("phone",),
        None,
        ("first_name", "last_name"),
        (*_PERSON, ("phone", "phone"), *_TS),
    ),
    Member(
        "sales",
        "customers",
        2,
        (
            "id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "street",
            "city",
            "postcode",
            "country",
            "accepts_marketing",
            "created_at",
            "updated_at",
        ),
        ("email",),
        ("phone",),
        "country",
        ("first_name", "last_name"),
        (
            *_PERSON,
            ("phone", "phone"),
            *_ADDRESS,
            ("country", "country"),
            ("acceptsMarketing", "accepts_marketing"),
            *_TS,
        ),
    ),
    Member(
        "support",
        "users",
        3,
        ("id", "name", "email", "phone", "created_at", "updated_at", "locale"),
        ("email",),
        ("phone",),
        "locale",
        (),
        (("name", "name"), ("email", "email"), ("phone", "phone"), *_TS),
    ),
)
CONTACTS, LEADS, SALES_CUSTOMERS, SUPPORT_USERS = MEMBERS

FIELDS = (
    "name",
    "firstName",
    "lastName",
    "email",
    "phone",
    "street",
    "city",
    "postcode",
    "country",
    "birthDate",
    "lifecycleStage",
    "acceptsMarketing",
    "createdAt",
    "updatedAt",
)
"""Golden fields in the model's order (the order of ``provenance``)."""
_PRIORITY: dict[str, tuple[str, ...]] = {
    "email": ("sales", "crm", "support"),
    "phone": ("crm", "support", "sales"),
}
_DEFAULT_PRIORITY = ("crm", "sales", "support")
_MOST_RECENT = frozenset({"street", "city", "postcode", "country"})
_NOT_STRINGS = frozenset({"birthDate", "acceptsMarketing", "createdAt", "updatedAt"})


@dataclass(slots=True)
class Rec:
    """One member row."""

    member: Member
    row: dict[str, Any]

    @property
    def key(self) -> int:
        key: int = self.row["id"]
        return key

    @property
    def ref(self) -> str:
        return f"{self.member.source}/{self.member.table}/{self.key}"

    def order(self) -> tuple[int, int]:
        return (self.member.rank, self.key)

    def keys(self) -> set[KeyNode]:
        row, member = self.row, self.member
        found: set[KeyNode] = set()
        for c in member.emails:
            email = normalize_email(row[c])
            if email:
                found.add(("email", email))
        region = row[member.region] if member.region else None
        for c in member.phones:
            phone = normalize_phone(row[c], region, DEFAULT_REGION)
            if phone:
                found.add(("phone", phone))
        return found


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, node: object) -> object:
        parent = self.parent.setdefault(node, node)
        if parent == node:
            return node
        root = self.find(parent)
        self.parent[node] = root
        return root

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


def _ts(value: str | None) -> str | None:
    """A stored ``YYYY-MM-DD HH:MM:SS`` (UTC) as custview prints datetimes."""
    return None if value is None else value.replace(" ", "T") + "+00:00"


def _money(value: float | int | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _present(field: str, rec: Rec) -> Any:
    """The member's value for a golden field, as custview presents it."""
    row, member = rec.row, rec.member
    if field == "name" and member.name:
        return " ".join(" ".join(str(row[c] or "") for c in member.name).split()) or None
    column_name = member.golden_columns.get(field)
    if column_name is None:
        return None
    value = row[column_name]
    if value is None or (field in _NOT_STRINGS and isinstance(value, str) and not value.strip()):
        return None
    if field == "email":
        return normalize_email(value) or value
    if field == "phone":
        region = row[member.region] if member.region else None
        return normalize_phone(value, region, DEFAULT_REGION) or value
    return value


def golden(records: Sequence[Rec]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Golden values and ``provenance { field ref }`` by the demo's survivorship rules."""
    values: dict[str, Any] = {}
    provenance: list[dict[str, str]] = []
    by_recent = sorted(records, key=lambda r: str(r.row["updated_at"]), reverse=True)
    for field in FIELDS:
        priority = _PRIORITY.get(field, _DEFAULT_PRIORITY)
        # source priority, then most recently updated, then canonical order
        ordered = sorted(by_recent, key=lambda r: priority.index(r.member.source))
        candidates = [(v, r) for r in ordered if (v := _present(field, r)) is not None]
        if not candidates:
            values[field] = None
            continue
        if field in _MOST_RECENT:
            recent = max(str(r.row["updated_at"]) for _, r in candidates)
            value, winner = next(c for c in candidates if str(c[1].row["updated_at"]) == recent)
        elif field == "createdAt":
            value, winner = min(candidates, key=lambda c: str(c[0]))
        elif field == "updatedAt":
            value, winner = max(candidates, key=lambda c: str(c[0]))
        else:
            value, winner = candidates[0]
        values[field] = value
        provenance.append({"field": field, "ref": winner.ref})
    return values, provenance


def customer_id(records: Sequence[Rec]) -> str:
    """The opaque id of the oldest record (``created_at``, stored as sortable UTC text)."""
    oldest = min(records, key=lambda r: (r.row["created_at"], r.order()))
    return "cus_" + base64.urlsafe_b64encode(oldest.ref.encode()).decode().rstrip("=")


def _cursor(rank: int, key: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([rank, key]).encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[int, int]:
    rank, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return int(rank), int(key)


def _marks(n: int) -> str:
    return ",".join("?" * n)


class Floor:
    """The floor over the three demo databases in ``data_dir``."""

    def __init__(
        self,
        pools: dict[str, asyncio.Queue[aiosqlite.Connection]],
        plain: dict[str, sqlite3.Connection] | None = None,
    ) -> None:
        self._pools = pools
        self._plain = plain
        """One ``sqlite3`` connection per source used on the loop's thread, or None."""
        self.statements = 0
        """Statements sent so far."""

    @classmethod
    async def open(
        cls, data_dir: Path, pool_size: int = POOL_SIZE, inline: bool | None = None
    ) -> Floor:
        """``inline`` (default: :data:`INLINE_ENV`): statements on the loop's thread."""
        if inline is None:
            inline = os.environ.get(INLINE_ENV) == "1"
        pools: dict[str, asyncio.Queue[aiosqlite.Connection]] = {}
        plain: dict[str, sqlite3.Connection] = {}
        for source in ("crm", "support", "sales"):
            uri = f"file:{(data_dir / f'{source}.db').resolve()}?mode=ro"
            if inline:
                plain[source] = sqlite3.connect(uri, uri=True)
                continue
            queue: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
            for _ in range(pool_size):
                queue.put_nowait(await aiosqlite.connect(uri, uri=True))
            pools[source] = queue
        return cls(pools, plain if inline else None)

    async def aclose(self) -> None:
        for connection in (self._plain or {}).values():
            connection.close()
        for queue in self._pools.values():
            while not queue.empty():
                await queue.get_nowait().close()

    @asynccontextmanager
    async def _conn(self, source: str) -> AsyncIterator[aiosqlite.Connection]:
        queue = self._pools[source]
        conn = await queue.get()
        try:
            yield conn
        finally:
            queue.put_nowait(conn)

    async def fetch(self, source: str, sql: str, params: Sequence[Any]) -> list[Any]:
        self.statements += 1
        if self._plain is not None:
            cursor = self._plain[source].execute(sql, params)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()
        async with self._conn(source) as conn:
            return list(await conn.execute_fetchall(sql, params))

    # -- stitching ---------------------------------------------------------

    async def _lookup(
        self, member: Member, emails: Sequence[str], phones: Sequence[str]
    ) -> list[tuple[dict[str, Any], tuple[Any, ...]]]:
        """Rows of ``member`` whose identity columns match; with each the transformed
        values. Several statements when the values pass SQLite's bind-parameter limit
        (as custview's ``max_batch_size``); a row may then come back twice."""
        ident = [i for i in member.identity if (emails if i[0] == "email" else phones)]
        if not ident:
            return []
        values = [("email", v) for v in emails] + [("phone", v) for v in phones]
        per = MAX_PARAMS // len(ident)
        if len(values) <= per:
            return await self._lookup_once(member, ident, emails, phones)
        parts = [values[i : i + per] for i in range(0, len(values), per)]
        found = await asyncio.gather(
            *(
                self._lookup_once(
                    member,
                    ident,
                    [v for k, v in part if k == "email"],
                    [v for k, v in part if k == "phone"],
                )
                for part in parts
            )
        )
        return [row for rows in found for row in rows]

    async def _lookup_once(
        self,
        member: Member,
        ident: Sequence[tuple[str, str, str]],
        emails: Sequence[str],
        phones: Sequence[str],
    ) -> list[tuple[dict[str, Any], tuple[Any, ...]]]:
        ident = [i for i in ident if (emails if i[0] == "email" else phones)]
        where: list[str] = []
        params: list[str] = []
        for key_name, _, expr in ident:
            values = emails if key_name == "email" else phones
            where.append(f"{expr} IN ({_marks(len(values))})")
            params.extend(values)
        exprs = ", ".join(expr for _, _, expr in member.identity)
        sql = (
            f"SELECT {', '.join(member.columns)}, {exprs} FROM {member.table} "
            f"WHERE {' OR '.join(where)}"
        )
        n = len(member.columns)
        return [
            (dict(zip(member.columns, row[:n], strict=True)), row[n:])
            for row in await self.fetch(member.source, sql, params)
        ]

    async def stitch(
        self, seeds: Iterable[Rec] = (), keys: Iterable[KeyNode] = ()
    ) -> tuple[dict[str, Rec], _UnionFind]:
        """Records reachable from the seeds and how they group (as resolvers.identity)."""
        records: dict[str, Rec] = {}
        uf = _UnionFind()
        queried: set[KeyNode] = set()
        frontier: set[KeyNode] = set(keys)

        def add(rec: Rec) -> set[KeyNode]:
            records[rec.ref] = rec
            found = rec.keys()
            for k in found:
                uf.union(rec.ref, k)
            return found

        for rec in seeds:
            frontier |= add(rec) - queried
        rounds = 0
        while frontier and rounds < MAX_ROUNDS:
            rounds += 1
            queried |= frontier
            emails = sorted(v for k, v in frontier if k == "email")
            variants: dict[str, set[str]] = defaultdict(set)
            for k, v in frontier:
                if k == "phone":
                    for variant in phone_digit_variants(v):
                        variants[variant].add(v)
            email_set = set(emails)
            results = await asyncio.gather(
                *(self._lookup(m, emails, sorted(variants)) for m in MEMBERS)
            )
            frontier = set()
            for member, rows in zip(MEMBERS, results, strict=True):
                region_col = member.region
                for i, (key_name, col, _) in enumerate(member.identity):
                    by_key: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
                    for row, exprs in rows:
                        value: str | None
                        if key_name == "email":
                            if exprs[i] not in email_set:
                                continue
                            value = normalize_email(row[col])
                            wanted: set[str] = {exprs[i]}
                        else:
                            wanted = variants.get(exprs[i], set())
                            if not wanted:
                                continue
                            region = row[region_col] if region_col else None
                            value = normalize_phone(row[col], region, DEFAULT_REGION)
                        if value in wanted:
                            assert value is not None
                            by_key[value][row["id"]] = row
                    for value, matched in by_key.items():
                        if len(matched) > MAX_KEY_FANOUT:
                            continue
                        for row in matched.values():
                            rec = Rec(member, row)
                            if rec.ref not in records:
                                frontier |= add(rec)
                            uf.union(rec.ref, (key_name, value))
            frontier -= queried
        return records, uf

    # -- children ----------------------------------------------------------

    async def _children(self, source: str, sql: str, keys: Sequence[int]) -> list[Any]:
        """Child rows of ``keys`` in the statement's order (no statement for no keys)."""
        if not keys:
            return []
        return await self.fetch(source, sql.format(_marks(len(keys))), keys)

    # -- the two operations ------------------------------------------------

    async def customer_by_email(self, email: str) -> str:
        """The JSON answer of the benchmark's customer-360 query."""
        normal = normalize_email(email)
        if normal is None:
            raise ValueError(f"{email!r} is not an email address")
        found, _ = await self.stitch(keys=[("email", normal)])
        if not found:
            return json.dumps({"data": {"customer": None}})
        records = sorted(found.values(), key=Rec.order)
        tickets, orders, opportunities = await asyncio.gather(
            self._children(
                "support",
                "SELECT id, subject, status, created_at FROM tickets "
                "WHERE requester_id IN ({}) ORDER BY created_at DESC, id DESC",
                _keys(records, SUPPORT_USERS),
            ),
            self._children(
                "sales",
                "SELECT id, order_number, total, created_at FROM orders "
                "WHERE customer_id IN ({}) ORDER BY created_at DESC, id DESC",
                _keys(records, SALES_CUSTOMERS),
            ),
            self._children(
                "crm",
                "SELECT id, stage, amount FROM opportunities "
                "WHERE contact_id IN ({}) ORDER BY close_date DESC, id DESC",
                _keys(records, CONTACTS),
            ),
        )
        values, provenance = golden(records)
        customer = {
            "id": customer_id(records),
            "name": values["name"],
            "email": values["email"],
            "phone": values["phone"],
            "country": values["country"],
            "sourceRecords": [{"ref": r.ref} for r in records],
            "provenance": provenance,
            "tickets": [
                {"id": str(i), "subject": subject, "status": status, "createdAt": _ts(created)}
                for i, subject, status, created in tickets
            ],
            "orders": [
                {"id": str(i), "orderNumber": number, "total": _money(total), "createdAt": _ts(at)}
                for i, number, total, at in orders
            ],
            "opportunities": [
                {"id": str(i), "stage": stage, "amount": _money(amount)}
                for i, stage, amount in opportunities
            ],
        }
        return json.dumps({"data": {"customer": customer}})

    async def page(self, first: int, after: str | None) -> str:
        """The JSON answer of the benchmark's page query (keyset, as RequestView.page)."""
        rank, last = _uncursor(after) if after else (0, None)
        found: list[tuple[str, list[Rec]]] = []
        while rank < len(MEMBERS) and len(found) <= first:
            member = MEMBERS[rank]
            want = first + 1 - len(found)
            limit = want + want // 4 + 2
            cols = ", ".join(member.columns)
            if last is None:
                sql = f"SELECT {cols} FROM {member.table} ORDER BY id LIMIT ?"
                params: list[Any] = [limit]
            else:
                sql = f"SELECT {cols} FROM {member.table} WHERE id > ? ORDER BY id LIMIT ?"
                params = [last, limit]
            rows = await self.fetch(member.source, sql, params)
            if not rows:
                rank, last = rank + 1, None
                continue
            seeds = [Rec(member, dict(zip(member.columns, row, strict=True))) for row in rows]
            reached, uf = await self.stitch(seeds=seeds)
            groups: dict[object, list[Rec]] = defaultdict(list)
            for rec in reached.values():
                groups[uf.find(rec.ref)].append(rec)
            for seed in seeds:
                last = seed.key
                cluster = sorted(groups[uf.find(seed.ref)], key=Rec.order)
                if cluster[0].ref == seed.ref:
                    found.append((_cursor(rank, seed.key), cluster))
                    if len(found) > first:
                        break
        page = found[:first]
        owner: dict[tuple[int, int], int] = {}
        for n, (_, cluster) in enumerate(page):
            for r in cluster:
                owner[(r.member.rank, r.key)] = n
        tickets, orders = await asyncio.gather(
            self._children(
                "support",
                "SELECT id, requester_id, status FROM tickets "
                "WHERE requester_id IN ({}) ORDER BY created_at DESC, id DESC",
                [k for _, c in page for k in _keys(c, SUPPORT_USERS)],
            ),
            self._children(
                "sales",
                "SELECT id, customer_id, total FROM orders "
                "WHERE customer_id IN ({}) ORDER BY created_at DESC, id DESC",
                [k for _, c in page for k in _keys(c, SALES_CUSTOMERS)],
            ),
        )
        nodes: list[dict[str, Any]] = []
        for _, cluster in page:
            values, _ = golden(cluster)
            nodes.append(
                {
                    "id": customer_id(cluster),
                    "name": values["name"],
                    "email": values["email"],
                    "sourceRecords": [{"ref": r.ref} for r in cluster],
                    "tickets": [],
                    "orders": [],
                }
            )
        for i, user, status in tickets:
            nodes[owner[(SUPPORT_USERS.rank, user)]]["tickets"].append(
                {"id": str(i), "status": status}
            )
        for i, buyer, total in orders:
            nodes[owner[(SALES_CUSTOMERS.rank, buyer)]]["orders"].append(
                {"id": str(i), "total": _money(total)}
            )
        info = {"endCursor": page[-1][0] if page else after, "hasNextPage": len(found) > first}
        return json.dumps({"data": {"customers": {"pageInfo": info, "nodes": nodes}}})


def _keys(records: Iterable[Rec], member: Member) -> list[int]:
    return [r.key for r in records if r.member is member]
