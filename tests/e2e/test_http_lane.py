"""The GraphQL lane answers exactly as the general HTTP stack does.

Two gateways over the same sources, one with the lane (the default) and one
without, each served by uvicorn on loopback: every query of the e2e corpus
(as the fast path's equivalence test collects it), as three roles, and a
set of requests that each layer of the general stack refuses or treats
apart, must get the same status, headers (the date aside) and body bytes,
write the same audit entries and count the same metrics. The lane must
have answered the ordinary requests itself, and handed the others on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.auth import Authenticator
from gateway.graphql_http import GraphQLLane
from gateway.settings import DEMO_CONFIG, LoadedSettings, load_settings
from tests.e2e.test_fastpath import HOT, SAME_ID, _pool, _variables, corpus
from tests.support.servers import serve_in_thread

Request = tuple[str, dict[str, Any]]
"""(method, keyword arguments of ``httpx.AsyncClient.request``)"""


LANE = ({"http_lane": False}, {"http_lane": True})
"""The gateways :func:`_compare` compares by default: the general stack, and the lane."""


@contextmanager
def _served(
    loaded: LoadedSettings, apps: tuple[dict[str, Any], dict[str, Any]]
) -> Iterator[tuple[str, str, Any]]:
    """(expected URL, answering URL, answering app): ``create_app``'s arguments of each."""
    with ExitStack() as stack:
        urls = []
        for arguments in apps:
            app = create_app(loaded, **arguments)
            urls.append(stack.enter_context(serve_in_thread(app, lifespan="on")))
        yield urls[0], urls[1], app


def _lane_of(app: Any) -> GraphQLLane:
    layer = app.middleware_stack
    while not isinstance(layer, GraphQLLane):
        layer = layer.app
    return layer


def _audit(path: Path, seen: int) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()[seen:] if path.exists() else []
    return [{k: v for k, v in json.loads(line).items() if k != "at"} for line in lines]


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "date"]


def _timeless(content: bytes) -> bytes:
    """An explained answer without the time its source calls took."""
    return re.sub(rb'"(ms|[A-Za-z]+Ms)":[0-9.e-]+', rb'"\1":0', content)


_COUNTED = re.compile(
    r"^(custview_http_requests_total|custview_graphql_errors_total"
    r"|custview_graphql_operation_seconds_count|custview_http_request_seconds_count)\{.*$",
    re.M,
)


async def _counted(client: httpx.AsyncClient, url: str) -> list[str]:
    text = (await client.get(f"{url}/metrics")).text
    return sorted(m.group(0) for m in _COUNTED.finditer(text))


async def _compare(
    loaded: LoadedSettings,
    requests: Sequence[Request],
    audit: Path,
    apps: tuple[dict[str, Any], dict[str, Any]] = LANE,
) -> Any:
    """Sends each request to both gateways (``apps``: see :func:`_served`), in turn;
    the answering app."""
    with _served(loaded, apps) as (general_url, lane_url, app):
        async with httpx.AsyncClient(timeout=60) as client:
            for method, kwargs in requests:
                seen = len(_audit(audit, 0))
                expected = await client.request(method, f"{general_url}/graphql", **_fresh(kwargs))
                answer = await client.request(method, f"{lane_url}/graphql", **_fresh(kwargs))
                what = (method, kwargs.get("json") or kwargs.get("content"), kwargs.get("headers"))
                assert answer.status_code == expected.status_code, what
                if _explained(kwargs):
                    # the explained answer says how long each source call took
                    assert _headers(answer)[2:] == _headers(expected)[2:], what
                    assert _timeless(answer.content) == _timeless(expected.content), what
                else:
                    assert _headers(answer) == _headers(expected), what
                    assert answer.content == expected.content, what
                entries = _audit(audit, seen)
                assert entries[len(entries) // 2 :] == entries[: len(entries) // 2], what
            assert await _counted(client, lane_url) == await _counted(client, general_url)
        return app


def _explained(kwargs: dict[str, Any]) -> bool:
    """Whether the request asks for the explain plan (by header or in its body)."""
    body = kwargs.get("json")
    asked = body.get("extensions") if isinstance(body, dict) else None
    return "X-Custview-Explain" in (kwargs.get("headers") or {}) or (
        isinstance(asked, dict) and bool(asked.get("explain"))
    )


def _fresh(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A streamed body is given as the function making it: one stream per request."""
    made = kwargs.get("content")
    return {**kwargs, "content": made()} if callable(made) else kwargs


def _posts(queries: Sequence[str], pool: dict[str, Any], headers: dict[str, str]) -> list[Request]:
    return [
        ("POST", {"json": {"query": q, "variables": _variables(q, pool)}, "headers": headers})
        for q in queries
    ]


def _odd_requests(pool: dict[str, Any]) -> list[Request]:
    """Requests some layer refuses or reads apart: each must reach the same answer."""
    key = {"X-API-Key": "demo-key", **SAME_ID}
    hot = {"query": HOT, "variables": {"e": pool["e"]}}
    raw = json.dumps(hot).encode()

    def post(body: Any = hot, **headers: str) -> Request:
        return ("POST", {"json": body, "headers": {**key, **headers}})

    def content(data: bytes, **headers: str) -> Request:
        sent = {**key, "content-type": "application/json", **headers}
        return ("POST", {"content": data, "headers": sent})

    async def chunks() -> AsyncIterator[bytes]:
        yield raw[:40]
        yield raw[40:]

    return [
        ("POST", {"json": hot, "headers": SAME_ID}),  # no key: 401
        post(**{"X-API-Key": "not-a-key"}),  # unknown key: 401
        post(**{"Authorization": "Bearer not.a.jwt"}),
        ("POST", {"json": hot, "headers": {"Authorization": "Bearer demo-key", **SAME_ID}}),
        content(raw, **{"content-type": "text/plain"}),  # CSRF: 415
        content(raw, **{"content-type": "application/graphql-response+json"}),
        content(raw, **{"content-type": "Application/JSON"}),
        content(raw, **{"content-type": "application/json; charset=utf-8"}),
        content(b"{not json"),  # 400
        content(b"\xff\xfe{}"),
        content(json.dumps([hot, hot]).encode()),  # batching is off: 400
        content(b'"just a string"'),
        post({"query": 42}),
        post({"query": HOT, "variables": [1]}),
        post({"query": HOT, "variables": {"e": pool["e"]}, "extensions": "x"}),
        post({"query": HOT, "variables": {"e": pool["e"]}, "operationName": 7}),
        post({"variables": {}}),  # no query: 400
        post({"query": "{ nope }"}),  # invalid: 200 with errors
        post({"query": "{ customer(email: "}),  # does not parse
        post({"query": "query A { sources { name } } query B { sources { kind } }"}),
        post(
            {
                "query": "query A { sources { name } } query B { sources { kind } }",
                "operationName": "B",
            }
        ),
        post({"query": "query A { sources { name } }", "operationName": "C"}),
        post({"query": "mutation { nope }"}),
        post({"query": "subscription { nope }"}),
        post({"query": HOT, "variables": {"e": 5}}),  # variables that do not coerce
        post(**{"X-Purpose": "ticket 1234"}),
        post(**{"X-Custview-Explain": "1"}),
        post(**{"X-Request-ID": "caller.id-1"}),
        content(raw + b" " * 300_000),  # over the body limit: 413
        ("POST", {"content": chunks, "headers": {**key, "content-type": "application/json"}}),
        (
            "POST",
            {
                "json": hot,
                "headers": [("X-API-Key", "demo-key"), ("X-API-Key", "bad"), *SAME_ID.items()],
            },
        ),
        (
            "GET",
            {"params": {"query": HOT, "variables": json.dumps(hot["variables"])}, "headers": key},
        ),
        ("GET", {"params": {"query": "mutation { nope }"}, "headers": key}),
        ("PUT", {"json": hot, "headers": key}),
    ]


async def corpus_posts(
    loaded: LoadedSettings, demo_dir: Path
) -> tuple[dict[str, Any], list[Request]]:
    """The variables' pool, and the corpus posted as each of three roles."""
    pool = await _pool(loaded, demo_dir)
    requests: list[Request] = []
    for key in ("demo-key", "support-key", "emea-key"):
        requests += _posts(corpus(), pool, {"X-API-Key": key, **SAME_ID})
    return pool, requests


async def test_the_lane_answers_as_the_general_stack_does(
    demo_dir: Path, demo_env: None, tmp_path: Path
) -> None:
    audit = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    loaded = load_settings(DEMO_CONFIG)
    pool, requests = await corpus_posts(loaded, demo_dir)
    ordinary = len(requests)
    requests += _odd_requests(pool)
    answered = _lane_of(await _compare(loaded, requests, audit)).answered
    # the corpus and the ordinary odd ones (purpose, explain, charset, bad documents...)
    assert ordinary < answered < len(requests) - 10


async def test_persisted_operations_and_the_production_profile(
    demo_env: None, tmp_path: Path
) -> None:
    """Stored documents by hash, allow-listing, and anonymous callers refused."""
    config, requests = persisted(tmp_path)
    app = await _compare(load_settings(config), requests, Path(os.environ["CUSTVIEW_AUDIT_LOG"]))
    assert _lane_of(app).answered == len(requests) - 1


def persisted(tmp_path: Path) -> tuple[Path, list[Request]]:
    """A production config with an allow-list of one document, and requests for it,
    by hash and by text, for others and anonymously."""
    listed = "{ customers(first: 2) { nodes { id email } } }"
    digest = hashlib.sha256(listed.encode()).hexdigest()
    (tmp_path / "queries.json").write_text(json.dumps({digest: listed}))
    text = DEMO_CONFIG.read_text().replace("\nprofile: demo\n", "\nprofile: production\n")
    config = tmp_path / "production.yaml"
    config.write_text(text + "\nlimits:\n  persisted_queries: queries.json\n")
    key = {"X-API-Key": "demo-key", **SAME_ID}
    by_hash = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    requests: list[Request] = [
        ("POST", {"json": {"extensions": by_hash}, "headers": key}),
        ("POST", {"json": {"query": listed}, "headers": key}),
        ("POST", {"json": {"query": "{ sources { name } }"}, "headers": key}),
        (
            "POST",
            {"json": {"query": "{ sources { name } }", "extensions": by_hash}, "headers": key},
        ),
        ("POST", {"json": {"extensions": {"persistedQuery": {"sha256Hash": "0"}}}, "headers": key}),
        ("POST", {"json": {"query": "{ __schema { types { name } } }"}, "headers": key}),
        ("POST", {"json": {"extensions": by_hash}, "headers": SAME_ID}),
    ]
    return config, requests


async def test_a_failure_before_the_response_is_a_500_both_ways(
    demo_env: None, monkeypatch: Any
) -> None:
    """An execution that raises: starlette's error middleware answers 500, the
    metrics count it, the access line says it."""
    loaded = load_settings(DEMO_CONFIG)
    counted = []
    for lane in (False, True):
        app = create_app(loaded, http_lane=lane)
        async with app.router.lifespan_context(app):

            async def broken(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("the executor failed")

            monkeypatch.setattr(app.state.schema, "execute", broken)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://custview") as client:
                body = {"query": "{ sources { name } }"}
                response = await client.post(
                    "/graphql", json=body, headers={"X-API-Key": "demo-key"}
                )
                assert response.status_code == 500
                assert response.text == "Internal Server Error"
                counted.append(await _counted(client, ""))
            if lane:
                assert _lane_of(app).answered == 1
    assert counted[0] == counted[1]
    assert (
        'custview_http_requests_total{method="POST",route="/graphql",status="500"} 1.0'
        in counted[1]
    )


async def test_an_unexpected_error_while_admitting_goes_through_the_general_stack(
    demo_env: None, monkeypatch: Any, caplog: Any
) -> None:
    """An authenticator that fails unexpectedly (not a refusal): the lane hands the
    request over before answering, so the 500, its metrics and its access line are
    the general stack's."""
    loaded = load_settings(DEMO_CONFIG)
    counted, lines = [], []
    for lane in (False, True):
        app = create_app(loaded, http_lane=lane)
        async with app.router.lifespan_context(app):

            def broken(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("the identity provider's library failed")

            monkeypatch.setattr(Authenticator, "authenticate", broken)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://custview") as client:
                caplog.clear()
                with caplog.at_level(logging.INFO, logger="custview.access"):
                    response = await client.post(
                        "/graphql",
                        json={"query": "{ sources { name } }"},
                        headers={"X-API-Key": "demo-key"},
                    )
                lines.append(
                    [r.getMessage() for r in caplog.records if r.name == "custview.access"]
                )
                assert response.status_code == 500
                monkeypatch.undo()
                counted.append(await _counted(client, ""))
            if lane:
                assert _lane_of(app).answered == 0
    assert counted[0] == counted[1]
    assert (
        'custview_http_requests_total{method="POST",route="/graphql",status="500"} 1.0'
        in counted[1]
    )
    assert len(lines[1]) == len(lines[0]) == 1 and " 500" in lines[1][0]
