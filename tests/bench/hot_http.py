"""The hot queries over HTTP: one uvicorn worker per contender, concurrency 10.

Each contender is served in its own process (``python -m
tests.bench.hot_http floor|general|fast CONFIG DATA_DIR PORT``) on loopback:
the floor as a bare Starlette route that answers the two operations, custview
as the gateway app (``create_app``) with the demo key, the JSON-lines audit
log and every middleware, once without and once with the fast path. The load
runs in this process: 10 concurrent clients, a bounded number of requests,
latency per request; the server's CPU per request comes from its
``/proc/<pid>/stat``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

CONCURRENCY = 10
PAGES = 20
"""Distinct pages the page load cycles through (each server's own cursors)."""
HEADERS = {"X-API-Key": "demo-key", "content-type": "application/json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def served(kind: str, config: Path, data_dir: Path) -> AsyncIterator[tuple[str, int]]:
    """A contender's server process; yields (base URL, pid)."""
    port = _free_port()
    env = {**os.environ, "CUSTVIEW_AUDIT_LOG": str(data_dir / f"bench-audit-{kind}.jsonl")}
    process = subprocess.Popen(  # noqa: ASYNC220 (started once, before timing)
        [sys.executable, "-m", "tests.bench.hot_http", kind, str(config), str(data_dir), str(port)],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the {kind} server did not start")
                await asyncio.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{url}/graphql", json=body, headers=HEADERS)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    if answer.get("errors"):
        raise RuntimeError(f"{url} answered with errors: {answer['errors']}")
    return answer


async def _cursors(client: httpx.AsyncClient, url: str, query: str) -> list[str | None]:
    cursors: list[str | None] = [None]
    for _ in range(PAGES - 1):
        answer = await _post(client, url, {"query": query, "variables": {"cursor": cursors[-1]}})
        cursors.append(answer["data"]["customers"]["pageInfo"]["endCursor"])
    return cursors


async def load(
    url: str, pid: int, bodies: Sequence[dict[str, Any]], requests: int
) -> dict[str, float]:
    """``requests`` POSTs cycling through ``bodies`` from 10 concurrent clients."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        for body in bodies[: CONCURRENCY * 2]:  # warm up
            await _post(client, url, body)
        todo = iter(itertools.islice(itertools.cycle(bodies), requests))
        latencies: list[float] = []

        async def worker() -> None:
            for body in todo:
                started = time.perf_counter()
                await _post(client, url, body)
                latencies.append((time.perf_counter() - started) * 1000)

        cpu = _cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(pid) - cpu
    latencies.sort()
    return {
        "n": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(len(latencies) * 0.95)],
        "cpu_ms": cpu * 1000 / len(latencies),
    }


async def measure(
    config: Path, data_dir: Path, emails: Sequence[str], requests: int
) -> dict[str, dict[str, dict[str, float]]]:
    from tests.bench.run import CUSTOMER_QUERY, PAGE_QUERY

    results: dict[str, dict[str, dict[str, float]]] = {"customer_360": {}, "page_50": {}}
    for kind in ("floor", "general", "fast"):
        async with served(kind, config, data_dir) as (url, pid):
            customer = [{"query": CUSTOMER_QUERY, "variables": {"e": e}} for e in emails]
            results["customer_360"][kind] = await load(url, pid, customer, requests)
            async with httpx.AsyncClient(timeout=60) as client:
                cursors = await _cursors(client, url, PAGE_QUERY)
            pages = [{"query": PAGE_QUERY, "variables": {"cursor": c}} for c in cursors]
            results["page_50"][kind] = await load(url, pid, pages, max(requests // 5, 50))
    return results


# -- the servers ------------------------------------------------------------------


def _floor_app(data_dir: Path) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from tests.bench.floor import Floor
    from tests.bench.run import PAGE_SIZE

    floor: dict[str, Floor] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        floor["it"] = await Floor.open(data_dir)
        yield
        await floor["it"].aclose()

    async def graphql(request: Request) -> Response:
        variables = (await request.json())["variables"]
        if "e" in variables:
            text = await floor["it"].customer_by_email(variables["e"])
        else:
            text = await floor["it"].page(PAGE_SIZE, variables.get("cursor"))
        return Response(text, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", healthz)],
        lifespan=lifespan,
    )


def serve(kind: str, config: Path, data_dir: Path, port: int) -> None:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import load_settings
    from tests.bench.run import demo_dir_env

    if kind == "floor":
        app = _floor_app(data_dir)
    else:
        with demo_dir_env(data_dir):
            app = create_app(load_settings(config), fast_path=kind == "fast")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    kind, config, data_dir, port = sys.argv[1:5]
    os.environ["CUSTVIEW_DEMO_DIR"] = data_dir
    serve(kind, Path(config), Path(data_dir), int(port))
