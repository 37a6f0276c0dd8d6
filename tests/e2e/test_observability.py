"""/metrics and /readyz tell an operator what each source is doing."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from prometheus_client import generate_latest
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import Receive, Scope, Send

from gateway.metrics import GatewayMetrics
from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import gql, serve_in_process


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} with {labels} in /metrics")


async def test_metrics_count_requests_and_source_calls(client: httpx.AsyncClient) -> None:
    await gql(client, "{ customers(first: 3) { nodes { id tickets { id } } } }")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _sample(text, "custview_http_requests_total", route="/graphql", status="200") >= 1
    assert (
        _sample(
            text,
            "custview_source_call_seconds_count",
            source="support",
            operation="lookup",
            outcome="ok",
        )
        >= 1
    )
    assert _sample(text, "custview_source_circuit_state", source="crm") == 0
    assert _sample(text, "custview_source_pool_connections_max", source="crm") >= 1
    assert _sample(text, "custview_source_pool_connections_in_use", source="crm") == 0


async def test_metrics_count_operations_by_name_and_errors_by_code(
    client: httpx.AsyncClient,
) -> None:
    async def scrape() -> str:
        return (await client.get("/metrics")).text

    def count(text: str, name: str, **labels: str) -> float:
        try:
            return _sample(text, name, **labels)
        except AssertionError:
            return 0.0

    before = await scrape()
    for _ in range(2):
        await gql(client, "query FindThree { customers(first: 3) { nodes { id } } }")
    await gql(client, "{ customers(first: 1) { nodes { id } } }")
    await gql(client, "query Broken { customers(first: 1) { nodes { noSuchField } } }")
    await gql(client, "query Bad! { nope")
    after = await scrape()
    seconds = "custview_graphql_operation_seconds_count"
    for labels, added in (
        ({"operation": "FindThree", "type": "query"}, 2),
        ({"operation": "anonymous", "type": "query"}, 1),
        ({"operation": "Broken", "type": "query"}, 1),
        ({"operation": "anonymous", "type": "unknown"}, 1),
    ):
        assert count(after, seconds, **labels) - count(before, seconds, **labels) == added, labels
    errors, code = "custview_graphql_errors_total", "GRAPHQL_ERROR"
    assert count(after, errors, code=code) - count(before, errors, code=code) == 2


async def test_a_dead_source_shows_in_metrics_and_readiness(
    demo_dir: Path, tmp_path: Path, demo_env: None
) -> None:
    config = tmp_path / "dead.yaml"
    config.write_text(
        DEMO_CONFIG.read_text().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"',
            '"postgresql+asyncpg://postgres@127.0.0.1:1/support"',
        )
    )
    async for client in serve_in_process(load_settings(config)):
        for _ in range(3):
            body = await gql(client, "{ customers(first: 2) { nodes { id } } }")
            assert body["data"]["customers"]["nodes"]  # type: ignore[index]
        skipped = await gql(client, "{ customers(first: 2) { nodes { id tickets { id } } } }")
        errors = skipped["errors"]  # type: ignore[index]
        assert {(e["extensions"]["code"], e["extensions"]["source"]) for e in errors} == {
            ("CIRCUIT_OPEN", "support")
        }, "the open circuit answers for the source, at once"
        assert skipped["data"]["customers"]["nodes"]  # type: ignore[index]
        assert skipped["extensions"]["custview"]["incomplete"] is True  # type: ignore[index]
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        support = ready.json()["sources"]["support"]
        assert support["status"] == "down"
        assert support["circuit"] == "opened", "repeated failures open the circuit"
        text = (await client.get("/metrics")).text
        assert _sample(text, "custview_source_circuit_state", source="support") == 2
        assert _sample(text, "custview_graphql_errors_total", code="CIRCUIT_OPEN") >= 1
        outcomes = set(re.findall(r'operation="lookup",outcome="(\w+)",source="support"', text))
        assert {"SOURCE_UNAVAILABLE", "CIRCUIT_OPEN"} <= outcomes
        body = await gql(client, "{ sources { name status circuit } }")
        shown = {s["name"]: s for s in body["data"]["sources"]}  # type: ignore[index]
        assert shown["support"] == {"name": "support", "status": "DOWN", "circuit": "opened"}
        assert shown["crm"] == {"name": "crm", "status": "UP", "circuit": "closed"}


async def test_a_request_that_fails_before_its_response_counts_as_a_500() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("the app failed before it answered")

    metrics = GatewayMetrics()
    # as in the app: starlette's error middleware outermost, answering 500
    app = ServerErrorMiddleware(metrics.middleware(broken))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://custview") as client:
        response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 500
    text = generate_latest(metrics.registry).decode()
    assert _sample(text, "custview_http_requests_total", route="/graphql", status="500") == 1
    assert _sample(text, "custview_http_request_seconds_count", route="/graphql") == 1
