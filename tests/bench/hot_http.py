"""The hot queries over HTTP: one uvicorn worker per contender, concurrency 10.

Each contender is served in its own process (``python -m
tests.bench.hot_http floor|general|fast CONFIG DATA_DIR PORT``) on loopback:
the floor as a bare Starlette route that answers the two operations, custview
as the gateway app (``create_app``) with the demo key, the JSON-lines audit
log and every middleware, once without and once with the fast path. The
floor's server freezes its startup heap and raises the collector's
thresholds as the gateway's lifespan does (``gateway.heap.serving``; in
process both run under it). The load runs in this process: 10 concurrent
clients, a bounded number of requests, latency per request; the server's CPU
per request comes from its ``/proc/<pid>/stat``.

:func:`app_calls` counts instead (``python -m tests.bench.hot --calls``): the
same two apps driven in this process through ASGI, with the requests httpx
would send, under cProfile enabled only around the app's own work (the
driver's ``receive`` and ``send`` are left out), so what is counted is the
server's Python per request minus uvicorn's.
"""

from __future__ import annotations

import asyncio
import cProfile
import itertools
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from starlette.types import ASGIApp, Message, Scope

from tests.bench.hotspots import calls_by_area

T = TypeVar("T")
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

    from gateway import heap
    from tests.bench.floor import Floor
    from tests.bench.run import PAGE_SIZE

    floor: dict[str, Floor] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        floor["it"] = app.state.floor = await Floor.open(data_dir)
        # the collector's settings of the gateway's lifespan, as the in-process run
        # gives both: the floor's server ran with CPython's defaults
        with heap.serving():
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


def app_of(kind: str, config: Path, data_dir: Path) -> ASGIApp:
    """The app a contender serves: the floor's route, or the gateway's app
    (``fast``: with its fast path; the audit log as ``CUSTVIEW_AUDIT_LOG`` says)."""
    from gateway.app import create_app
    from gateway.settings import load_settings
    from tests.bench.run import demo_dir_env

    if kind == "floor":
        return _floor_app(data_dir)
    with demo_dir_env(data_dir):
        return create_app(load_settings(config), fast_path=kind == "fast")


def serve(kind: str, config: Path, data_dir: Path, port: int) -> None:
    import uvicorn

    app = app_of(kind, config, data_dir)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- counted in process -------------------------------------------------------------


class _Exchange:
    """One request handed to an ASGI app as uvicorn would: the scope, the body in
    one message, the response's messages kept."""

    def __init__(self, request: httpx.Request) -> None:
        self.scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": request.method,
            "root_path": "",
            "path": request.url.path,
            "raw_path": request.url.raw_path,
            "query_string": request.url.query,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "state": {},
        }
        self.body = request.read()
        self.sent: list[Message] = []
        self.received = False

    async def receive(self) -> Message:
        if self.received:  # the app waits for the client to go: it has answered
            return {"type": "http.disconnect"}
        self.received = True
        return {"type": "http.request", "body": self.body, "more_body": False}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def answer(self) -> str:
        """The response's body; a status but 200, or errors, raise."""
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        if start["status"] != 200:
            raise RuntimeError(f"the app answered {start['status']}: {body[:300]!r}")
        if json.loads(body).get("errors"):
            raise RuntimeError(f"the app answered with errors: {body[:300]!r}")
        return body.decode()


def _keys(*functions: Callable[..., Any]) -> frozenset[tuple[str, int, str]]:
    """cProfile's keys of ``functions``."""
    codes = [f.__code__ for f in functions]
    return frozenset((c.co_filename, c.co_firstlineno, c.co_name) for c in codes)


Direct = Callable[[dict[str, Any]], Awaitable[str]]
"""A contender answering one operation's variables in process (its JSON text)."""
Counted = Callable[[dict[str, Any], cProfile.Profile | None], Awaitable[str]]


async def app_calls(
    kind: str,
    config: Path,
    data_dir: Path,
    emails: Sequence[str],
    pages: int,
    direct: Callable[[Any], Mapping[str, Direct]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Function calls per request by area of a contender's app (``floor`` or
    ``fast``) answering the customer 360s of ``emails`` and ``pages``
    consecutive pages, and of the same contender answering them in process
    over the app's own sources (``direct(app)`` once started: operation ->
    runner): operation -> ``app``/``direct`` -> area -> calls. Every request
    is answered once uncounted first, so both counts see the same warm caches
    and their difference is the HTTP layer's."""
    from tests.bench.run import CUSTOMER_QUERY, PAGE_QUERY

    queries = {"customer_360": CUSTOMER_QUERY, "page_50": PAGE_QUERY}
    audit = str(data_dir / f"bench-audit-calls-{kind}.jsonl")
    old, os.environ["CUSTVIEW_AUDIT_LOG"] = os.environ.get("CUSTVIEW_AUDIT_LOG"), audit
    try:
        app = app_of(kind, config, data_dir)
    finally:
        if old is None:
            del os.environ["CUSTVIEW_AUDIT_LOG"]
        else:
            os.environ["CUSTVIEW_AUDIT_LOG"] = old
    client = httpx.AsyncClient(base_url="http://127.0.0.1:8000", headers=HEADERS)

    def over_http(operation: str) -> Counted:
        async def run(variables: dict[str, Any], profiler: cProfile.Profile | None) -> str:
            body = {"query": queries[operation], "variables": variables}
            exchange = _Exchange(client.build_request("POST", "/graphql", json=body))
            await _profiled(app(exchange.scope, exchange.receive, exchange.send), profiler)
            return exchange.answer()

        return run

    def in_process(operation: str) -> Counted:
        async def run(variables: dict[str, Any], profiler: cProfile.Profile | None) -> str:
            text: str = await _profiled(runners[operation](variables), profiler)
            return text

        return run

    async def walk(run: Counted, operation: str, profiler: cProfile.Profile | None = None) -> int:
        """Answers the operation's requests (counted by ``profiler`` if given); how many."""
        cursor: str | None = None
        n = len(emails) if operation == "customer_360" else pages
        for i in range(n):
            variables = {"e": emails[i]} if operation == "customer_360" else {"cursor": cursor}
            text = await run(variables, profiler)
            if operation == "page_50":
                cursor = json.loads(text)["data"]["customers"]["pageInfo"]["endCursor"]
        return n

    found: dict[str, dict[str, dict[str, float]]] = {}
    lifespan: Callable[[Any], Any] = app.router.lifespan_context  # type: ignore[attr-defined]
    try:
        async with lifespan(app):
            runners = direct(app)
            for operation in queries:
                sides = {"app": over_http(operation), "direct": in_process(operation)}
                for run in sides.values():  # warm up: every request once each way
                    await walk(run, operation)
                found[operation] = {}
                for side, run in sides.items():
                    profiler = cProfile.Profile()
                    n = await walk(run, operation, profiler)
                    found[operation][side] = _counted(profiler, n)
    finally:
        await client.aclose()
    return found


async def _profiled(work: Awaitable[T], profiler: cProfile.Profile | None) -> T:
    """``work``'s result, counted by ``profiler`` if given. It runs in a task of
    its own: a coroutine counts a call each time it resumes, and this way no
    frame of the driver's but :func:`_counting` is below the work's."""
    return await asyncio.create_task(_counting(work, profiler))


async def _counting(work: Awaitable[T], profiler: cProfile.Profile | None) -> T:
    if profiler is not None:
        profiler.enable()
    try:
        return await work
    finally:
        if profiler is not None:
            profiler.disable()


def _counted(profiler: cProfile.Profile, requests: int) -> dict[str, float]:
    """Calls per request by area, less the driver's (uvicorn stands in for it)."""
    driver = _keys(_Exchange.receive, _Exchange.send, _counting)
    return calls_by_area(pstats.Stats(profiler), requests, driver)


if __name__ == "__main__":
    kind, config, data_dir, port = sys.argv[1:5]
    os.environ["CUSTVIEW_DEMO_DIR"] = data_dir
    serve(kind, Path(config), Path(data_dir), int(port))
