"""``make soak``: a bounded load run on loopback with one source flapping.

``custview serve`` runs as a child process over the demo data (cached in
``bench-data/<customers>/``, as ``make bench`` makes it) with the support desk
copied into a fresh PostgreSQL database and read through a
:class:`~tests.support.proxy.FaultProxy` that flaps in a cycle: up, down
(connections refused and open ones cut), slow (every packet held longer
than the source's timeout). ``--concurrency`` clients send a mix of
customer-360 lookups by email, lookups by phone and pages of customers for
``--duration`` seconds. Then it prints requests/s, latency percentiles,
responses by outcome, errors by ``extensions.code``, the circuit states the
gateway reported in ``/readyz``, the gateway's RSS before, during and after,
the PostgreSQL sessions it still holds, and whether SIGTERM stopped it
cleanly. Everything stays on 127.0.0.1 and ends when the run ends.

    python -m tests.bench.soak [--duration 120] [--concurrency 20] [--customers 5000]
                               [--cycle 10,5,5] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from gateway.demodata.schema import METADATA
from gateway.serving import DEMO_HEADERS
from tests.bench.run import DEFAULT_DATA_ROOT, demo_dir_env, ensure_data, sql_only_config
from tests.support.engines import copy_sqlite_database, fresh_database
from tests.support.processes import ServeProcess, custview_sessions
from tests.support.proxy import FaultProxy

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/custview_test"
SOURCE_TIMEOUT = 1.0
"""The flapping source's per-call timeout; its slow phase holds packets longer."""
SLOW_DELAY = 1.5

CUSTOMER_360 = """query($e: String!) { customer(email: $e) {
  id name email sourceRecords { ref } tickets { id status } orders { id total }
  opportunities { id stage } } }"""
BY_PHONE = """query($p: String!) { customer(phone: $p) { id name phone openTickets } }"""
PAGE = """query($after: String) { customers(first: 20, after: $after) {
  pageInfo { endCursor } nodes { id name openTickets lifetimeValue } } }"""


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    circuit: list[tuple[float, str]] = field(default_factory=list)
    rss_mib: list[tuple[float, float]] = field(default_factory=list)
    phases: list[tuple[float, str]] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)


def sample_keys(data_dir: Path, n: int) -> tuple[list[str], list[str]]:
    """Stored (noisy) emails and phones of the demo, a seeded sample of each."""
    found: dict[str, list[str]] = {"email": [], "phone": []}
    con = sqlite3.connect(f"file:{data_dir / 'sales.db'}?mode=ro", uri=True)
    try:
        for column in found:
            rows = con.execute(
                f"SELECT {column} FROM customers WHERE {column} LIKE '%@%' OR {column} LIKE '+%'"
            )
            found[column] = [str(r[0]) for r in rows]
    finally:
        con.close()
    rng = random.Random(11)
    return (
        rng.sample(found["email"], min(n, len(found["email"]))),
        rng.sample(found["phone"], min(n, len(found["phone"]))),
    )


def soak_config(data_dir: Path, support_url: str) -> Path:
    """The demo's SQL sources, support on PostgreSQL through the proxy, with a
    short timeout and a quick breaker so the flaps show within a short run."""
    config = yaml.safe_load(sql_only_config(data_dir).read_text())
    config.setdefault("server", {})["request_deadline"] = 10
    support = config["sources"]["support"]
    support["options"] = {"url": support_url, "timeout": SOURCE_TIMEOUT, "pool_size": 5}
    support["resilience"] = {"breaker_threshold": 5, "breaker_recovery": 2, "retries": 1}
    path = data_dir / "soak-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def flap(proxy: FaultProxy, cycle: tuple[float, float, float], tally: Tally) -> None:
    """up → down → slow, forever (cancelled when the run ends)."""
    up, down, slow = cycle
    started = time.monotonic()
    while True:
        for mode, seconds in (("pass", up), ("refuse", down), ("slow", slow)):
            proxy.mode, proxy.delay = mode, SLOW_DELAY  # type: ignore[assignment]
            if mode != "slow":
                proxy.cut()
            tally.phases.append((time.monotonic() - started, mode))
            await asyncio.sleep(seconds)


async def watch(client: httpx.AsyncClient, pid: int, tally: Tally) -> None:
    """Once a second: the support circuit in /readyz and the gateway's RSS."""
    started = time.monotonic()
    while True:
        at = time.monotonic() - started
        tally.rss_mib.append((at, rss_mib(pid)))
        try:
            ready = (await client.get("/readyz")).json()
            state = ready["sources"]["support"]["circuit"]
        except (httpx.HTTPError, ValueError, KeyError):
            state = "unknown"
        if not tally.circuit or tally.circuit[-1][1] != state:
            tally.circuit.append((at, state))
        await asyncio.sleep(1.0)


async def client_loop(
    client: httpx.AsyncClient,
    end: float,
    emails: Sequence[str],
    phones: Sequence[str],
    tally: Tally,
    seed: int,
) -> None:
    rng = random.Random(seed)
    cursor: str | None = None
    while time.monotonic() < end:
        pick = rng.random()
        if pick < 0.6:
            payload: dict[str, Any] = {
                "query": CUSTOMER_360,
                "variables": {"e": rng.choice(emails)},
            }
        elif pick < 0.8:
            payload = {"query": BY_PHONE, "variables": {"p": rng.choice(phones)}}
        else:
            payload = {"query": PAGE, "variables": {"after": cursor}}
        started = time.perf_counter()
        try:
            response = await client.post("/graphql", json=payload)
        except httpx.HTTPError as exc:
            tally.outcomes[f"transport error ({type(exc).__name__})"] += 1
            continue
        tally.latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            tally.outcomes[f"HTTP {response.status_code}"] += 1
            continue
        body = response.json()
        errors = body.get("errors") or []
        codes = {(e.get("extensions") or {}).get("code", "UNKNOWN") for e in errors}
        tally.codes.update(codes)
        tally.by_source.update({(e.get("extensions") or {}).get("source", "-") for e in errors})
        for error in errors:
            code = (error.get("extensions") or {}).get("code", "UNKNOWN")
            tally.examples.setdefault(code, error.get("message", ""))
        tally.outcomes["complete" if not errors else "partial (HTTP 200)"] += 1
        if payload["query"] is PAGE and not errors:
            cursor = body["data"]["customers"]["pageInfo"]["endCursor"]


def percentile(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def phase(
    client: httpx.AsyncClient,
    pid: int,
    seconds: float,
    concurrency: int,
    keys: tuple[Sequence[str], Sequence[str]],
    proxy: FaultProxy,
    cycle: tuple[float, float, float] | None,
) -> dict[str, Any]:
    """``concurrency`` clients for ``seconds``; the source flaps when ``cycle`` is given."""
    tally = Tally()
    background = [asyncio.create_task(watch(client, pid, tally))]
    if cycle is not None:
        background.append(asyncio.create_task(flap(proxy, cycle, tally)))
    rss_start = rss_mib(pid)
    end = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(client_loop(client, end, *keys, tally, seed) for seed in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    proxy.mode = "pass"
    total = len(tally.latencies)
    return {
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(tally.latencies, 50) * 1000, 1),
            "p95": round(percentile(tally.latencies, 95) * 1000, 1),
            "p99": round(percentile(tally.latencies, 99) * 1000, 1),
            "max": round(max(tally.latencies, default=0) * 1000, 1),
        },
        "responses": dict(tally.outcomes.most_common()),
        "responses_by_error_code": dict(tally.codes.most_common()),
        "responses_by_failed_source": dict(tally.by_source.most_common()),
        "error_examples": tally.examples,
        "circuit_changes": [(round(t, 1), state) for t, state in tally.circuit],
        "rss_mib": {
            "start": round(rss_start, 1),
            "peak": round(max((r for _, r in tally.rss_mib), default=rss_start), 1),
            "end": round(rss_mib(pid), 1),
        },
    }


async def soak(args: argparse.Namespace, pg_url: str, console: Console) -> dict[str, Any]:
    """The run, against ``pg_url``, a fresh database it may fill."""
    data_dir = ensure_data(DEFAULT_DATA_ROOT, args.customers, console)
    keys = sample_keys(data_dir, 500)
    up, down, slow = (float(x) for x in args.cycle.split(","))
    cycle = (up, down, slow)
    console.print("copying the support desk into PostgreSQL …")
    await copy_sqlite_database(data_dir / "support.db", pg_url, METADATA["support"])
    target = make_url(pg_url)
    proxy = await FaultProxy(target.host or "127.0.0.1", target.port or 5432).start()
    through = target.set(host="127.0.0.1", port=proxy.port)
    with demo_dir_env(data_dir):
        config = soak_config(data_dir, through.render_as_string(hide_password=False))
        gateway = await ServeProcess.start(config)
    pid = gateway.process.pid
    try:
        limits = httpx.Limits(max_connections=args.concurrency + 2)
        async with httpx.AsyncClient(
            base_url=gateway.url, headers=DEMO_HEADERS, timeout=60, limits=limits
        ) as client:
            for email in keys[0][:50]:  # warm: pools, parser caches
                await client.post(
                    "/graphql", json={"query": CUSTOMER_360, "variables": {"e": email}}
                )
            rss_warm = rss_mib(pid)
            console.print(
                f"baseline: {args.concurrency} clients for {args.baseline:g} s, every source up"
            )
            steady = await phase(client, pid, args.baseline, args.concurrency, keys, proxy, None)
            console.print(
                f"flapping: {args.concurrency} clients for {args.duration:g} s; support up "
                f"{up:g} s / down {down:g} s / slow {slow:g} s, in a loop"
            )
            flapping = await phase(client, pid, args.duration, args.concurrency, keys, proxy, cycle)
            await asyncio.sleep(3)  # idle: the breaker's probe, pools settle
            recovered = await client.post(
                "/graphql", json={"query": CUSTOMER_360, "variables": {"e": keys[0][0]}}
            )
            rss_after = rss_mib(pid)
            held = await custview_sessions(pg_url)
        await gateway.stop()
        exit_code = gateway.process.returncode
    finally:
        await gateway.stop()
        await proxy.stop()
    left = held
    for _ in range(100):  # the server notices closed sessions a moment later
        left = await custview_sessions(pg_url)
        if left == 0:
            break
        await asyncio.sleep(0.1)
    return {
        "concurrency": args.concurrency,
        "customers": args.customers,
        "cycle_s": cycle,
        "baseline": steady,
        "flapping": flapping,
        "rss_mib": {"warm": round(rss_warm, 1), "after": round(rss_after, 1)},
        "recovered": recovered.status_code == 200 and "errors" not in recovered.json(),
        "postgres_sessions_after_run": held,
        "postgres_sessions_after_sigterm": left,
        "sigterm_exit_code": exit_code,
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "none"


def _latency(p: dict[str, Any]) -> str:
    lat = p["latency_ms"]
    return f"{lat['p50']} / {lat['p95']} / {lat['p99']}"


def _rss(p: dict[str, Any]) -> str:
    return f"{p['rss_mib']['start']} / {p['rss_mib']['peak']} / {p['rss_mib']['end']}"


ROWS: dict[str, Callable[[dict[str, Any]], str]] = {
    "seconds": lambda p: f"{p['seconds']}",
    "requests": lambda p: f"{p['requests']:,}",
    "requests/s": lambda p: f"{p['requests_per_s']}",
    "latency p50 / p95 / p99 ms": _latency,
    "responses": lambda p: _counts(p["responses"]),
    "responses with error code": lambda p: _counts(p["responses_by_error_code"]),
    "support circuit": lambda p: " → ".join(s for _, s in p["circuit_changes"]),
    "gateway RSS MiB start / peak / end": _rss,
}


def report(result: dict[str, Any], console: Console) -> None:
    steady, flapping = result["baseline"], result["flapping"]
    table = Table(title="custview soak", box=box.SIMPLE_HEAVY)
    table.add_column("")
    table.add_column("baseline (all up)")
    table.add_column("support flapping (up, down, slow s: {}, {}, {})".format(*result["cycle_s"]))
    for name, render in ROWS.items():
        table.add_row(name, render(steady), render(flapping))
    console.print(table)
    ratio = flapping["requests_per_s"] / steady["requests_per_s"] if steady["requests"] else 0.0
    console.print(
        f"{result['concurrency']} clients, {result['customers']:,} customers; throughput while "
        f"flapping: {ratio:.2f}x the baseline. After the run: answers complete again: "
        f"{result['recovered']}; RSS {result['rss_mib']['warm']} -> {result['rss_mib']['after']} "
        f"MiB; PostgreSQL sessions held {result['postgres_sessions_after_run']}; SIGTERM exit "
        f"{result['sigterm_exit_code']}, sessions left {result['postgres_sessions_after_sigterm']}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__)
    parser.add_argument(
        "--duration", type=float, default=120.0, help="seconds of load with the source flapping"
    )
    parser.add_argument(
        "--baseline", type=float, default=30.0, help="seconds of load before, all sources up"
    )
    parser.add_argument("--concurrency", type=int, default=20, help="clients at once")
    parser.add_argument("--customers", type=int, default=5000, help="demo size")
    parser.add_argument("--cycle", default="10,5,5", help="support up,down,slow seconds")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CUSTVIEW_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL database URL; the run creates and drops a database next to it",
    )
    args = parser.parse_args(argv)
    if len(args.cycle.split(",")) != 3:
        parser.error("--cycle is up,down,slow in seconds, e.g. 10,5,5")
    console = Console(width=max(Console().width, 110))
    with fresh_database(args.postgres, prefix="custview_soak") as pg_url:
        result = asyncio.run(soak(args, pg_url, console))
    report(result, console)
    out = DEFAULT_DATA_ROOT / "soak-results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"written to {out}")
    healthy = (
        result["recovered"]
        and result["sigterm_exit_code"] == 0
        and result["postgres_sessions_after_sigterm"] == 0
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
