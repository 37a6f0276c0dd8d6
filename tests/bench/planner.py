"""``make bench`` (planner part): filtered pages, segment counts and timelines
next to a hand-written SQL floor measured in the same run.

For demo data of 100,000 customers (1,000,000 too with
``CUSTVIEW_BENCH_1M=1``; cached in ``bench-data/<customers>/`` like
:mod:`tests.bench.run`) it times, interleaved in one event loop:

* **cross-source filtered page** — ``country = DE``, ``openTickets >= 2``,
  ``lifetimeValue >= 1000``, ordered by lifetime value, first 50;
* **segment count** — ``segment(name: "marketing-qualified-lead") { count }``;
* **timeline page** — ``customer(email:) { timeline(first: 20) }`` for
  sampled emails.

custview runs as the gateway serves it: the governed schema with the fast
path (:func:`gateway.app.gateway_schema`, called as the demo key), so the
timeline is answered by the compiled executor; the table says how many
requests of each operation were compiled.

The floor is plain SQL through aiosqlite with the same stitching as
custview (:class:`tests.bench.floor.Floor`): the selective condition read
where it lives, the candidates' keys sent as ``IN`` lists with ``GROUP BY``
to the other databases. Both answers must agree (ids, values, event refs)
or the run aborts. It prints p50, the custview/floor ratio, and statements
and rows fetched per request (custview's from its explain observer, in one untimed
run of each distinct request: the timed ones run unobserved, as the gateway serves them).

    python -m tests.bench.planner [--sizes 100000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sqlite3
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from connectors.observe import observing
from gateway.app import gateway_schema
from gateway.settings import load_settings
from resolvers.collector import collector_paused
from resolvers.fastpath import FastPath
from resolvers.lifecycle import parts_of
from resolvers.view import Federation
from tests.bench.floor import (
    CONTACTS,
    SALES_CUSTOMERS,
    SUPPORT_USERS,
    Floor,
    Rec,
    _keys,
    _marks,
    customer_id,
    golden,
)
from tests.bench.hot import MemoryAuditLog, demo_context
from tests.bench.run import (
    DEFAULT_DATA_ROOT,
    BenchError,
    Custview,
    demo_dir_env,
    ensure_data,
    sample_emails,
    sql_only_config,
)

FILTERED = """{ customers(first: 50, filter: {country: {eq: "DE"}, openTickets: {ge: 2},
    lifetimeValue: {ge: 1000}}, orderBy: [{field: lifetimeValue, direction: DESC}]) {
    nodes { id lifetimeValue openTickets } } }"""
SELECTIVE = """{ customers(first: 50, filter: {tickets: {priority: {eq: "urgent"},
    status: {eq: "open"}, createdAt: {ge: "%s"}}, lifetimeValue: {ge: 100}},
    orderBy: [{field: lifetimeValue, direction: DESC}]) {
    nodes { id lifetimeValue openTickets } } }"""
"""Customers with an urgent open ticket raised since a moment (the ``%s``) and a lifetime
value of at least 100: one selective condition (support) and one broad (sales)."""
SELECTIVE_TICKETS = 40
"""The moment is that of the 40th most recent urgent open ticket at each size, so the
filter matches as many records at 100,000 customers as at 1,000,000 (by a time window
it would match ten times as many): what its latency must not grow with is the number
of customers."""
KEYED = """{ customers(first: 50, filter: {email: {in: %s}, openTickets: {ge: 1}}) {
    nodes { id openTickets } } }"""
"""Which of 20 people (by email) have an open ticket: a selective condition the sources
answer by index (identity keys), with a cross-source metric."""
SEGMENT = '{ segment(name: "marketing-qualified-lead") { count } }'
TIMELINE = """query($e: String!) { customer(email: $e) {
    timeline(first: 20) { nodes { kind ref } } } }"""
OPEN = ("new", "open", "pending", "hold")
PAID = ("paid", "fulfilled")

Answer = tuple[Any, int, Any]
"""(comparable answer, statements, rows fetched: a count, or custview's way to count
them after the timed request)."""


class CountingFloor(Floor):
    """The floor, counting the rows its statements return.

    Like custview's planner (:mod:`resolvers.collector`), it pauses the cyclic
    collector once its seed records are read, while it stitches their customers and
    checks them (a keyed page: its whole stitching), so the ratio compares the code,
    not the collector's settings; the timeline is no planner operation on either
    side and runs with the collector on.
    """

    rows = 0

    async def fetch(self, source: str, sql: str, params: Sequence[Any]) -> list[Any]:
        found = await super().fetch(source, sql, params)
        self.rows += len(found)
        return found

    async def _customers(self, seeds: list[Rec]) -> list[list[Rec]]:
        """Stitched customers of ``seeds``, each its records in canonical order."""
        records, uf = await self.stitch(seeds=seeds)
        groups: dict[object, list[Rec]] = defaultdict(list)
        for rec in records.values():
            groups[uf.find(rec.ref)].append(rec)
        return sorted(
            (sorted(g, key=Rec.order) for g in groups.values()), key=lambda g: g[0].order()
        )

    async def _rows(self, member: Any, where: str, params: Sequence[Any]) -> list[Rec]:
        sql = f"SELECT {', '.join(member.columns)} FROM {member.table} WHERE {where}"
        rows = await self.fetch(member.source, sql, params)
        return [Rec(member, dict(zip(member.columns, r, strict=True))) for r in rows]

    async def filtered_page(self) -> list[tuple[str, str, int]]:
        contacts, customers = await asyncio.gather(
            self._rows(CONTACTS, "country = ?", ["DE"]),
            self._rows(SALES_CUSTOMERS, "country = ?", ["DE"]),
        )
        with collector_paused():
            found = await self._customers(contacts + customers)
            found = [c for c in found if golden(c)[0]["country"] == "DE"]
            return await self._by_value(found, min_tickets=2, min_value=1000)

    async def selective_page(self, since: str) -> list[tuple[str, str, int]]:
        """:data:`SELECTIVE`: the requesters of the matching tickets, their users,
        stitched; then the same metrics as the filtered page. The requesters are made
        distinct here: SQLite answers a ``DISTINCT`` by walking the requester index
        over every ticket rather than reading the date window by its index."""
        found = await self.fetch(
            "support",
            "SELECT requester_id FROM tickets WHERE priority = ? AND status = ? "
            "AND created_at >= ?",
            ["urgent", "open", since],
        )
        requesters = sorted({r[0] for r in found})
        users = (
            await self._rows(SUPPORT_USERS, f"id IN ({_marks(len(requesters))})", requesters)
            if requesters
            else []
        )
        with collector_paused():
            found = await self._customers(users)
            return await self._by_value(found, min_tickets=0, min_value=100)

    async def keyed_page(self, emails: Sequence[str]) -> list[tuple[str, int]]:
        """:data:`KEYED`: the customers holding the emails' keys whose golden email is
        one of them, with at least one open ticket."""
        from resolvers.normalize import normalize_email

        normal = {n for n in map(normalize_email, emails) if n}
        with collector_paused():
            return await self._keyed(normal)

    async def _keyed(self, normal: set[str]) -> list[tuple[str, int]]:
        from resolvers.normalize import normalize_email

        records, uf = await self.stitch(keys=[("email", n) for n in sorted(normal)])
        groups: dict[object, list[Rec]] = defaultdict(list)
        for rec in records.values():
            groups[uf.find(rec.ref)].append(rec)
        found = sorted(
            (sorted(g, key=Rec.order) for g in groups.values()), key=lambda g: g[0].order()
        )
        found = [c for c in found if normalize_email(golden(c)[0]["email"] or "") in normal]
        tickets = await self._open_tickets(
            sorted({k for c in found for k in _keys(c, SUPPORT_USERS)})
        )
        kept = []
        for c in found:
            n = sum(tickets.get(k, 0) for k in _keys(c, SUPPORT_USERS))
            if n >= 1:
                kept.append((customer_id(c), n))
        return kept[:50]

    async def _by_value(
        self, found: list[list[Rec]], min_tickets: int, min_value: int
    ) -> list[tuple[str, str, int]]:
        """The first 50 of ``found`` with at least ``min_tickets`` open tickets and a
        lifetime value of at least ``min_value``, by lifetime value."""
        users = sorted({k for c in found for k in _keys(c, SUPPORT_USERS)})
        buyers = sorted({k for c in found for k in _keys(c, SALES_CUSTOMERS)})
        tickets, spent = await asyncio.gather(
            self._open_tickets(users), self._lifetime_values(buyers)
        )
        kept = []
        for c in found:
            n = sum(tickets.get(k, 0) for k in _keys(c, SUPPORT_USERS))
            ltv = sum((spent.get(k, Decimal(0)) for k in _keys(c, SALES_CUSTOMERS)), Decimal(0))
            if n >= min_tickets and ltv >= min_value:
                kept.append((customer_id(c), f"{ltv.quantize(Decimal('0.01'))}", n))
        kept.sort(key=lambda t: Decimal(t[1]), reverse=True)
        return kept[:50]

    async def _open_tickets(self, users: Sequence[int]) -> dict[int, Any]:
        return await self._per_parent("support", "count(*)", "tickets", "requester_id", users, OPEN)

    async def _lifetime_values(self, buyers: Sequence[int]) -> dict[int, Decimal]:
        totals = await self._per_parent(
            "sales", "sum(total)", "orders", "customer_id", buyers, PAID
        )
        return {k: Decimal(str(v)).quantize(Decimal("0.01")) for k, v in totals.items()}

    async def _per_parent(
        self,
        source: str,
        aggregate: str,
        table: str,
        parent: str,
        keys: Sequence[int],
        statuses: Sequence[str],
    ) -> dict[int, Any]:
        """``aggregate`` of ``table``'s rows in ``statuses`` per ``parent`` key, 500 keys
        a statement."""
        found: dict[int, Any] = {}
        for start in range(0, len(keys), 500):
            part = list(keys[start : start + 500])
            sql = (
                f"SELECT {parent}, {aggregate} FROM {table} WHERE {parent} IN "
                f"({_marks(len(part))}) AND status IN ({_marks(len(statuses))}) GROUP BY {parent}"
            )
            for key, value in await self.fetch(source, sql, [*part, *statuses]):
                found[key] = value
        return found

    async def segment_count(self) -> int:
        seeds = await self._rows(CONTACTS, "lifecycle_stage = ?", ["marketing_qualified"])
        with collector_paused():
            found = await self._customers(seeds)
            # a marketing segment: only customers who may be contacted (consent unknown counts)
            return sum(1 for c in found if _contactable_mql(golden(c)[0]))

    async def timeline(self, email: str) -> list[str]:
        from resolvers.normalize import normalize_email

        normal = normalize_email(email)
        records, _ = await self.stitch(keys=[("email", normal)] if normal else [])
        recs = list(records.values())
        reads = (
            ("ticket", "support", "tickets", "created_at", "requester_id", SUPPORT_USERS),
            ("order", "sales", "orders", "created_at", "customer_id", SALES_CUSTOMERS),
            ("opportunity", "crm", "opportunities", "close_date", "contact_id", CONTACTS),
        )

        async def read(
            kind: str, source: str, table: str, at: str, parent: str, member: Any
        ) -> list[tuple[str, int, str]]:
            keys = _keys(recs, member)
            if not keys:
                return []
            sql = (
                f"SELECT {at}, id FROM {table} WHERE {parent} IN ({_marks(len(keys))}) "
                f"ORDER BY {at} DESC, id DESC LIMIT 21"
            )
            rows = await self.fetch(source, sql, keys)
            return [(str(when), i, f"{source}/{table}/{i}") for when, i in rows]

        events = [e for part in await asyncio.gather(*(read(*r) for r in reads)) for e in part]
        events.sort(key=lambda e: (e[0], e[1]), reverse=True)
        return sorted(ref for _, _, ref in events[:20])


def selective_since(data_dir: Path) -> str:
    """When the :data:`SELECTIVE_TICKETS`-th most recent urgent open ticket was raised
    (the oldest one's when there are fewer), as stored (naive UTC)."""
    con = sqlite3.connect(f"file:{data_dir / 'support.db'}?mode=ro", uri=True)
    try:
        row = con.execute(
            "SELECT min(created_at) FROM (SELECT created_at FROM tickets WHERE "
            "priority = 'urgent' AND status = 'open' ORDER BY created_at DESC LIMIT ?)",
            [SELECTIVE_TICKETS],
        ).fetchone()
    finally:
        con.close()
    return str(row[0])


def _contactable_mql(values: dict[str, Any]) -> bool:
    consent = values["acceptsMarketing"]
    return values["lifecycleStage"] == "marketing_qualified" and (consent is None or bool(consent))


class GovernedCustview(Custview):
    """custview as the gateway serves it: the governed schema with the fast path
    (:func:`gateway.app.gateway_schema`, as :mod:`tests.bench.hot` runs it), called
    as the demo key (role admin), audited in memory."""

    def __init__(self, data_dir: Path, config: Path) -> None:
        with demo_dir_env(data_dir):
            self.loaded = load_settings(config)
        self.federation = Federation(self.loaded.settings.model, self.loaded.create_connectors())
        self.schema = gateway_schema(self.loaded, fast_path=True)
        self.fast_path = next(
            e.__self__
            for e in parts_of(self.schema.extensions)
            if isinstance(getattr(e, "__self__", None), FastPath)
        )
        self.grant = self.loaded.policy.grant(["admin"])
        self.audit = MemoryAuditLog()
        self.fetched: dict[str, int] = {}
        """Rows fetched per distinct request (query and variables), once observed."""

    def context(self) -> dict[str, Any]:
        return demo_context(self.loaded, self.federation, self.grant, self.audit)

    async def execute(self, query: str, variables: dict[str, Any]) -> tuple[str, int]:
        before = self.statements()
        result = await self.schema.execute(
            query, variable_values=variables, context_value=self.context()
        )
        if result.errors:
            raise BenchError(f"custview answered with errors: {result.errors}")
        return json.dumps({"data": result.data}), self.statements() - before


def _rows_of(plan: dict[str, Any]) -> int:
    return sum(int(s["rows"]) for s in plan.get("sources", []))


async def _custview(cv: GovernedCustview, query: str, variables: dict[str, Any]) -> Answer:
    """The request as the gateway serves it, without the explain observer (its
    per-statement bookkeeping is explain's, and the floor has none); the rows it
    fetched are counted afterwards, untimed (:func:`_operation`)."""
    text, statements = await cv.execute(query, variables)
    return json.loads(text)["data"], statements, functools.partial(_fetched, cv, query, variables)


async def _fetched(cv: GovernedCustview, query: str, variables: dict[str, Any]) -> int:
    """Rows the request fetches, from one observed run of each distinct request."""
    key = json.dumps([query, variables], sort_keys=True)
    if key not in cv.fetched:
        with observing() as observer:
            await cv.execute(query, variables)
        cv.fetched[key] = _rows_of(observer.report())
    return cv.fetched[key]


async def _timed(run: Callable[[int], Awaitable[Answer]], i: int) -> tuple[float, Answer, float]:
    """Wall ms, the answer, and CPU ms of the whole process (its threads included:
    custview and the floor take turns, so it is this request's)."""
    started, cpu = time.perf_counter(), time.process_time()
    answer = await run(i)
    return (time.perf_counter() - started) * 1000, answer, (time.process_time() - cpu) * 1000


async def _operation(
    name: str,
    runs: int,
    custview: Callable[[int], Awaitable[Answer]],
    floor: Callable[[int], Awaitable[Answer]],
    keep_going: bool = False,
) -> dict[str, Any]:
    cv: list[tuple[float, Answer, float]] = []
    fl: list[tuple[float, Answer, float]] = []
    disagreements = 0
    for i in range(runs + 1):  # the first pair warms up
        pair = (custview, floor) if i % 2 == 0 else (floor, custview)
        first = await _timed(pair[0], i)
        second = await _timed(pair[1], i)
        c, f = (first, second) if i % 2 == 0 else (second, first)
        if callable(c[1][2]):  # custview's rows, counted untimed
            c = (c[0], (*c[1][:2], await c[1][2]()), c[2])
        if c[1][0] != f[1][0]:
            message = f"{name}: custview and the floor disagree\n  {c[1][0]}\n  {f[1][0]}"
            if not keep_going:
                raise BenchError(message)
            print(message, file=sys.stderr)
            disagreements += 1
        if i:
            cv.append(c)
            fl.append(f)

    def stats(samples: list[tuple[float, Answer, float]]) -> dict[str, float]:
        return {
            "p50_ms": round(statistics.median(ms for ms, _, _ in samples), 2),
            "cpu_ms": round(statistics.fmean(cpu for _, _, cpu in samples), 2),
            "statements": round(statistics.fmean(a[1] for _, a, _ in samples), 1),
            "rows": round(statistics.fmean(a[2] for _, a, _ in samples), 1),
        }

    a, b = stats(cv), stats(fl)
    ratio = round(a["p50_ms"] / b["p50_ms"], 2)
    return {"custview": a, "floor": b, "ratio_p50": ratio, "disagreements": disagreements}


SOURCE_TIMEOUT = 120
"""Seconds: a million customers' reads on a loaded machine take longer than the demo's
5 s, and the benchmark times them rather than failing."""


def patient_config(data_dir: Path) -> Path:
    """:func:`tests.bench.run.sql_only_config` with SOURCE_TIMEOUT for every source."""
    config = yaml.safe_load(sql_only_config(data_dir).read_text())
    for source in config["sources"].values():
        source["options"]["timeout"] = SOURCE_TIMEOUT
    path = data_dir / "bench-planner-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


OPERATIONS = ("filtered_page", "selective_page", "keyed_page", "segment_count", "timeline_page")


async def bench_size(
    data_dir: Path, quick: bool, operations: Sequence[str] = OPERATIONS, keep_going: bool = False
) -> dict[str, Any]:
    custview = GovernedCustview(data_dir, patient_config(data_dir))
    floor = CountingFloor((await Floor.open(data_dir))._pools)
    emails = sample_emails(data_dir, 10 if quick else 40)
    runs = 3 if quick else 15

    def on_floor(fn: Callable[[int], Awaitable[Any]]) -> Callable[[int], Awaitable[Answer]]:
        async def run(i: int) -> Answer:
            statements, rows = floor.statements, floor.rows
            answer = await fn(i)
            return answer, floor.statements - statements, floor.rows - rows

        return run

    async def cv_page(i: int) -> Answer:
        data, statements, rows = await _custview(custview, FILTERED, {})
        nodes = data["customers"]["nodes"]
        return (
            [(n["id"], n["lifetimeValue"], n["openTickets"]) for n in nodes],
            statements,
            rows,
        )

    since = selective_since(data_dir)
    selective = SELECTIVE % since.replace(" ", "T")

    async def cv_selective(i: int) -> Answer:
        data, statements, rows = await _custview(custview, selective, {})
        nodes = data["customers"]["nodes"]
        return (
            [[n["id"], n["lifetimeValue"], n["openTickets"]] for n in nodes],
            statements,
            rows,
        )

    keyed_emails = sample_emails(data_dir, 20)
    keyed = KEYED % json.dumps(keyed_emails)

    async def cv_keyed(i: int) -> Answer:
        data, statements, rows = await _custview(custview, keyed, {})
        nodes = data["customers"]["nodes"]
        return [[n["id"], n["openTickets"]] for n in nodes], statements, rows

    async def cv_segment(i: int) -> Answer:
        data, statements, rows = await _custview(custview, SEGMENT, {})
        return data["segment"]["count"], statements, rows

    async def cv_timeline(i: int) -> Answer:
        data, statements, rows = await _custview(custview, TIMELINE, {"e": emails[i % len(emails)]})
        nodes = (data["customer"] or {}).get("timeline", {}).get("nodes", [])
        return sorted(n["ref"] for n in nodes), statements, rows

    async def fl_page(i: int) -> Any:
        return [list(t) for t in await floor.filtered_page()]

    async def fl_selective(i: int) -> Any:
        return [list(t) for t in await floor.selective_page(since)]

    async def fl_keyed(i: int) -> Any:
        return [list(t) for t in await floor.keyed_page(keyed_emails)]

    async def fl_timeline(i: int) -> Any:
        return await floor.timeline(emails[i % len(emails)])

    try:

        async def fl_segment(i: int) -> Any:
            return await floor.segment_count()

        results: dict[str, Any] = {}
        fast = custview.fast_path

        async def measure(name: str, title: str, n: int, cv: Any, fl: Any) -> None:
            compiled = fast.compiled
            results[name] = await _operation(title, n, cv, fl, keep_going)
            results[name]["compiled"] = fast.compiled - compiled

        if "filtered_page" in operations:
            await measure(
                "filtered_page",
                "filtered page",
                runs,
                lambda i: _listify(cv_page(i)),
                on_floor(fl_page),
            )
        if "selective_page" in operations:
            await measure(
                "selective_page",
                f"selective page (since {since})",
                runs,
                cv_selective,
                on_floor(fl_selective),
            )
            results["selective_page"]["since"] = since
        if "keyed_page" in operations:
            await measure("keyed_page", "keyed page", runs, cv_keyed, on_floor(fl_keyed))
        if "segment_count" in operations:
            await measure("segment_count", "segment count", runs, cv_segment, on_floor(fl_segment))
        if "timeline_page" in operations:
            await measure(
                "timeline_page", "timeline page", runs * 2, cv_timeline, on_floor(fl_timeline)
            )
        return results
    finally:
        await custview.aclose()
        await floor.aclose()


async def _listify(answer: Awaitable[Answer]) -> Answer:
    value, statements, rows = await answer
    return [list(t) for t in value], statements, rows


TITLES = {
    "filtered_page": "filtered page (DE, open tickets >= 2, LTV >= 1000, by LTV)",
    "selective_page": "selective page (urgent open ticket since the 40th latest, LTV >= 100)",
    "keyed_page": "keyed page (20 emails, open tickets >= 1)",
    "segment_count": "segment count (marketing-qualified-lead)",
    "timeline_page": "timeline page (20 events, by email)",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.planner", description=__doc__)
    default = ["100000", "1000000"] if os.environ.get("CUSTVIEW_BENCH_1M") else ["100000"]
    parser.add_argument("--sizes", nargs="+", default=default)
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--output", type=Path, help="results JSON (default DATA_DIR/planner.json)")
    parser.add_argument(
        "--operations", nargs="+", choices=OPERATIONS, default=list(OPERATIONS), help="a subset"
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="count answers that differ from the floor's (printed) instead of aborting",
    )
    args = parser.parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=140)
    results: dict[str, Any] = {"quick": args.quick, "sizes": []}
    try:
        for size in (int(s.replace("_", "")) for s in args.sizes):
            data_dir = ensure_data(args.data_dir, size, console)
            ops = asyncio.run(bench_size(data_dir, args.quick, args.operations, args.keep_going))
            results["sizes"].append({"customers": size, "operations": ops})
            table = Table(title=f"planner, {size:,} customers", box=box.SIMPLE)
            columns = ("operation", "custview p50", "floor p50", "ratio", "CPU ms/req (cv / floor)")
            for column in (*columns, "statements", "rows", "fast path"):
                table.add_column(column)
            for name, op in ops.items():
                cv, fl = op["custview"], op["floor"]
                table.add_row(
                    TITLES[name],
                    f"{cv['p50_ms']} ms",
                    f"{fl['p50_ms']} ms",
                    f"{op['ratio_p50']}x"
                    + (f" ({op['disagreements']} answers differ)" if op["disagreements"] else ""),
                    f"{cv['cpu_ms']} / {fl['cpu_ms']}",
                    f"{cv['statements']} / {fl['statements']}",
                    f"{cv['rows']} / {fl['rows']}",
                    f"{op['compiled']} compiled",
                )
            console.print(table)
    except BenchError as exc:
        console.print(f"[bold red]benchmark aborted:[/] {exc}")
        return 1
    output = args.output or args.data_dir / "planner.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
