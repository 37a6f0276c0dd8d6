"""The hot route (:mod:`resolvers.hot`) answers exactly as strawberry's execution does.

Two gateways over the same sources, both with the fast path and the HTTP lane,
one running hot operations on the route and one through strawberry's
``execute`` with every extension's hooks: each request of the e2e query corpus
is sent twice in a row to each (the first compiles its plan, the second is
hot), as three roles, with the explain header and body extension, a purpose,
a caller's request id, over GET, with a source down (errors beside partial
results) and under the production profile with persisted operations. Status,
headers, body bytes, audit entries and metrics must be the same. In process:
the route answers only what it must (a document seen and valid, a plan
compiled, variables that bind, an operation type allowed, every extension
able to run hot), and a plan or an audit log that fails answers, logs and
counts as strawberry's path does.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from graphql import NonNullTypeNode, OperationDefinitionNode, parse
from strawberry.extensions import SchemaExtension

from gateway.app import create_app, gateway_schema
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.hot import HotExtension, HotRoute
from resolvers.lifecycle import combine
from tests.e2e.test_fastpath import HOT, PAGE, SAME_ID, _pool, corpus
from tests.e2e.test_http_lane import (
    Request,
    _compare,
    _counted,
    _posts,
    corpus_posts,
    persisted,
)
from tests.e2e.test_partial_results import DEAD

HOT_ROUTE = ({"hot_route": False}, {"hot_route": True})
"""strawberry's execution, then the hot route (``create_app``'s arguments)."""


def _twice(requests: Sequence[Request]) -> list[Request]:
    return [r for request in requests for r in (request, request)]


def _route(app: Any) -> HotRoute:
    route = app.state.schema.route()
    assert isinstance(route, HotRoute)
    return route


def _compiled(route: HotRoute, queries: Sequence[str], pool: dict[str, Any]) -> list[str]:
    """The queries the fast path compiled whose required variables the pool gives
    (without one, graphql-core reports it: strawberry's path)."""

    def hot(query: str) -> bool:
        operations = [d for d in parse(query).definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != 1:
            return False  # never compiled
        operation = operations[0]
        name = operation.name.value if operation.name else None
        return bool(route.fast.plans.get((query, name))) and all(
            v.variable.name.value in pool
            for v in operation.variable_definitions or ()
            if isinstance(v.type, NonNullTypeNode)
        )

    return [q for q in queries if hot(q)]


async def test_the_hot_route_answers_as_strawberry_does(
    demo_dir: Path, demo_env: None, tmp_path: Path
) -> None:
    audit = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    loaded = load_settings(DEMO_CONFIG)
    pool, posts = await corpus_posts(loaded, demo_dir)
    requests = _twice(posts)
    key = {"X-API-Key": "demo-key", **SAME_ID}
    hot = {"query": HOT, "variables": {"e": pool["e"]}}
    odd: list[Request] = [
        ("POST", {"json": hot, "headers": {**key, "X-Custview-Explain": "1"}}),
        ("POST", {"json": {**hot, "extensions": {"explain": True}}, "headers": key}),
        ("POST", {"json": hot, "headers": {**key, "X-Purpose": "ticket 1234"}}),
        ("POST", {"json": hot, "headers": {**key, "X-Request-ID": "caller.id-1"}}),
        (
            "GET",
            {"params": {"query": HOT, "variables": json.dumps(hot["variables"])}, "headers": key},
        ),
    ]
    refused: list[Request] = [  # strawberry's path answers these (their errors)
        ("POST", {"json": {"query": HOT, "variables": {"e": 5}}, "headers": key}),
        ("POST", {"json": {**hot, "operationName": "Nope"}, "headers": key}),
        ("POST", {"json": {"query": HOT.replace("email", "emial")}, "headers": key}),
    ]
    app = await _compare(loaded, [*requests, *_twice(odd), *_twice(refused)], audit, HOT_ROUTE)
    route = _route(app)
    compiled = _compiled(route, corpus(), pool)
    assert len(compiled) >= 20
    # each compiled query hot but the first time (three roles, twice each), and
    # every odd one (the corpus's HOT, compiled already)
    assert route.answered == 5 * len(compiled) + 2 * len(odd)


async def test_with_a_source_down_the_hot_route_answers_as_strawberry_does(
    demo_dir: Path, demo_env: None, tmp_path: Path
) -> None:
    """Errors located beside partial results, the failed source's code, the
    ``custview`` extension saying the view is incomplete, the audit's outcome."""
    audit = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    pool = await _pool(load_settings(DEMO_CONFIG), demo_dir)
    dead = tmp_path / "dead.yaml"
    dead.write_text(
        DEMO_CONFIG.read_text().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"', f'"{DEAD}"'
        )
    )
    reading = [HOT, PAGE]
    requests: list[Request] = []
    for key in ("demo-key", "support-key"):
        requests += _twice(_posts(reading, pool, {"X-API-Key": key, **SAME_ID}))
    app = await _compare(load_settings(dead), requests, audit, HOT_ROUTE)
    assert _route(app).answered == 3 * len(reading)


async def test_persisted_operations_on_the_hot_route(demo_env: None, tmp_path: Path) -> None:
    """Under the production profile (suggestions hidden, persisted operations only):
    a stored document by hash or by text runs hot; the others are refused on
    strawberry's path."""
    config, requests = persisted(tmp_path)
    app = await _compare(
        load_settings(config), _twice(requests), Path(os.environ["CUSTVIEW_AUDIT_LOG"]), HOT_ROUTE
    )
    assert _route(app).answered == 3  # by hash (second), by text (both)


@asynccontextmanager
async def _client(**arguments: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(load_settings(DEMO_CONFIG), **arguments)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://custview",
            headers={"X-API-Key": "demo-key", **SAME_ID},
        ) as client:
            yield client, app


async def test_the_route_answers_only_what_it_must(demo_dir: Path, demo_env: None) -> None:
    pool = await _pool(load_settings(DEMO_CONFIG), demo_dir)
    hot = {"query": HOT, "variables": {"e": pool["e"]}}
    async with _client() as (client, app):
        route = _route(app)

        async def answered(method: str = "POST", **kwargs: Any) -> bool:
            before = route.answered
            await client.request(method, "/graphql", **kwargs)
            return route.answered > before

        assert not await answered(json=hot)  # compiled now
        assert await answered(json=hot)
        assert await answered(
            "GET", params={"query": HOT, "variables": json.dumps(hot["variables"])}
        )
        assert not await answered(json={"query": HOT, "variables": {"e": 5}})  # not text
        assert not await answered(json={**hot, "operationName": "Nope"})
        for query in ("{ sources { name } }", "{ nope }", "{ customer(email: ", "mutation { x }"):
            assert not await answered(json={"query": query})
            assert not await answered(json={"query": query})
        assert not await answered(
            "GET", params={"query": "mutation { nope }"}
        )  # a mutation over GET: strawberry's refusal
        assert await answered(json=hot)

    loaded = load_settings(DEMO_CONFIG)
    assert gateway_schema(loaded, hot_route=False).route() is None  # type: ignore[attr-defined]
    assert gateway_schema(loaded, fast_path=False).route() is None  # type: ignore[attr-defined]
    schema = gateway_schema(loaded)
    assert isinstance(schema.route(), HotRoute)  # type: ignore[attr-defined]

    class Unknown(SchemaExtension):
        def on_execute(self) -> Any:
            yield

    schema.extensions = combine((Unknown, *schema.extensions))
    assert schema.route() is None  # type: ignore[attr-defined]

    class OwnHook(HotExtension):  # a hook of its own, which the route would not run
        def on_validate(self) -> Any:
            yield

    schema = gateway_schema(loaded)
    schema.extensions = combine((OwnHook, *schema.extensions))
    assert schema.route() is None  # type: ignore[attr-defined]


async def test_the_schemas_own_calls_answer_as_strawberry_does(
    demo_dir: Path, demo_env: None
) -> None:
    """``schema.execute`` called directly (not over HTTP, which refuses both first):
    variables that are not a dict and an empty set of allowed operation types
    (which allows none: only None is the default) are answered, or refused, as
    strawberry does."""
    pool = await _pool(load_settings(DEMO_CONFIG), demo_dir)
    seen: dict[bool, list[Any]] = {}
    for hot_route in (False, True):
        async with _client(hot_route=hot_route) as (client, app):
            await client.post("/graphql", json={"query": HOT, "variables": {"e": pool["e"]}})
            schema = app.state.schema
            listed = await schema.execute(HOT, ["not", "a", "dict"], context_value={})
            try:
                await schema.execute(
                    HOT, {"e": pool["e"]}, context_value={}, allowed_operation_types=set()
                )
                refused = None
            except Exception as exc:
                refused = type(exc).__name__
            seen[hot_route] = [[e.message for e in listed.errors or []], refused]
    assert seen[True] == seen[False], seen
    assert seen[True][1] == "InvalidOperationTypeError"


async def test_a_failing_plan_or_audit_log_answers_as_strawberry_does(
    demo_dir: Path, demo_env: None, monkeypatch: Any, caplog: Any
) -> None:
    """Whatever fails while a hot operation runs — the plan (a bug), the audit log
    — gives the body, the log lines and the metrics of strawberry's path."""
    from resolvers import fastpath
    from resolvers.audit import Auditor, AuditUnavailable

    pool = await _pool(load_settings(DEMO_CONFIG), demo_dir)
    hot = {"query": HOT, "variables": {"e": pool["e"]}}

    async def failing_plan(self: Any, fields: Any) -> Any:
        raise RuntimeError("the plan failed")

    async def failing_audit(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise AuditUnavailable("the audit log is down")

    failures = {
        "plan": (fastpath._Run, "execute", failing_plan),
        "audit": (Auditor, "record", failing_audit),
    }
    for name, (owner, attribute, failing) in failures.items():
        seen = []
        for hot_route in (False, True):
            async with _client(hot_route=hot_route) as (client, app):
                await client.post("/graphql", json=hot)  # compiled
                with monkeypatch.context() as patched:
                    patched.setattr(owner, attribute, failing)
                    caplog.clear()
                    with caplog.at_level(logging.INFO):
                        before = _route(app).answered if hot_route else 0
                        response = await client.post("/graphql", json=hot)
                        if hot_route:
                            assert _route(app).answered == before + 1, name
                    lines = [
                        (r.name, r.levelno, r.getMessage(), bool(r.exc_info))
                        for r in caplog.records
                        if r.name != "custview.access"
                    ]
                seen.append(
                    (response.status_code, response.content, lines, await _counted(client, ""))
                )
        assert seen[1] == seen[0], name
        assert b'"errors"' in seen[0][1], name
