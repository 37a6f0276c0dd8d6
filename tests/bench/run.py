"""``make bench``: custview's latency next to the hand-written SQL floor.

For demo data of each size (default 5,000 and 100,000 customers, cached in
``bench-data/<customers>/``) it times two operations, in process and in the
same event loop for both contenders, requests interleaved:

* **customer 360 by email** — one customer with sources, provenance,
  tickets, orders and opportunities, for ~200 stored (noisy) emails;
* **page of 50** — ~30 consecutive keyset pages of customers with their
  tickets and orders.

custview is driven as in production minus HTTP (schema.execute on a fresh
request view, then ``json.dumps``); the floor is :mod:`tests.bench.floor`.
Before timing, a few emails and the first three pages must give the same
answer from both (and every timed answer is compared afterwards), else the
run aborts. It prints p50/p95, the custview/floor ratio and statements per
request, and writes everything to ``bench-data/results.json``.

    python -m tests.bench.run [--sizes 5000 100000] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.view import Federation
from tests.bench import export as export_bench
from tests.bench import hotspots

if TYPE_CHECKING:
    from tests.bench.floor import Floor

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = REPO / "bench-data"
DEFAULT_SIZES = (5_000, 100_000)
SEED = 42
SAMPLE_SEED = 7

CUSTOMER_QUERY = """
query Customer360($e: String!) {
  customer(email: $e) {
    id name email phone country
    sourceRecords { ref }
    provenance { field ref }
    tickets { id subject status createdAt }
    orders { id orderNumber total createdAt }
    opportunities { id stage amount }
  }
}
"""
PAGE_QUERY = """
query Page($cursor: String) {
  customers(first: 50, after: $cursor) {
    pageInfo { endCursor hasNextPage }
    nodes {
      id name email
      sourceRecords { ref }
      tickets { id status }
      orders { id total }
    }
  }
}
"""
PAGE_SIZE = 50
CUSTOMER_360 = "customer_360"
PAGE_50 = "page_50"
TITLES = {CUSTOMER_360: "customer 360 by email", PAGE_50: "page of 50 (keyset)"}


class BenchError(RuntimeError):
    """The benchmark cannot give a meaningful answer (e.g. the floor disagrees)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How many requests to make."""

    emails: int
    email_warmup: int
    pages: int
    page_warmup: int
    check_emails: int = 5
    check_pages: int = 3

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        if quick:
            return cls(emails=30, email_warmup=5, pages=6, page_warmup=2)
        return cls(emails=200, email_warmup=20, pages=30, page_warmup=5)


@dataclass(slots=True)
class Sample:
    """One timed request."""

    ms: float
    statements: int
    answer: dict[str, Any]


Runner = Callable[[dict[str, Any]], Awaitable[tuple[str, int]]]
"""Variables -> (the JSON answer, statements sent)."""


# -- data ----------------------------------------------------------------------


def ensure_data(root: Path, customers: int, console: Console) -> Path:
    """``root/<customers>``, generated (seed 42) unless its manifest exists; a set
    cached by an earlier generator gains the indexes it lacks (as the sources' owner
    would add them; the rows stay as they are)."""
    out = root / str(customers)
    # not loaded by the export bench's children
    from gateway.demodata.generate import generate, upgrade

    if not (out / "manifest.json").exists():
        console.print(f"[bold]generating[/] demo data for {customers:,} customers into {out} …")
        summary = generate(out, customers, seed=SEED)
        console.print(f"  done in {summary.seconds:.1f} s")
    elif added := upgrade(out):
        console.print(f"[bold]indexed[/] the cached demo data in {out}: {', '.join(added)}")
    return out


def sample_emails(data_dir: Path, n: int) -> list[str]:
    """``n`` emails as stored (noise included) in sales.customers and crm.contacts, seeded."""
    emails: list[str] = []
    for db, table in (("sales", "customers"), ("crm", "contacts")):
        con = sqlite3.connect(f"file:{data_dir / f'{db}.db'}?mode=ro", uri=True)
        try:
            rows = con.execute(f"SELECT email FROM {table} WHERE email LIKE '%@%' ORDER BY id")
            emails.extend(str(r[0]) for r in rows)
        finally:
            con.close()
    return random.Random(SAMPLE_SEED).sample(emails, min(n, len(emails)))


@contextmanager
def demo_dir_env(data_dir: Path) -> Iterator[None]:
    """``CUSTVIEW_DEMO_DIR`` set to ``data_dir`` while loading the demo config."""
    old = os.environ.get("CUSTVIEW_DEMO_DIR")
    os.environ["CUSTVIEW_DEMO_DIR"] = str(data_dir)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CUSTVIEW_DEMO_DIR", None)
        else:
            os.environ["CUSTVIEW_DEMO_DIR"] = old


# -- the contenders ---------------------------------------------------------------


def sql_only_config(data_dir: Path) -> Path:
    """The demo config without its REST source (the feedback service), so custview
    and the SQL floor answer the same question over the same three databases."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    rest = {name for name, src in config["sources"].items() if src["connector"] != "sql"}
    model = config["model"]
    for name in rest:
        del config["sources"][name]
    members = model["customer"]["members"]
    model["customer"]["members"] = [m for m in members if m["source"] not in rest]
    gone = {n for n, r in model["relations"].items() if r["source"] in rest}
    entities = {model["relations"][n]["entity"] for n in gone}
    metrics = {n for n, m in model["metrics"].items() if m["relation"] in gone}
    model["relations"] = {n: r for n, r in model["relations"].items() if n not in gone}
    model["metrics"] = {n: m for n, m in model["metrics"].items() if n not in metrics}
    for role in config.get("policy", {}).get("roles", {}).values():
        for name in entities:
            role.get("entities", {}).pop(name, None)
        for name in gone | metrics:
            role.get("fields", {}).pop(name, None)
    model["timeline"] = {n: t for n, t in model["timeline"].items() if t["relation"] not in gone}
    for group in ("business", "household"):
        spec = model.get(group) or {}
        if "members" in spec:
            spec["members"] = {
                m: v for m, v in spec["members"].items() if m.split(".")[0] not in rest
            }
        if "accounts" in spec:
            spec["accounts"] = [a for a in spec["accounts"] if a["source"] not in rest]
    survivorship = model["survivorship"]
    survivorship["default"] = [s for s in survivorship["default"] if s not in rest]
    for rule in survivorship["fields"].values():
        if "sources" in rule:
            rule["sources"] = [s for s in rule["sources"] if s not in rest]
    path = data_dir / "bench-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Custview:
    """custview in process: the demo config (SQL sources), one Federation,
    schema.execute per request."""

    def __init__(self, data_dir: Path, config: Path | None = None) -> None:
        with demo_dir_env(data_dir):
            loaded = load_settings(config or sql_only_config(data_dir))
        model = loaded.settings.model
        self.federation = Federation(model, loaded.create_connectors())
        from resolvers.schema import build_schema  # not loaded by the export bench's children

        self.schema = build_schema(model)

    def statements(self) -> int:
        return sum(getattr(c, "statements", 0) for c in self.federation.connectors.values())

    async def execute(self, query: str, variables: dict[str, Any]) -> tuple[str, int]:
        before = self.statements()
        result = await self.schema.execute(
            query, variable_values=variables, context_value={"view": self.federation.request()}
        )
        if result.errors:
            raise BenchError(f"custview answered with errors: {result.errors}")
        return json.dumps({"data": result.data}), self.statements() - before

    async def customer(self, variables: dict[str, Any]) -> tuple[str, int]:
        return await self.execute(CUSTOMER_QUERY, variables)

    async def page(self, variables: dict[str, Any]) -> tuple[str, int]:
        return await self.execute(PAGE_QUERY, variables)

    async def aclose(self) -> None:
        await self.federation.aclose()


class FloorRunner:
    """The floor behind the same call shape."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    async def customer(self, variables: dict[str, Any]) -> tuple[str, int]:
        before = self.floor.statements
        answer = await self.floor.customer_by_email(variables["e"])
        return answer, self.floor.statements - before

    async def page(self, variables: dict[str, Any]) -> tuple[str, int]:
        before = self.floor.statements
        answer = await self.floor.page(PAGE_SIZE, variables.get("cursor"))
        return answer, self.floor.statements - before


async def timed(run: Runner, variables: dict[str, Any]) -> Sample:
    started = time.perf_counter()
    text, statements = await run(variables)
    ms = (time.perf_counter() - started) * 1000
    return Sample(ms, statements, json.loads(text))


# -- equality ------------------------------------------------------------------------


def _without_cursors(answer: Any) -> Any:
    """The answer with the opaque ``endCursor`` removed (each side walks its own)."""
    if isinstance(answer, dict):
        return {k: _without_cursors(v) for k, v in answer.items() if k != "endCursor"}
    if isinstance(answer, list):
        return [_without_cursors(v) for v in answer]
    return answer


def first_difference(a: Any, b: Any, path: str = "data") -> str | None:
    """Where ``a`` and ``b`` first differ, as ``path: a != b``; None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(dict.fromkeys([*a, *b])):
            if key not in a or key not in b:
                return f"{path}.{key}: present on one side only"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{path}: {len(a)} items from custview, {len(b)} from the floor"
        return None
    return None if a == b else f"{path}: custview {a!r} != floor {b!r}"


def essentials(customer: dict[str, Any] | None) -> Any:
    """What must agree at the least: the customer, its records and child ids."""
    if customer is None:
        return None
    return (
        customer["id"],
        sorted(r["ref"] for r in customer["sourceRecords"]),
        sorted(t["id"] for t in customer.get("tickets") or []),
        sorted(o["id"] for o in customer.get("orders") or []),
    )


def check_same(what: str, custview: Sample, floor: Sample) -> None:
    """Abort unless both answers are the same (cursors aside)."""
    a, b = custview.answer["data"], floor.answer["data"]
    if "customer" in a:
        mine, theirs = [a["customer"]], [b.get("customer")]
    else:
        mine, theirs = a["customers"]["nodes"], b["customers"]["nodes"]
    ours, floors = [essentials(c) for c in mine], [essentials(c) for c in theirs]
    if ours != floors:
        at = next((i for i, (x, y) in enumerate(zip(ours, floors, strict=False)) if x != y), None)
        where = f" (customer {at + 1})" if at is not None and len(ours) > 1 else ""
        shown = (ours[at], floors[at]) if at is not None else (len(ours), len(floors))
        raise BenchError(
            f"the floor and custview disagree on {what}{where}: different customers, "
            f"source records or ticket/order ids (id, refs, tickets, orders)\n"
            f"  custview: {shown[0]}\n  floor:    {shown[1]}"
        )
    diff = first_difference(_without_cursors(a), _without_cursors(b))
    if diff:
        raise BenchError(f"the floor and custview disagree on {what}: {diff}")


# -- measurement -------------------------------------------------------------------


def summarise(samples: Sequence[Sample]) -> dict[str, float]:
    ms = sorted(s.ms for s in samples)
    p95 = statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) > 1 else ms[0]
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(p95, 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "statements_per_request": round(statistics.fmean(s.statements for s in samples), 2),
    }


def _operation(requests: int, cv: Sequence[Sample], fl: Sequence[Sample]) -> dict[str, Any]:
    a, b = summarise(cv), summarise(fl)
    return {
        "requests": requests,
        "custview": a,
        "floor": b,
        "ratio_p50": round(a["p50_ms"] / b["p50_ms"], 2),
        "ratio_p95": round(a["p95_ms"] / b["p95_ms"], 2),
    }


async def _pair(
    i: int, cv: Runner, fl: Runner, cv_vars: dict[str, Any], fl_vars: dict[str, Any]
) -> tuple[Sample, Sample]:
    """Both contenders on one request, alternating who goes first."""
    if i % 2:
        f = await timed(fl, fl_vars)
        c = await timed(cv, cv_vars)
    else:
        c = await timed(cv, cv_vars)
        f = await timed(fl, fl_vars)
    return c, f


async def bench_customer(
    custview: Custview, floor: FloorRunner, emails: Sequence[str], plan: Plan
) -> dict[str, Any]:
    for i, email in enumerate(emails[: plan.check_emails]):
        c, f = await _pair(i, custview.customer, floor.customer, {"e": email}, {"e": email})
        check_same(f"customer(email: {email!r})", c, f)
    for i, email in enumerate(emails[: plan.email_warmup]):
        await _pair(i, custview.customer, floor.customer, {"e": email}, {"e": email})
    cv: list[Sample] = []
    fl: list[Sample] = []
    for i, email in enumerate(emails):
        c, f = await _pair(i, custview.customer, floor.customer, {"e": email}, {"e": email})
        cv.append(c)
        fl.append(f)
    for email, c, f in zip(emails, cv, fl, strict=True):
        check_same(f"customer(email: {email!r})", c, f)
    result = _operation(len(emails), cv, fl)
    result["found"] = sum(1 for s in cv if s.answer["data"]["customer"] is not None)
    return result


async def walk_pages(
    custview: Custview, floor: FloorRunner, pages: int
) -> tuple[list[Sample], list[Sample]]:
    """``pages`` consecutive pages from the start, each side following its own cursors."""
    cv: list[Sample] = []
    fl: list[Sample] = []
    cv_cursor: str | None = None
    fl_cursor: str | None = None
    for i in range(pages):
        c, f = await _pair(
            i, custview.page, floor.page, {"cursor": cv_cursor}, {"cursor": fl_cursor}
        )
        cv.append(c)
        fl.append(f)
        cv_info = c.answer["data"]["customers"]["pageInfo"]
        fl_info = f.answer["data"]["customers"]["pageInfo"]
        cv_cursor, fl_cursor = cv_info["endCursor"], fl_info["endCursor"]
        if not (cv_info["hasNextPage"] and fl_info["hasNextPage"]):
            break
    return cv, fl


async def bench_page(custview: Custview, floor: FloorRunner, plan: Plan) -> dict[str, Any]:
    cv, fl = await walk_pages(custview, floor, plan.check_pages)
    for i, (c, f) in enumerate(zip(cv, fl, strict=True)):
        check_same(f"page {i + 1}", c, f)
    await walk_pages(custview, floor, plan.page_warmup)
    cv, fl = await walk_pages(custview, floor, plan.pages)
    for i, (c, f) in enumerate(zip(cv, fl, strict=True)):
        check_same(f"page {i + 1}", c, f)
    return _operation(len(cv), cv, fl)


async def _all_emails(custview: Custview, emails: Sequence[str]) -> None:
    for email in emails:
        await custview.customer({"e": email})


async def walk_custview(custview: Custview, pages: int) -> None:
    cursor: str | None = None
    for _ in range(pages):
        text, _ = await custview.page({"cursor": cursor})
        cursor = json.loads(text)["data"]["customers"]["pageInfo"]["endCursor"]


async def bench_size(
    customers: int, data_root: Path, plan: Plan, console: Console, *, profile: bool = False
) -> dict[str, Any]:
    data_dir = ensure_data(data_root, customers, console)
    emails = sample_emails(data_dir, plan.emails)
    console.print(f"[bold]{customers:,} customers[/]: {len(emails)} emails, {plan.pages} pages")
    custview = Custview(data_dir)
    from tests.bench.floor import Floor

    floor = FloorRunner(await Floor.open(data_dir))
    try:
        customer = await bench_customer(custview, floor, emails, plan)
        page = await bench_page(custview, floor, plan)
        result: dict[str, Any] = {
            "customers": customers,
            "data_dir": str(data_dir),
            "check": {
                "passed": True,
                "emails_checked": customer["requests"] + plan.check_emails,
                "pages_checked": page["requests"] + plan.check_pages,
            },
            "operations": {CUSTOMER_360: customer, PAGE_50: page},
        }
        if profile:
            result["profile"] = {
                CUSTOMER_360: await hotspots.profile(
                    f"custview customer 360, {len(emails)} emails, {customers:,} customers",
                    lambda: _all_emails(custview, emails),
                    console,
                ),
                PAGE_50: await hotspots.profile(
                    f"custview page walk, {plan.pages} pages, {customers:,} customers",
                    lambda: walk_custview(custview, plan.pages),
                    console,
                ),
            }
        return result
    finally:
        await custview.aclose()
        await floor.floor.aclose()


def results_table(sizes: Sequence[dict[str, Any]]) -> Table:
    table = Table(
        title="custview (cv) vs hand-written SQL floor: ms per request, ratio = cv / floor",
        box=box.SIMPLE_HEAD,
    )
    for col in (
        "customers",
        "operation",
        "n",
        "cv p50",
        "cv p95",
        "floor p50",
        "floor p95",
        "ratio p50",
        "ratio p95",
        "stmts cv",
        "stmts floor",
    ):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for size in sizes:
        for key, op in size["operations"].items():
            cv, fl = op["custview"], op["floor"]
            table.add_row(
                f"{size['customers']:,}",
                TITLES[key],
                str(op["requests"]),
                f"{cv['p50_ms']:.2f}",
                f"{cv['p95_ms']:.2f}",
                f"{fl['p50_ms']:.2f}",
                f"{fl['p95_ms']:.2f}",
                f"{op['ratio_p50']:.1f}x",
                f"{op['ratio_p95']:.1f}x",
                f"{cv['statements_per_request']:.1f}",
                f"{fl['statements_per_request']:.1f}",
            )
    return table


async def run_benchmarks(
    sizes: Sequence[int],
    *,
    quick: bool = False,
    data_root: Path = DEFAULT_DATA_ROOT,
    output: Path | None = None,
    profile: bool = False,
    console: Console | None = None,
) -> dict[str, Any]:
    """Benchmark every size, print the table, write ``output`` (default data_root/results.json)."""
    console = console or Console()
    plan = Plan.for_mode(quick)
    started = time.perf_counter()
    results = [await bench_size(n, data_root, plan, console, profile=profile) for n in sizes]
    report: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus",
        "seconds": round(time.perf_counter() - started, 1),
        "sizes": results,
    }
    console.print(results_table(results))
    output = output or data_root / "results.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"results written to {output} ({report['seconds']} s)")
    return report


def _sizes(values: Sequence[str]) -> list[int]:
    sizes = [int(v.replace("_", "")) for text in values for v in text.split(",") if v.strip()]
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("sizes are positive customer counts")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__)
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=[str(n) for n in DEFAULT_SIZES],
        help="customer counts, e.g. --sizes 5000 100000 (default) or --sizes 5000",
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_ROOT, help="demo data cache (bench-data/)"
    )
    parser.add_argument("--output", type=Path, help="results JSON (default DATA_DIR/results.json)")
    parser.add_argument("--profile", action="store_true", help="also cProfile custview's page walk")
    args = parser.parse_args(argv)
    # piped output (CI logs, tee) gets room for the whole table
    console = Console() if sys.stdout.isatty() else Console(width=140)
    try:
        asyncio.run(
            run_benchmarks(
                _sizes(args.sizes),
                quick=args.quick,
                data_root=args.data_dir,
                output=args.output,
                profile=args.profile,
                console=console,
            )
        )
    except BenchError as exc:
        console.print(f"[bold red]benchmark aborted:[/] {exc}")
        return 1
    export_bench.run(_sizes(args.sizes), args.data_dir, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
