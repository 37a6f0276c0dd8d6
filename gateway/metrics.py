"""Prometheus metrics of the gateway: HTTP requests, GraphQL operations (count
and latency by operation name and type), GraphQL errors by code, every source
call (by source, operation and outcome), cache answers (hit, miss, stale),
connection pools in use and circuit-breaker state.

Each app has its own registry, so several apps in one process (tests,
embedders) do not mix their numbers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from connectors import Connector
from connectors.cache import cache_in
from connectors.resilience import resilient_in
from resolvers.hot import HotExtension

_STATES = {"closed": 0, "half-opened": 1, "opened": 2}
_CACHE = {"live": "miss", "cached": "hit", "stale": "stale"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_OPERATION_NAMES = 200
"""Distinct operation names labelled; clients choose them, so later ones count as
``other`` (a label per name would let any client grow the registry)."""
MAX_HTTP_LABELS = 1000
"""(route, method, status) whose metric children are kept at hand."""
MAX_KEPT_CHILDREN = 1000
"""Label sets of source calls, and (operation name, type) pairs, whose metric
children are kept at hand; past that, each observation looks its child up."""


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "custview_http_requests_total",
            "HTTP requests by route and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "custview_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            registry=self.registry,
        )
        self.source_calls = Histogram(
            "custview_source_call_seconds",
            "Calls to source systems by source, operation and outcome (ok or an error code).",
            ["source", "operation", "outcome"],
            registry=self.registry,
        )
        self.breaker = Gauge(
            "custview_source_circuit_state",
            "Circuit breaker per source: 0 closed, 1 half-open, 2 open.",
            ["source"],
            registry=self.registry,
        )
        self.exports = Counter(
            "custview_exports_total",
            "Exports by table, format and outcome (complete, cancelled by the client, failed).",
            ["table", "format", "outcome"],
            registry=self.registry,
        )
        self.export_rows = Counter(
            "custview_export_rows_total",
            "Rows sent by exports, by table and format.",
            ["table", "format"],
            registry=self.registry,
        )
        self.exports_running = Gauge(
            "custview_exports_in_progress",
            "Exports streaming right now.",
            registry=self.registry,
        )
        self.operations = Histogram(
            "custview_graphql_operation_seconds",
            "GraphQL operations by operation name (anonymous, or other past the first "
            f"{MAX_OPERATION_NAMES}) and type.",
            ["operation", "type"],
            registry=self.registry,
        )
        self.errors = Counter(
            "custview_graphql_errors_total",
            "Errors in GraphQL answers by extensions.code (GRAPHQL_ERROR when it has none).",
            ["code"],
            registry=self.registry,
        )
        self.cache = Counter(
            "custview_cache_answers_total",
            "Keys answered through a source's cache: hit, miss (read live) or stale.",
            ["source", "result"],
            registry=self.registry,
        )
        self.pool_in_use = Gauge(
            "custview_source_pool_connections_in_use",
            "Connections checked out of each source's pool (sources that keep one).",
            ["source"],
            registry=self.registry,
        )
        self.pool_capacity = Gauge(
            "custview_source_pool_connections_max",
            "Connections each source's pool may open (size plus overflow).",
            ["source"],
            registry=self.registry,
        )
        self._names: set[str] = set()
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # metric children by label set: a labels() call takes a lock and builds the
        # key (~1 us); a source call is observed ~10 times per customer 360
        self._calls: dict[tuple[str, str, str], Any] = {}
        self._operations: dict[tuple[str | None, str], Any] = {}
        self._connectors: Mapping[str, Connector] = {}

    def observe_sources(self, connectors: Mapping[str, Connector]) -> None:
        """Record every call of these connectors (through their resilience wrapper)."""
        self._connectors = connectors
        for connector in connectors.values():
            resilient = resilient_in(connector)
            if resilient is not None:
                resilient.observer = self._source_call
            cached = cache_in(connector)
            if cached is not None:
                cached.observer = self._cache_answer

    def _cache_answer(self, source: str, origin: str, count: int) -> None:
        self.cache.labels(source, _CACHE.get(origin, origin)).inc(count)

    def _operation_label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if not _NAME.fullmatch(name):
            return "other"
        if name not in self._names and len(self._names) >= MAX_OPERATION_NAMES:
            return "other"
        self._names.add(name)
        return name

    def graphql_extension(self) -> type[SchemaExtension]:
        """A schema extension counting every operation, its latency and its errors;
        install it first, so it sees the errors every other extension adds."""
        metrics = self

        class GraphQLMetrics(HotExtension):
            def begin(self, context: ExecutionContext) -> float:
                return time.perf_counter()

            def end(
                self, context: ExecutionContext, started: float, raised: BaseException | None
            ) -> None:
                # also when the operation ends early (a document that does not parse)
                seconds = time.perf_counter() - started
                metrics._observe(context, seconds, raised is None)

        return GraphQLMetrics

    def _observe(self, context: ExecutionContext, seconds: float, finished: bool) -> None:
        try:
            kind = context.operation_type.value
        except RuntimeError:  # the document did not parse
            kind = "unknown"
        key = (context.operation_name, kind)
        child = self._operations.get(key)
        if child is None:
            # a name's label never changes once given (the set of names only grows)
            child = self.operations.labels(self._operation_label(key[0]), kind)
            if len(self._operations) < MAX_KEPT_CHILDREN:
                self._operations[key] = child
        child.observe(seconds)
        result = context.result
        errors = (result.errors if result is not None else None) or []
        errors = errors or context.pre_execution_errors or []
        if not finished and not errors:
            self.errors.labels("GRAPHQL_ERROR").inc()
        for error in errors:
            code = (error.extensions or {}).get("code") or "GRAPHQL_ERROR"
            self.errors.labels(str(code)).inc()

    def _source_call(self, source: str, operation: str, outcome: str, seconds: float) -> None:
        key = (source, operation, outcome)
        child = self._calls.get(key)
        if child is None:
            child = self.source_calls.labels(source, operation, outcome)
            if len(self._calls) < MAX_KEPT_CHILDREN:
                self._calls[key] = child
        child.observe(seconds)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Times and counts each HTTP request until its response starts (a plain
        ASGI wrapper: starlette's ``BaseHTTPMiddleware`` runs the app in a task of
        its own with memory streams, ~0.2 ms a request)."""

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            path = Request(scope).url.path
            route = path if path in _ROUTES else "other"
            started = time.perf_counter()
            counted = False

            def count(status: int) -> None:
                nonlocal counted
                counted = True
                self.observe_http(route, scope["method"], status, started)

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    count(message["status"])
                await send(message)

            try:
                await app(scope, receive, sending)
            except Exception:
                # the server answers 500 for an app that failed before its response
                # started (starlette's outermost error middleware): count it as that
                if not counted:
                    count(500)
                raise

        return timed

    def observe_http(self, route: str, method: str, status: int, started: float) -> None:
        """Counts a request whose response starts now with ``status``, begun at
        ``started`` (``time.perf_counter()``)."""
        seconds = time.perf_counter() - started
        key = (route, method, status)
        found = self._http.get(key)
        if found is None:
            # the children, once per label set (a labels() call takes a lock)
            found = self.latency.labels(route), self.requests.labels(route, method, str(status))
            if len(self._http) < MAX_HTTP_LABELS:
                self._http[key] = found
        found[0].observe(seconds)
        found[1].inc()

    async def endpoint(self, request: Request) -> Response:
        for name, connector in self._connectors.items():
            resilient = resilient_in(connector)
            if resilient is not None:
                self.breaker.labels(name).set(_STATES.get(resilient.breaker_state, 0))
            usage = connector.pool_usage()
            if usage is not None:
                self.pool_in_use.labels(name).set(usage[0])
                self.pool_capacity.labels(name).set(usage[1])
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


_ROUTES = {"/graphql", "/healthz", "/readyz", "/metrics", "/"}
