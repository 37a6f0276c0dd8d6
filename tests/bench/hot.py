"""``make bench``: the hot customer queries — floor, general path, fast path.

Two requests, answered three ways over the same demo databases (default
100,000 customers; ``--million`` adds 1,000,000, generated once into
``bench-data/``, about 3 CPU-minutes):

* **customer 360** — one customer by email whose records hold 8-12 support
  tickets and 3-7 orders (the query of :mod:`tests.bench.run`);
* **page of 50** — consecutive keyset pages of customers with their
  source records, tickets and orders.

The contenders: the hand-written SQL **floor** (:mod:`tests.bench.floor`),
custview's **general** path (strawberry + graphql-core executing the
gateway's governed schema, with the parse/validation cache) and its **fast**
path (the same schema with the compiled executor of
:mod:`resolvers.fastpath`). Every answer of every contender must agree
(cursors aside) or the run aborts.

Each is timed in process (one event loop, requests interleaved; p50, p95
and CPU per request, which counts aiosqlite's threads) and over HTTP: each
is served by one uvicorn worker in its own process and loaded by
:mod:`tests.bench.hot_http` at concurrency 10 (req/s, p50, p95, the
server's CPU per request). Ratios are against the floor of the same run.

``--floor-inline`` runs the floor's statements on the event loop's thread
(``sqlite3``, no aiosqlite hop), as custview's SQLite direct path runs its
short ones: the floor with the same driver strategy.

``--calls`` counts instead of timing: each contender answers the run's
customer 360s and pages in process under cProfile (after a warm-up), and the
function calls per request are printed by file or package. Counts do not
move with the machine's load, so they tell a cut apart where timings on a
busy machine cannot. Unless ``--no-http``, it also counts the HTTP apps
themselves (:func:`tests.bench.hot_http.app_calls`: the floor's Starlette
route and the gateway's app with the fast path, the demo key and the audit
log, driven through ASGI in process): the app's count less the in-process
one is what the HTTP layer costs each side.

    python -m tests.bench.hot [--quick] [--million] [--customers N ...] [--no-http]
                              [--floor-inline] [--calls]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from gateway import heap
from gateway.app import gateway_schema
from gateway.settings import LoadedSettings, load_settings
from resolvers.audit import Auditor, Caller
from resolvers.governance import ReadTrail
from resolvers.policy import Grant
from resolvers.view import Federation
from tests.bench import hot_http
from tests.bench.floor import INLINE_ENV as FLOOR_INLINE_ENV
from tests.bench.floor import Floor
from tests.bench.hotspots import calls_by_area
from tests.bench.run import (
    CUSTOMER_QUERY,
    DEFAULT_DATA_ROOT,
    PAGE_QUERY,
    PAGE_SIZE,
    BenchError,
    _without_cursors,
    demo_dir_env,
    ensure_data,
    first_difference,
    sql_only_config,
)

CONTENDERS = ("floor", "general", "fast")
APPS = ("floor", "fast")
"""The contenders whose HTTP app ``--calls`` counts too."""
CALL_AREAS = 25
"""Areas shown per operation by ``--calls`` (those with the most calls)."""
OPERATIONS = {"customer_360": "customer 360 (~10 tickets, ~5 orders)", "page_50": "page of 50"}


@dataclass(frozen=True, slots=True)
class Plan:
    emails: int
    pages: int
    warmup: int
    http_requests: int

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        if quick:
            return cls(emails=30, pages=10, warmup=5, http_requests=300)
        return cls(emails=150, pages=40, warmup=10, http_requests=2000)


def busy_emails(data_dir: Path, n: int) -> list[str]:
    """Emails (as stored in sales) of people with 8-12 tickets and 3-7 orders
    (matched in Python: a join on the normalised email has no index to use)."""
    con = sqlite3.connect(f"file:{data_dir / 'support.db'}?mode=ro", uri=True)
    try:
        busy = {
            str(r[0])
            for r in con.execute(
                "SELECT lower(trim(u.email)) FROM users u JOIN (SELECT requester_id, count(*) n "
                "FROM tickets GROUP BY requester_id HAVING n BETWEEN 8 AND 12) t "
                "ON t.requester_id = u.id WHERE u.email IS NOT NULL"
            )
        }
    finally:
        con.close()
    con = sqlite3.connect(f"file:{data_dir / 'sales.db'}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT c.email FROM customers c JOIN (SELECT customer_id, count(*) n FROM orders "
            "GROUP BY customer_id HAVING n BETWEEN 3 AND 7) o ON o.customer_id = c.id "
            "WHERE c.email IS NOT NULL ORDER BY c.id"
        )
        found = [str(r[0]) for r in rows if str(r[0]).strip().lower() in busy][:n]
    finally:
        con.close()
    if not found:
        raise BenchError(f"no customer with ~10 tickets and ~5 orders in {data_dir}")
    return found


class MemoryAuditLog:
    """The audit log in memory: the in-process contenders audit like the gateway,
    minus the file write (the HTTP runs write the real JSON-lines file)."""

    def __init__(self) -> None:
        self.entries = 0

    async def append(self, entry: dict[str, Any]) -> None:
        self.entries += 1


def demo_context(
    loaded: LoadedSettings, federation: Federation, grant: Grant, audit: MemoryAuditLog
) -> dict[str, Any]:
    """The context the gateway gives a request of the demo key (role admin)."""
    return {
        "view": federation.request(),
        "principal": None,
        "explain": False,
        "actor": "api_key:demo",
        "roles": ("admin",),
        "grant": grant,
        "trail": ReadTrail(),
        "auditor": Auditor(audit, Caller("demo", "api_key", ("admin",))),
        "max_page_size": loaded.limits.max_page_size,
    }


Runner = Callable[[dict[str, Any]], Awaitable[str]]


class Gateway:
    """The gateway's schema in process, as the demo key (role admin) calls it."""

    def __init__(self, config: Path, data_dir: Path) -> None:
        with demo_dir_env(data_dir):
            self.loaded = load_settings(config)
        model = self.loaded.settings.model
        self.federation = Federation(model, self.loaded.create_connectors())
        self.grant = self.loaded.policy.grant(["admin"])
        self.audit = MemoryAuditLog()
        self.schemas = {
            "general": gateway_schema(self.loaded, fast_path=False),
            "fast": gateway_schema(self.loaded, fast_path=True),
        }

    def context(self, federation: Federation | None = None) -> dict[str, Any]:
        federation = federation or self.federation
        return demo_context(self.loaded, federation, self.grant, self.audit)

    def runner(self, path: str, query: str, federation: Federation | None = None) -> Runner:
        """``path``'s runner of ``query``, over ``federation`` (else the benchmark's)."""
        schema = self.schemas[path]

        async def run(variables: dict[str, Any]) -> str:
            result = await schema.execute(
                query, variable_values=variables, context_value=self.context(federation)
            )
            if result.errors:
                raise BenchError(f"custview ({path}) answered with errors: {result.errors}")
            return json.dumps({"data": result.data})

        return run


@dataclass(slots=True)
class Timing:
    ms: list[float]
    cpu_ms: float

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.ms)
        return {
            "n": len(ordered),
            "p50_ms": statistics.median(ordered),
            "p95_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
            "cpu_ms": self.cpu_ms / len(ordered),
        }


async def _walk(run: Runner, pages: int) -> list[tuple[float, float, str]]:
    """(wall ms, cpu ms, answer) of ``pages`` consecutive pages."""
    out = []
    cursor: str | None = None
    for _ in range(pages):
        wall, cpu = time.perf_counter(), time.process_time()
        text = await run({"cursor": cursor})
        out.append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, text))
        cursor = json.loads(text)["data"]["customers"]["pageInfo"]["endCursor"]
    return out


def _same(what: str, answers: dict[str, str]) -> None:
    floor = _without_cursors(json.loads(answers["floor"]))
    for name, text in answers.items():
        diff = first_difference(_without_cursors(json.loads(text)), floor)
        if diff:
            raise BenchError(f"{name} and the floor disagree on {what}: {diff}")
    if answers["general"] != answers["fast"]:
        raise BenchError(f"the fast path's JSON differs from the general path's on {what}")


async def in_process(
    runners: dict[str, dict[str, Runner]], emails: Sequence[str], plan: Plan
) -> dict[str, dict[str, dict[str, float]]]:
    """p50/p95/CPU per operation and contender, requests interleaved."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    timings = {name: Timing([], 0.0) for name in CONTENDERS}
    for i, email in enumerate([*emails[: plan.warmup], *emails]):
        answers = {}
        for name in CONTENDERS[i % 3 :] + CONTENDERS[: i % 3]:
            wall, cpu = time.perf_counter(), time.process_time()
            answers[name] = await runners[name]["customer_360"]({"e": email})
            if i >= plan.warmup:
                timings[name].ms.append((time.perf_counter() - wall) * 1000)
                timings[name].cpu_ms += (time.process_time() - cpu) * 1000
        _same(f"customer(email: {email!r})", answers)
    results["customer_360"] = {n: t.summary() for n, t in timings.items()}
    for name in CONTENDERS:
        await _walk(runners[name]["page_50"], plan.warmup)
    walks = {}
    for name in CONTENDERS:
        walks[name] = await _walk(runners[name]["page_50"], plan.pages)
    for i in range(plan.pages):
        _same(f"page {i + 1}", {n: w[i][2] for n, w in walks.items()})
    results["page_50"] = {
        n: Timing([w[0] for w in walk], sum(w[1] for w in walk)).summary()
        for n, walk in walks.items()
    }
    return results


async def counted(
    runners: dict[str, dict[str, Runner]], emails: Sequence[str], plan: Plan
) -> dict[str, dict[str, dict[str, float]]]:
    """Operation -> contender -> function calls per request by area (cProfile)."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for operation in OPERATIONS:
        found[operation] = {}
        for name in CONTENDERS:
            run = runners[name][operation]
            requests: list[dict[str, Any]]
            if operation == "customer_360":
                requests = [{"e": e} for e in emails]
            else:  # consecutive pages: every one a different page, as timed
                requests = [{"cursor": None}]
            for variables in requests[: plan.warmup]:
                await run(variables)
            profiler = cProfile.Profile()
            if operation == "customer_360":
                profiler.enable()
                for variables in requests:
                    await run(variables)
                profiler.disable()
                n = len(requests)
            else:
                cursor: str | None = None
                for _ in range(plan.pages):
                    profiler.enable()
                    text = await run({"cursor": cursor})
                    profiler.disable()
                    cursor = json.loads(text)["data"]["customers"]["pageInfo"]["endCursor"]
                n = plan.pages
            found[operation][name] = calls_by_area(pstats.Stats(profiler), n)
    return found


def calls_table(customers: int, found: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(
        title=f"function calls per request, {customers:,} customers (cProfile; builtins are C)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("operation")
    table.add_column("area")
    for name in CONTENDERS:
        table.add_column(name, justify="right")
    for operation, by_contender in found.items():
        totals = {n: sum(by_contender[n].values()) for n in CONTENDERS}
        table.add_row(OPERATIONS[operation], "all", *(f"{totals[n]:,.0f}" for n in CONTENDERS))
        areas = sorted(
            {a for n in CONTENDERS for a in by_contender[n]},
            key=lambda a: -max(by_contender[n].get(a, 0.0) for n in CONTENDERS),
        )
        for area in areas[:CALL_AREAS]:
            table.add_row("", area, *(f"{by_contender[n].get(area, 0.0):,.1f}" for n in CONTENDERS))
    return table


def app_calls_table(
    customers: int, apps: dict[str, dict[str, dict[str, dict[str, float]]]]
) -> Table:
    """The apps' calls per request by area, and the HTTP layer's: the app's
    less the same contender's in process (counted right after, as warm)."""
    table = Table(
        title=f"function calls per HTTP request of the app, {customers:,} customers "
        "(ASGI in process, cProfile)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("operation")
    table.add_column("area")
    for name in APPS:
        table.add_column(f"{name} app", justify="right")
    layers = http_layer(apps)
    for operation, by_app in apps.items():
        table.add_row(
            OPERATIONS[operation],
            "all",
            *(f"{sum(by_app[n]['app'].values()):,.0f}" for n in APPS),
        )
        table.add_row(
            "",
            "in process (same requests)",
            *(f"{sum(by_app[n]['direct'].values()):,.0f}" for n in APPS),
        )
        table.add_row(
            "", "HTTP layer (app - in process)", *(f"{layers[operation][n]:,.0f}" for n in APPS)
        )
        areas = sorted(
            {a for n in APPS for a in by_app[n]["app"]},
            key=lambda a: -max(by_app[n]["app"].get(a, 0.0) for n in APPS),
        )
        for area in areas[:CALL_AREAS]:
            table.add_row("", area, *(f"{by_app[n]['app'].get(area, 0.0):,.1f}" for n in APPS))
    return table


def http_layer(
    apps: dict[str, dict[str, dict[str, dict[str, float]]]],
) -> dict[str, dict[str, float]]:
    """Operation -> contender -> calls per request of its app beyond its in-process run."""
    return {
        operation: {
            n: sum(sides["app"].values()) - sum(sides["direct"].values())
            for n, sides in by_app.items()
        }
        for operation, by_app in apps.items()
    }


async def count_apps(
    config: Path,
    data_dir: Path,
    emails: Sequence[str],
    plan: Plan,
    gateway: Gateway,
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Operation -> contender -> ``app``/``direct`` -> area -> calls per request;
    ``direct``: the contender in process over the app's own sources (the
    gateway's with its identity registry), as the app's executor runs."""

    def direct(name: str) -> Callable[[Any], dict[str, Runner]]:
        def runners(app: Any) -> dict[str, Runner]:
            if name == "floor":
                floor: Floor = app.state.floor

                async def customer(variables: dict[str, Any]) -> str:
                    return await floor.customer_by_email(variables["e"])

                async def page(variables: dict[str, Any]) -> str:
                    return await floor.page(PAGE_SIZE, variables.get("cursor"))

                return {"customer_360": customer, "page_50": page}
            federation = app.state.federation
            return {
                "customer_360": gateway.runner(name, CUSTOMER_QUERY, federation),
                "page_50": gateway.runner(name, PAGE_QUERY, federation),
            }

        return runners

    apps: dict[str, dict[str, dict[str, dict[str, float]]]] = {op: {} for op in OPERATIONS}
    for name in APPS:
        found = await hot_http.app_calls(name, config, data_dir, emails, plan.pages, direct(name))
        for operation, sides in found.items():
            apps[operation][name] = sides
    return apps


async def bench_size(
    customers: int,
    data_root: Path,
    plan: Plan,
    console: Console,
    http: bool,
    calls: bool = False,
) -> dict[str, Any]:
    data_dir = ensure_data(data_root, customers, console)
    config = sql_only_config(data_dir)
    emails = busy_emails(data_dir, plan.emails)
    console.print(f"[bold]{customers:,} customers[/]: {len(emails)} emails, {plan.pages} pages")
    gateway = Gateway(config, data_dir)
    floor = await Floor.open(data_dir)

    async def floor_customer(variables: dict[str, Any]) -> str:
        return await floor.customer_by_email(variables["e"])

    async def floor_page(variables: dict[str, Any]) -> str:
        return await floor.page(PAGE_SIZE, variables.get("cursor"))

    runners: dict[str, dict[str, Runner]] = {
        "floor": {"customer_360": floor_customer, "page_50": floor_page},
        **{
            path: {
                "customer_360": gateway.runner(path, CUSTOMER_QUERY),
                "page_50": gateway.runner(path, PAGE_QUERY),
            }
            for path in ("general", "fast")
        },
    }
    try:
        with heap.serving():  # as the gateway's lifespan does once its sources are open
            if calls:
                found = await counted(runners, emails, plan)
                console.print(calls_table(customers, found))
                counts: dict[str, Any] = {"customers": customers, "calls_per_request": found}
                if http:
                    apps = await count_apps(config, data_dir, emails, plan, gateway)
                    console.print(app_calls_table(customers, apps))
                    counts["app_calls_per_request"] = apps
                    counts["http_layer_calls_per_request"] = http_layer(apps)
                return counts
            measured = await in_process(runners, emails, plan)
    finally:
        await gateway.federation.aclose()
        await floor.aclose()
    result: dict[str, Any] = {"customers": customers, "in_process": measured}
    if http:
        result["http"] = await hot_http.measure(config, data_dir, emails, plan.http_requests)
    return result


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}x" if floor else "-"


def results_table(sizes: Sequence[dict[str, Any]]) -> Table:
    table = Table(
        title="hot queries: floor vs custview general and fast path (ratio = / floor)",
        box=box.SIMPLE_HEAD,
    )
    columns = ("customers", "operation", "where", "path", "p50 ms", "p95 ms", "req/s",
               "cpu ms/req", "ratio p50", "ratio p95", "ratio req/s")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col in ("operation", "where", "path") else "right")
    for size in sizes:
        for where in ("in_process", "http"):
            for op, title in OPERATIONS.items():
                rows = size.get(where, {}).get(op)
                if not rows:
                    continue
                floor = rows["floor"]
                for path in CONTENDERS:
                    r = rows[path]
                    rps = r.get("rps")
                    table.add_row(
                        f"{size['customers']:,}",
                        title,
                        "in process" if where == "in_process" else "HTTP, c=10",
                        path,
                        f"{r['p50_ms']:.2f}",
                        f"{r['p95_ms']:.2f}",
                        f"{rps:.0f}" if rps else "-",
                        f"{r['cpu_ms']:.2f}",
                        _ratio(r["p50_ms"], floor["p50_ms"]),
                        _ratio(r["p95_ms"], floor["p95_ms"]),
                        _ratio(floor["rps"], rps) if rps else "-",
                    )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.hot", description=__doc__)
    parser.add_argument("--customers", nargs="+", type=int, default=[100_000])
    parser.add_argument("--million", action="store_true", help="also 1,000,000 customers")
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument("--no-http", action="store_true", help="in process only")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument(
        "--floor-inline",
        action="store_true",
        help="the floor runs its statements on the event loop's thread (no aiosqlite hop)",
    )
    parser.add_argument(
        "--calls",
        action="store_true",
        help="count function calls per request by area (cProfile) instead of timing",
    )
    args = parser.parse_args(argv)
    if args.floor_inline:  # the HTTP floor's server process reads it too
        os.environ[FLOOR_INLINE_ENV] = "1"
    console = Console() if sys.stdout.isatty() else Console(width=160)
    sizes = [*args.customers, *([1_000_000] if args.million else [])]
    plan = Plan.for_mode(args.quick)
    started = time.perf_counter()

    async def run() -> list[dict[str, Any]]:
        return [
            await bench_size(n, args.data_dir, plan, console, not args.no_http, args.calls)
            for n in sizes
        ]

    try:
        results = asyncio.run(run())
    except BenchError as exc:
        console.print(f"[bold red]benchmark aborted:[/] {exc}")
        return 1
    if args.calls:  # counts, not timings: a file of their own
        out = args.data_dir / "hot-calls.json"
        out.write_text(json.dumps({"sizes": results}, indent=2) + "\n")
        console.print(f"call counts written to {out}")
        return 0
    console.print(results_table(results))
    seconds = round(time.perf_counter() - started, 1)
    out = args.data_dir / "hot-results.json"
    out.write_text(json.dumps({"seconds": seconds, "sizes": results}, indent=2) + "\n")
    console.print(f"results written to {out} ({seconds} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
