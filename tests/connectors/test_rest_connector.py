"""The REST connector against a real HTTP server on 127.0.0.1 (``rest_server``)."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from pydantic import BaseModel, ValidationError

import connectors
import connectors.rest
from connectors import (
    CircuitOpen,
    DeadlineExceeded,
    Filter,
    ReadOnlyViolation,
    ScanRequest,
    SchemaMismatch,
    Sort,
    SourceTimeout,
    SourceUnavailable,
    UnsupportedOperation,
)
from connectors.deadline import deadline_scope
from connectors.resilience import ResilienceOptions, ResilientConnector
from connectors.rest import RESTConnector, RESTOptions
from tests.connectors import rest_server
from tests.connectors.rest_server import STATE, SURVEYS

DOC = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "rest.md"
COLUMNS = ["id", "email", "score", "kind", "comment", "created_at"]
STYLES: dict[str, dict[str, Any]] = {
    "page": {"style": "page", "param": "page", "size_param": "per_page", "start": 1},
    "offset": {"style": "offset", "param": "offset", "limit_param": "limit"},
    "cursor": {"style": "cursor", "param": "cursor", "next": "next_cursor"},
    "link": {"style": "link", "limit_param": "limit"},
}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with rest_server.serve() as url:
        yield url


@pytest.fixture(autouse=True)
def only_reads() -> Iterator[None]:
    """After every test: the server saw GETs and token POSTs, nothing else."""
    STATE.reset()
    yield
    for method, path, _ in STATE.requests:
        assert method == "GET" or (method == "POST" and path == "/oauth/token"), (method, path)


def resource(prefix: str, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "path": f"{prefix}/surveys",
        "records": "data",
        "columns": {
            "id": "id",
            "email": "respondent.email",
            "score": "score",
            "kind": "type",
            "comment": "comment",
            "created_at": "created_at",
        },
        "key": "id",
        "get_by_key": f"{prefix}/surveys/{{id}}",
        "record": "data",
        "lookups": {
            "email": {"param": "email", "batch": True, "max_batch": 50},
            "kind": {"param": "type"},
        },
        "filters": {
            "created_at": {"ge": "created_after", "lt": "created_before"},
            "kind": {"eq": "type"},
        },
        "sort": {"param": "sort", "columns": ["created_at", "id"], "max_columns": 2},
        "pagination": {**STYLES["cursor"], "page_size": 100},
    }
    return {**spec, **changes}


def make(server: str, name: str = "feedback", **options: Any) -> RESTConnector:
    defaults: dict[str, Any] = {
        "base_url": f"{server}/api",
        "timeout": 2.0,
        "retry_initial_wait": 0.01,
        "retry_max_wait": 0.05,
        "resources": {"surveys": resource("/open/cursor")},
    }
    return RESTConnector(name, RESTOptions.model_validate({**defaults, **options}))


@pytest.fixture()
async def conn(base_url: str) -> AsyncIterator[RESTConnector]:
    c = make(base_url)
    yield c
    await c.aclose()


def expected(survey: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": survey["id"],
        "email": survey["respondent"]["email"],
        "score": survey["score"],
        "kind": survey["type"],
        "comment": survey["comment"],
        "created_at": survey["created_at"],
    }


async def collect(c: RESTConnector, request: ScanRequest) -> list[dict[str, Any]]:
    return [row async for row in c.scan(request)]


# --- the package and its options ---------------------------------------------------------


def test_public_names_are_stable() -> None:
    assert connectors.rest.__all__ == sorted(connectors.rest.__all__)
    assert {"RESTConnector", "RESTOptions"} <= set(connectors.rest.__all__)


def test_registers_like_any_connector() -> None:
    connectors.register("rest", RESTConnector)
    try:
        assert connectors.load("rest") is RESTConnector
        assert RESTConnector.options_model is RESTOptions
    finally:
        connectors.unregister("rest")


def _option_keys(model: type[BaseModel]) -> set[str]:
    keys = set(model.model_fields)
    for field in model.model_fields.values():
        pending = [field.annotation]
        while pending:
            annotation = pending.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                keys |= _option_keys(annotation)
            pending += get_args(annotation)  # unions, Annotated, dict values
    return keys


def test_every_option_is_documented() -> None:
    documented = set(re.findall(r"`([a-z_]+)`", DOC.read_text()))
    assert _option_keys(RESTOptions) - documented == set()


def test_unknown_option_is_a_clear_error(base_url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make(base_url, retrys=3)
    assert "retrys" in str(caught.value) and "Extra inputs are not permitted" in str(caught.value)
    with pytest.raises(ValidationError, match="pagnation"):
        make(base_url, resources={"surveys": {**resource("/open/cursor"), "pagnation": {}}})


def test_invalid_options_never_echo_secrets(base_url: str) -> None:
    bad_auth = {"type": "bearer", "token": "s3cret", "extra": "s3cret"}
    with pytest.raises(ValidationError) as caught:
        make(base_url, auth=bad_auth)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        make(base_url, base_url="http://me:s3cret@127.0.0.1/api")
    assert "s3cret" not in str(caught.value) and "not in base_url" in str(caught.value)
    with pytest.raises(ValidationError, match="exactly one of 'header' or 'query'"):
        make(base_url, auth={"type": "api_key", "value": "k"})


def test_resources_must_name_mapped_columns(base_url: str) -> None:
    with pytest.raises(ValidationError, match="unmapped column"):
        make(base_url, resources={"s": resource("/open/cursor", filters={"nope": {"eq": "x"}})})
    with pytest.raises(ValidationError, match="exactly one placeholder"):
        make(base_url, resources={"s": resource("/open/cursor", get_by_key="/s/{a}/{b}")})
    with pytest.raises(ValidationError, match="clash with paging"):
        make(base_url, resources={"s": resource("/o", filters={"kind": {"eq": "cursor"}})})


def test_capabilities_are_exactly_what_the_resource_declares(conn: RESTConnector) -> None:
    caps = conn.capabilities_for("surveys")
    assert caps.operators_for("created_at") == {"ge", "lt"}
    assert caps.operators_for("kind") == {"eq"}
    assert caps.operators_for("score") == frozenset()
    assert caps.sortable_columns == frozenset({"created_at", "id"})
    assert caps.max_sort_columns == 2
    assert caps.lookup_columns == frozenset({"email", "kind", "id"})
    assert caps.can_lookup("email") and not caps.can_lookup("email", "casefold")
    assert not caps.supports_keyset and not caps.supports_aggregates and caps.supports_limit
    assert not conn.capabilities_for("unknown").supports_batch_lookup


# --- lookups -------------------------------------------------------------------------------


async def test_batched_lookup_follows_the_dataloader_contract(conn: RESTConnector) -> None:
    keys = ["user3@example.com", "nobody@example.com", "user1@example.com", "user3@example.com"]
    found = await conn.lookup_many("surveys", "email", keys, ["id", "email"])
    assert [[r["id"] for r in rows] for rows in found] == [
        [3, 28, 53],
        [],
        [1, 26, 51],
        [3, 28, 53],
    ]
    assert found[0][0] == {"id": 3, "email": "user3@example.com"}
    assert conn.requests == 1


async def test_batched_lookup_is_chunked_by_max_batch(base_url: str) -> None:
    spec = resource("/open/cursor", lookups={"id": {"param": "ids", "batch": True, "max_batch": 2}})
    c = make(base_url, resources={"surveys": spec})
    try:
        found = await c.lookup_many("surveys", "id", [5, "4", 999, 1, 2, None], COLUMNS)
    finally:
        await c.aclose()
    assert [[r["id"] for r in rows] for rows in found] == [[5], [4], [], [1], [2], []]
    assert found[0][0] == expected(SURVEYS[4])
    assert c.requests == 3
    assert sorted(q for q in STATE.queries() if "ids=" in q) == [
        "ids=2&limit=100",
        "ids=5%2C4&limit=100",
        "ids=999%2C1&limit=100",
    ]


async def test_batched_lookup_reads_every_page_of_matches(base_url: str) -> None:
    paging = {**STYLES["cursor"], "page_size": 2}
    c = make(base_url, resources={"surveys": resource("/open/cursor", pagination=paging)})
    try:
        found = await c.lookup_many("surveys", "email", ["user2@example.com"], ["id"])
    finally:
        await c.aclose()
    assert found == [[{"id": 2}, {"id": 27}, {"id": 52}]]
    assert c.requests == 2


async def test_repeated_parameter_lookups(base_url: str) -> None:
    lookups = {"email": {"param": "respondent", "batch": True, "separator": None}}
    c = make(base_url, resources={"surveys": resource("/open/cursor", lookups=lookups)})
    try:
        found = await c.lookup_many(
            "surveys", "email", ["user4@example.com", "user5@example.com"], ["id"]
        )
    finally:
        await c.aclose()
    assert found == [[{"id": 4}, {"id": 29}, {"id": 54}], [{"id": 5}, {"id": 30}, {"id": 55}]]
    assert any("respondent=user4%40example.com&respondent=user5" in q for q in STATE.queries())


async def test_single_lookups_run_concurrently_within_the_limit(base_url: str) -> None:
    spec = resource("/x/slowish", lookups={"id": {"param": "id"}})
    c = make(base_url, max_concurrency=3, resources={"surveys": spec})
    usage: set[tuple[int, int] | None] = set()
    try:
        lookups = asyncio.create_task(c.lookup_many("surveys", "id", list(range(1, 13)), ["id"]))
        while not lookups.done():
            usage.add(c.pool_usage())
            await asyncio.sleep(0.002)
        found = await lookups
    finally:
        await c.aclose()
    assert found == [[{"id": i}] for i in range(1, 13)]
    assert c.requests == 12
    # the server saw three requests at once, never more: concurrent, within the limit
    assert STATE.most_in_flight == 3
    # and the pool metric saw them too: (in flight, capacity), back to idle afterwards
    assert (3, 3) in usage and all(u is not None and u[0] <= 3 for u in usage)
    assert c.pool_usage() == (0, 3)


async def test_get_by_key_path_and_missing_keys(conn: RESTConnector) -> None:
    found = await conn.lookup_many("surveys", "id", [7, 404, "../7", 7], ["id", "kind"])
    assert found == [[{"id": 7, "kind": "nps"}], [], [], [{"id": 7, "kind": "nps"}]]
    assert "/api/open/cursor/surveys/..%2F7" in STATE.paths()
    assert conn.requests == 3


async def test_undeclared_lookups_are_refused(conn: RESTConnector) -> None:
    with pytest.raises(UnsupportedOperation, match="lookups by 'score'"):
        await conn.lookup_many("surveys", "score", [1], ["id"])
    with pytest.raises(UnsupportedOperation, match="'casefold' lookups"):
        await conn.lookup_many("surveys", "email", ["a@b.c"], ["id"], transform="casefold")
    with pytest.raises(SchemaMismatch, match="not mapped"):
        await conn.lookup_many("surveys", "email", ["a@b.c"], ["shoe_size"])
    with pytest.raises(SchemaMismatch, match="not configured"):
        await conn.lookup_many("nope", "id", [1], ["id"])
    assert await conn.lookup_many("surveys", "email", [None, ""], ["id"]) == [[], []]
    assert conn.requests == 0


# --- scans ---------------------------------------------------------------------------------


@pytest.mark.parametrize("style", sorted(STYLES))
async def test_every_pagination_style_streams_everything_once(base_url: str, style: str) -> None:
    paging = {**STYLES[style], "page_size": 7}
    c = make(base_url, resources={"surveys": resource(f"/open/{style}", pagination=paging)})
    try:
        rows = await collect(c, ScanRequest("surveys", COLUMNS))
        assert rows == [expected(s) for s in SURVEYS]
        full = c.requests
        assert full == math.ceil(60 / 7)
        first = await collect(c, ScanRequest("surveys", ["id"], limit=10))
        assert first == [{"id": i} for i in range(1, 11)]
        assert c.requests - full == 2
    finally:
        await c.aclose()


async def test_plain_list_answers(base_url: str) -> None:
    spec = resource("/open/plain", records="", pagination={"style": "none"})
    c = make(base_url, resources={"surveys": spec})
    try:
        assert len(await collect(c, ScanRequest("surveys", ["id"]))) == 60
        assert c.requests == 1
    finally:
        await c.aclose()


async def test_a_small_limit_asks_for_a_small_page(conn: RESTConnector) -> None:
    assert await collect(conn, ScanRequest("surveys", ["id"], limit=3)) == [
        {"id": 1},
        {"id": 2},
        {"id": 3},
    ]
    assert STATE.queries() == ["limit=3"]
    assert await collect(conn, ScanRequest("surveys", ["id"], limit=0)) == []
    assert conn.requests == 1


async def test_a_stream_closed_early_fetches_no_more_pages(base_url: str) -> None:
    paging = {**STYLES["offset"], "page_size": 5}
    c = make(base_url, resources={"surveys": resource("/open/offset", pagination=paging)})
    stream = c.scan(ScanRequest("surveys", ["id"]))
    try:
        assert [await anext(stream) for _ in range(6)] == [{"id": i} for i in range(1, 7)]
    finally:
        await stream.aclose()
        await c.aclose()
    assert c.requests == 2


async def test_filters_and_sort_become_query_parameters(conn: RESTConnector) -> None:
    request = ScanRequest(
        "surveys",
        ["id", "kind", "created_at"],
        filters=[
            Filter("kind", "eq", "nps"),
            Filter("created_at", "ge", "2024-01-01T12:00:00+00:00"),
            Filter("created_at", "lt", "2024-01-02T06:00:00+00:00"),
        ],
        order_by=[Sort("created_at", descending=True), Sort("id")],
    )
    rows = await collect(conn, request)
    want = sorted(
        (
            s
            for s in SURVEYS
            if s["type"] == "nps"
            and "2024-01-01T12:00:00+00:00" <= s["created_at"] < "2024-01-02T06:00:00+00:00"
        ),
        key=lambda s: s["created_at"],
        reverse=True,
    )
    assert [r["id"] for r in rows] == [s["id"] for s in want] and want
    query = httpx.QueryParams(STATE.queries()[0])
    assert query["type"] == "nps" and query["sort"] == "-created_at,id"
    assert query["created_after"] == "2024-01-01T12:00:00+00:00"


async def test_undeclared_scans_are_refused(conn: RESTConnector) -> None:
    refused = [
        ScanRequest("surveys", ["id"], filters=[Filter("score", "gt", 3)]),
        ScanRequest("surveys", ["id"], filters=[Filter("kind", "ne", "nps")]),
        ScanRequest("surveys", ["id"], order_by=[Sort("score")]),
        ScanRequest("surveys", ["id"], order_by=[Sort("id")], after=[3]),
        ScanRequest("surveys", ["id"], order_by=[Sort("id"), Sort("created_at"), Sort("id")]),
    ]
    for request in refused:
        with pytest.raises(UnsupportedOperation):
            await collect(conn, request)
    assert conn.requests == 0


# --- authentication ------------------------------------------------------------------------

AUTH = {
    "bearer": {"type": "bearer", "token": rest_server.TOKEN},
    "basic": {"type": "basic", "username": rest_server.USER, "password": rest_server.PASSWORD},
    "keyh": {"type": "api_key", "header": "X-Api-Key", "value": rest_server.API_KEY},
    "keyq": {"type": "api_key", "query": "api_key", "value": rest_server.API_KEY},
    "oauth": {
        "type": "oauth2_client_credentials",
        "token_url": "/oauth/token",
        "client_id": rest_server.CLIENT_ID,
        "client_secret": rest_server.CLIENT_SECRET,
    },
}


@pytest.mark.parametrize("scheme", sorted(AUTH))
async def test_auth_schemes(base_url: str, scheme: str) -> None:
    paging = {**STYLES["link"], "page_size": 25}
    spec = resource(f"/{scheme}/link", pagination=paging)
    base = base_url if scheme == "oauth" else f"{base_url}/api"
    if scheme == "oauth":
        spec = resource(f"/api/{scheme}/link", pagination=paging)
    c = make(base_url, base_url=base, auth=AUTH[scheme], resources={"surveys": spec})
    try:
        assert len(await collect(c, ScanRequest("surveys", ["id"]))) == 60
        assert (await c.lookup_many("surveys", "id", [9], ["id"])) == [[{"id": 9}]]
    finally:
        await c.aclose()


@pytest.mark.parametrize("scheme", sorted(AUTH))
async def test_wrong_credentials_fail_without_leaking_them(base_url: str, scheme: str) -> None:
    wrong = {
        k: ("wr0ng-s3cret" if k in ("token", "password", "value", "client_secret") else v)
        for k, v in AUTH[scheme].items()
    }
    prefix = f"/api/{scheme}/cursor" if scheme == "oauth" else f"/{scheme}/cursor"
    base = base_url if scheme == "oauth" else f"{base_url}/api"
    c = make(base_url, base_url=base, auth=wrong, resources={"surveys": resource(prefix)})
    try:
        with pytest.raises(SourceUnavailable, match="HTTP 401") as caught:
            await collect(c, ScanRequest("surveys", ["id"]))
    finally:
        await c.aclose()
    assert "wr0ng" not in str(caught.value) and "Authorization" not in str(caught.value)
    if scheme == "oauth":
        assert "token request failed: HTTP 401 (invalid_client)" in str(caught.value)


async def test_oauth2_token_is_shared_cached_and_refreshed(base_url: str) -> None:
    STATE.token_lifetime = 0.6  # refreshed 0.3 s before expiry (half its life)
    spec = resource("/api/oauth/cursor")
    c = make(base_url, base_url=base_url, auth=AUTH["oauth"], resources={"surveys": spec})
    try:
        calls = [c.lookup_many("surveys", "id", [i], ["id"]) for i in range(1, 9)]
        assert await asyncio.gather(*calls) == [[[{"id": i}]] for i in range(1, 9)]
        assert c.token_requests == 1 and STATE.token_requests == 1
        await asyncio.sleep(0.35)
        assert await c.lookup_many("surveys", "id", [1], ["id"]) == [[{"id": 1}]]
        assert c.token_requests == 2
        STATE.tokens.clear()  # revoked on the server: a 401 fetches a fresh one
        assert await c.lookup_many("surveys", "id", [2], ["id"]) == [[{"id": 2}]]
        assert c.token_requests == 3
    finally:
        await c.aclose()


async def test_oauth2_client_credentials_in_the_body(base_url: str) -> None:
    auth = {**AUTH["oauth"], "client_auth": "body", "scope": "surveys:read"}
    c = make(
        base_url, base_url=base_url, auth=auth, resources={"surveys": resource("/api/oauth/cursor")}
    )
    try:
        assert await c.lookup_many("surveys", "id", [3], ["id"]) == [[{"id": 3}]]
    finally:
        await c.aclose()


# --- politeness and failures ---------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["1", "date"])
async def test_429_waits_as_retry_after_says(base_url: str, retry_after: str) -> None:
    STATE.limited_left = 1
    STATE.retry_after = "1" if retry_after == "1" else rest_server.retry_at(1.5)
    c = make(base_url, timeout=5, resources={"surveys": resource("/x/limited")})
    try:
        started = time.perf_counter()
        assert len(await collect(c, ScanRequest("surveys", ["id"]))) == 60
        assert time.perf_counter() - started >= 0.45
        assert c.requests == 2
    finally:
        await c.aclose()


async def test_429_longer_than_the_timeout_fails_at_once(base_url: str) -> None:
    STATE.limited_left, STATE.retry_after = 1, "120"
    c = make(base_url, timeout=1, resources={"surveys": resource("/x/limited")})
    try:
        started = time.perf_counter()
        with pytest.raises(SourceUnavailable, match=r"rate limited \(HTTP 429\)"):
            await collect(c, ScanRequest("surveys", ["id"]))
        assert time.perf_counter() - started < 0.5
    finally:
        await c.aclose()


async def test_5xx_is_retried_then_reported(base_url: str) -> None:
    STATE.flaky_left = 2
    c = make(base_url, retries=2, resources={"surveys": resource("/x/flaky")})
    try:
        assert len(await collect(c, ScanRequest("surveys", ["id"]))) == 60
        assert c.requests == 3
    finally:
        await c.aclose()
    STATE.flaky_left = 5
    c = make(base_url, retries=1, resources={"surveys": resource("/x/flaky")})
    try:
        with pytest.raises(
            SourceUnavailable,
            match="resource 'surveys': GET /api/x/flaky/surveys: HTTP 500 after 2 attempts",
        ):
            await c.lookup_many("surveys", "email", ["user1@example.com"], ["id"])
    finally:
        await c.aclose()


async def test_a_failing_api_is_retried_by_one_layer_and_its_circuit_opens_and_closes(
    base_url: str,
) -> None:
    """Behind the resilience wrapper: the REST client's own retries are the only
    ones (3 GETs, not 9), repeated failures open the circuit, a probe closes it."""
    STATE.flaky_left = 1000
    inner = make(base_url, retries=2, resources={"surveys": resource("/x/flaky")})
    policy = ResilienceOptions(retries=2, breaker_threshold=2, breaker_recovery=0.2)
    c = ResilientConnector(inner, policy)
    try:
        with pytest.raises(SourceUnavailable, match="HTTP 500 after 3 attempts"):
            await c.lookup_many("surveys", "email", ["user1@example.com"], ["id"])
        assert inner.requests == 3
        with pytest.raises(SourceUnavailable):
            await c.lookup_many("surveys", "email", ["user1@example.com"], ["id"])
        assert c.breaker_state == "opened"
        with pytest.raises(CircuitOpen):
            await c.lookup_many("surveys", "email", ["user1@example.com"], ["id"])
        assert inner.requests == 6, "the open circuit sent nothing"
        STATE.flaky_left = 0
        await asyncio.sleep(0.25)
        assert await c.lookup_many("surveys", "email", ["user1@example.com"], ["id"])
        assert c.breaker_state == "closed"
    finally:
        await c.aclose()


async def test_a_body_that_trickles_in_times_out(base_url: str) -> None:
    """Headers at once, then a piece every 0.2 s: the timeout bounds the whole
    answer, not each read, and a timeout is not retried."""
    STATE.slow_seconds = 0.2
    inner = make(base_url, timeout=0.5, retries=2, resources={"surveys": resource("/x/trickle")})
    c = ResilientConnector(inner, ResilienceOptions(retries=2))
    try:
        with pytest.raises(SourceTimeout, match=r"no answer within 0\.5 s"):
            await c.lookup_many("surveys", "email", ["user1@example.com"], ["id"])
        assert inner.requests == 1
    finally:
        await c.aclose()


async def test_a_slow_source_times_out(base_url: str) -> None:
    c = make(base_url, timeout=0.3, resources={"surveys": resource("/x/slow")})
    try:
        started = time.perf_counter()
        with pytest.raises(SourceTimeout, match=r"no answer within 0\.3 s") as caught:
            await c.lookup_many("surveys", "email", ["user1@example.com"], ["id"])
        assert time.perf_counter() - started < 0.8
        assert caught.value.source == "feedback"
    finally:
        await c.aclose()


async def test_the_request_deadline_cuts_the_timeout_short(base_url: str) -> None:
    c = make(base_url, timeout=30, resources={"surveys": resource("/x/slow")})
    try:
        with deadline_scope(0.3), pytest.raises(DeadlineExceeded) as caught:
            await c.lookup_many("surveys", "email", ["user1@example.com"], ["id"])
        assert caught.value.message == (
            "source 'feedback': no answer before the request's deadline (0.3 s)"
        )
        assert caught.value.code == "SOURCE_TIMEOUT"
    finally:
        await c.aclose()


async def test_an_unreachable_source_is_unavailable_without_secrets() -> None:
    port = rest_server.free_port()
    c = RESTConnector(
        "feedback",
        RESTOptions(
            base_url=f"http://127.0.0.1:{port}/api",
            retries=1,
            retry_initial_wait=0.01,
            auth={"type": "api_key", "query": "api_key", "value": "s3cret-key"},
            resources={"surveys": resource("/open/cursor")},
        ),
    )
    try:
        with pytest.raises(SourceUnavailable) as caught:
            await collect(c, ScanRequest("surveys", ["id"]))
        assert c.requests == 2
        health = await c.health(["surveys"])
    finally:
        await c.aclose()
    message = str(caught.value)
    assert message.startswith("source 'feedback': resource 'surveys': GET /api/open/cursor/surveys")
    assert "s3cret" not in message and "api_key" not in message and "127.0.0.1" not in message
    assert not health.ok and "s3cret" not in health.detail


async def test_a_credential_headers_value_never_reaches_an_error(base_url: str) -> None:
    # a value with a stray control character (a ``${TOKEN}`` read with its newline):
    # the HTTP library refuses it, quoting it as a repr
    c = make(base_url, retries=0, headers={"X-API-Key": "hdr-TOKEN-42\n"})
    try:
        with pytest.raises(SourceUnavailable) as caught:
            await collect(c, ScanRequest("surveys", ["id"]))
        health = await c.health(["surveys"])
    finally:
        await c.aclose()
    assert "Illegal header value" in str(caught.value)
    assert "hdr-TOKEN-42" not in str(caught.value) and "***" in str(caught.value)
    assert not health.ok and "hdr-TOKEN-42" not in health.detail


def test_only_credential_headers_are_secrets_and_short_values_hide_nothing() -> None:
    headers = {
        "Authorization": "Token abcd1234",
        "proxy-authorization": "Basic cHJveHk6cHc=",
        "Cookie": "sid=f00dcafe",
        "X-API-Key": "key-0042",
        "X-Auth-Token": "tok-0043",
        "X-Client-Secret": "sec-0044",
        "X-Session-Id": "ses-0045",
        "X-Password": "pw-00046",
        "Accept": "application/json",
        "X-Api-Version": "2",
        "User-Agent": "custview-tests",
    }
    options = RESTOptions.model_validate(
        {"base_url": "http://127.0.0.1:1/api", "headers": headers, "resources": {}}
    )
    secrets = options.secrets()
    assert sorted(secrets) == sorted(list(headers.values())[:8])
    # a short value (an API version "2", a one-letter password) would mangle every number
    short = [*secrets, "2", "pw"]
    text = "HTTP 502 after 2 retries, 12.5 s (application/json)"
    assert connectors.describe_error(RuntimeError(text), short) == f"RuntimeError: {text}"
    leak = "Token abcd1234 and key-0042"
    assert connectors.describe_error(RuntimeError(leak), short) == "RuntimeError: *** and ***"


async def test_answers_that_are_not_what_was_configured(base_url: str) -> None:
    cases = {
        "/x/notjson": (SourceUnavailable, "not JSON"),
        "/x/stuck": (SourceUnavailable, "pagination is stuck"),
    }
    for prefix, (error, message) in cases.items():
        c = make(base_url, resources={"surveys": resource(prefix)})
        try:
            with pytest.raises(error, match=message):
                await collect(c, ScanRequest("surveys", ["id"]))
        finally:
            await c.aclose()
    c = make(base_url, resources={"surveys": resource("/open/cursor", records="items")})
    try:
        with pytest.raises(SchemaMismatch, match="no record list at 'items'"):
            await collect(c, ScanRequest("surveys", ["id"]))
    finally:
        await c.aclose()


async def test_links_to_another_origin_are_not_followed(base_url: str) -> None:
    spec = resource("/x/offsite", pagination={"style": "link"})
    c = make(base_url, auth=AUTH["bearer"], resources={"surveys": spec})
    try:
        with pytest.raises(SourceUnavailable, match=r"another origin \(example.invalid\)"):
            await collect(c, ScanRequest("surveys", ["id"]))
    finally:
        await c.aclose()


async def test_nothing_but_get_leaves_the_connector(conn: RESTConnector) -> None:
    await conn.lookup_many("surveys", "id", [1], ["id"])
    before = len(STATE.requests)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(ReadOnlyViolation):
            await conn._http.client.request(method, conn._http.url("open/cursor/surveys/1"))
    assert len(STATE.requests) == before
    assert not any(hasattr(conn, name) for name in ("insert", "update", "delete", "write"))


# --- health --------------------------------------------------------------------------------


async def test_health_says_a_refused_credential_is_why_a_resource_is_missing(
    base_url: str,
) -> None:
    c = make(
        base_url,
        health_path="/health",
        auth={"type": "bearer", "token": "wr0ng-token"},
        resources={"surveys": resource("/bearer/page", pagination=STYLES["page"])},
    )
    try:
        health = await c.health(["surveys"])
    finally:
        await c.aclose()
    assert health.tables == {"surveys": False}
    assert health.detail == "missing resources: surveys (GET /api/bearer/page/surveys: HTTP 401)"
    assert "wr0ng" not in health.detail


async def test_health_reports_latency_and_resources(base_url: str) -> None:
    resources = {
        "surveys": resource("/open/page", pagination=STYLES["page"]),
        "gone": resource("/gone"),
    }
    c = make(base_url, health_path="/health", resources=resources)
    try:
        health = await c.health(["surveys", "gone", "unknown"])
    finally:
        await c.aclose()
    assert health.ok and health.latency_ms is not None and health.latency_ms > 0
    assert health.tables == {"surveys": True, "gone": False, "unknown": False}
    assert health.detail == (
        "missing resources: gone (GET /api/gone/surveys: HTTP 404), unknown (not configured)"
    )
    assert "per_page=1" in STATE.queries()[1]
