"""The HTTP edge: a Starlette app serving the Customer 360 page at /,
/graphql (GraphiQL in a browser), /healthz, /readyz and /metrics.

The app owns its resources: the lifespan creates the connectors once and
closes them on shutdown; each request gets a fresh view with its own
DataLoaders.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry import Schema

from connectors.deadline import deadline_scope
from connectors.resilience import circuit_state
from gateway import heap
from gateway.admin import clear_cache_endpoint
from gateway.admission import Authentication
from gateway.audit import create_audit_log
from gateway.auth import Authenticator
from gateway.export import export_table
from gateway.export_workers import factory as export_workers
from gateway.graphiql import STATIC_DIR
from gateway.graphql_http import GraphQLLane, GraphQLView
from gateway.hardening import RequestGuard
from gateway.metrics import GatewayMetrics
from gateway.page import page_html, prefill
from gateway.request_ids import RequestIdExtension, RequestIdMiddleware
from gateway.settings import LoadedSettings
from gateway.sql import create_sql_server
from gateway.tracing import trace_sources, traced_app, tracer_provider
from resolvers.fastpath import FastPath, hooks_fields
from resolvers.governance import govern
from resolvers.lifecycle import combine
from resolvers.schema import build_schema
from resolvers.view import Federation


class _WithDeadline:
    """The GraphQL endpoint with a deadline for every source call of the request."""

    def __init__(self, app: ASGIApp, seconds: float | None) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with deadline_scope(self.seconds):
            await self.app(scope, receive, send)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    federation: Federation = request.app.state.federation
    statuses = await federation.sources()
    body = {
        "status": "ready" if all(s.health.ok for s in statuses) else "degraded",
        "sources": {
            s.name: {
                "kind": s.kind,
                "status": "up" if s.health.ok else "down",
                "latency_ms": s.health.latency_ms,
                "detail": s.health.detail,
                "circuit": circuit_state(federation.connectors[s.name]),
            }
            for s in statuses
        },
    }
    return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)


def _page(ide_headers: dict[str, str] | None) -> Callable[[Request], Awaitable[Response]]:
    """The Customer 360 page; it pre-fills the same credential as GraphiQL."""
    scheme, key = prefill(ide_headers)

    async def page(request: Request) -> Response:
        return HTMLResponse(page_html(scheme, key))

    return page


def gateway_schema(
    loaded: LoadedSettings, *, fast_path: bool = True, hot_route: bool = True
) -> Schema:
    """The schema the gateway serves: governed by the policy, limited by the profile;
    with ``fast_path`` hot operations run on the compiled executor (the general
    executor answers whatever it cannot compile) and, with ``hot_route``, those
    seen before without strawberry's execution machinery (:mod:`resolvers.hot`)."""
    model = loaded.settings.model
    schema = govern(build_schema(model), model)
    extensions = [*schema.extensions, *loaded.limits.extensions(), RequestIdExtension]
    if loaded.persisted is not None:
        # first: the limits, the policy and the audit see the stored document
        extensions.insert(0, loaded.persisted.extension(loaded.limits.persisted_only))
    if fast_path and not hooks_fields(extensions):
        extensions.append(FastPath(schema, model).extension)  # innermost: last
    schema.extensions = combine(extensions)  # one extension: strawberry's cost is per extension
    schema.hot_route = hot_route  # type: ignore[attr-defined]
    return schema


def create_app(
    loaded: LoadedSettings,
    ide_headers: dict[str, str] | None = None,
    metrics: GatewayMetrics | None = None,
    *,
    fast_path: bool = True,
    http_lane: bool = True,
    hot_route: bool = True,
) -> Starlette:
    """The gateway for validated settings; sources are connected in the lifespan.
    ``ide_headers`` pre-fill GraphiQL's Headers tab and the page's key field
    (the demo's key); ``metrics`` carry on from an app this one replaces;
    ``fast_path=False`` runs every operation on the general executor and
    ``http_lane=False`` every request through the general HTTP stack and
    ``hot_route=False`` every operation through strawberry's execution (the
    benchmark and the equivalence tests compare both)."""
    schema = gateway_schema(loaded, fast_path=fast_path, hot_route=hot_route)
    limits = loaded.limits

    metrics = metrics or GatewayMetrics()
    # outermost, so it counts what every other extension answers or refuses
    schema.extensions = combine((metrics.graphql_extension(), *schema.extensions))
    authenticator = Authenticator(loaded.settings.auth)
    tracing = loaded.settings.tracing
    provider = tracer_provider(tracing) if tracing.enabled else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        federation = loaded.create_federation()
        metrics.observe_sources(federation.connectors)
        if provider is not None:
            trace_sources(federation.connectors, provider)
        app.state.federation = federation
        sql = loaded.settings.sql
        server = None
        try:
            await federation.open()
            if sql.enabled:
                server = create_sql_server(
                    sql, federation, authenticator, loaded.policy, app.state.audit,
                    loaded.settings.server.request_deadline,
                )  # fmt: skip
                await server.start()
            app.state.sql_server = server
            with heap.serving():
                yield
        finally:
            if server is not None:
                await server.aclose()
            await federation.aclose()
            await app.state.audit.aclose()
            if provider is not None:
                provider.shutdown()  # flushes the spans still batched

    graphql = GraphQLView(schema, graphql_ide="graphiql" if limits.graphiql else None)
    graphql.ide_headers = json.dumps(ide_headers, indent=2) if ide_headers else None
    deadline = loaded.settings.server.request_deadline
    lane = Middleware(
        GraphQLLane,
        view=graphql,
        authenticator=authenticator,
        policy=loaded.policy,
        limits=limits,
        metrics=metrics,
        deadline=deadline,
    )
    app = Starlette(
        routes=[
            Route("/", _page(ide_headers)),
            Route(
                "/graphql",
                _WithDeadline(graphql, deadline),
                methods=["GET", "POST"],
            ),
            Route("/healthz", _healthz),
            Route("/readyz", _readyz),
            Route("/metrics", metrics.endpoint),
            Route("/export/{table}.{format}", export_table),
            Route("/admin/cache/clear", clear_cache_endpoint, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        lifespan=lifespan,
        middleware=[
            # the lane does what every layer below does for a plain POST /graphql, and
            # stays out of the way of tracing (its span wraps the general stack)
            *([lane] if http_lane and provider is None else []),
            Middleware(RequestIdMiddleware),
            *([Middleware(traced_app, provider=provider)] if provider is not None else []),
            Middleware(RequestGuard, limits=limits),
            Middleware(metrics.middleware),
            Middleware(
                Authentication, authenticator=authenticator, policy=loaded.policy, limits=limits
            ),
        ],
    )
    app.state.schema = schema
    app.state.tracer_provider = provider
    app.state.metrics = metrics
    app.state.policy = loaded.policy
    app.state.auth_mode = loaded.settings.auth.mode
    app.state.limits = limits
    app.state.audit = create_audit_log(loaded.settings.audit)
    app.state.export_workers = export_workers(loaded)
    return app
