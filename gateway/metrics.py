"""Prometheus metrics of the gateway: HTTP requests, GraphQL latency, every
source call (by source, operation and outcome) and circuit-breaker state.

Each app has its own registry, so several apps in one process (tests,
embedders) do not mix their numbers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from connectors import Connector
from connectors.resilience import resilient_in

_STATES = {"closed": 0, "half-opened": 1, "opened": 2}


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
        self._connectors: Mapping[str, Connector] = {}

    def observe_sources(self, connectors: Mapping[str, Connector]) -> None:
        """Record every call of these connectors (through their resilience wrapper)."""
        self._connectors = connectors
        for connector in connectors.values():
            resilient = resilient_in(connector)
            if resilient is not None:
                resilient.observer = self._source_call

    def _source_call(self, source: str, operation: str, outcome: str, seconds: float) -> None:
        self.source_calls.labels(source, operation, outcome).observe(seconds)

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        route = request.url.path if request.url.path in _ROUTES else "other"
        started = time.perf_counter()
        response = await call_next(request)
        self.latency.labels(route).observe(time.perf_counter() - started)
        self.requests.labels(route, request.method, str(response.status_code)).inc()
        return response

    async def endpoint(self, request: Request) -> Response:
        for name, connector in self._connectors.items():
            resilient = resilient_in(connector)
            if resilient is not None:
                self.breaker.labels(name).set(_STATES.get(resilient.breaker_state, 0))
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


_ROUTES = {"/graphql", "/healthz", "/readyz", "/metrics", "/"}
