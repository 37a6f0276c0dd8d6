"""Two `custview serve` replicas, one Redis cache, one PostgreSQL source and
one PostgreSQL identity registry: what one replica read, the other answers
from the cache, with the same ids."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from resolvers.records import RecordRef
from tests.connectors.sql_fixtures import create_people_database
from tests.support.configs import people_config
from tests.support.engines import fresh_database
from tests.support.processes import BOUND, ServeProcess

QUERY = """{ byRef: customer(ref: "crm/people/3") { id name email }
  byEmail: customer(email: "USER10@example.com") { id name email }
  byRef2: customer(ref: "crm/people/50") { id name email } }"""


@pytest.fixture(scope="module")
def people_url(postgres_db_url: str) -> str:
    asyncio.run(create_people_database(postgres_db_url))
    return postgres_db_url


@pytest.fixture()
async def namespace(redis_url: str) -> AsyncIterator[str]:
    """A cache namespace of this test's own, removed afterwards."""
    name = f"cv-scale-{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _ask(client: httpx.AsyncClient, replica: ServeProcess) -> dict[str, Any]:
    response = await client.post(f"{replica.url}/graphql", json={"query": QUERY})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def test_a_replica_answers_from_what_another_one_cached(
    people_url: str, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    config = tmp_path / "replicas.yaml"
    config.write_text(
        people_config(
            {"crm": people_url},
            head=(
                f'cache: {{backend: redis, url: "{redis_url}", namespace: {namespace}}}\n'
                f'registry: {{url: "{people_url}"}}\n'  # one identity registry for both
            ),
            source_extra="    cache: {ttl: 300}\n",
        )
    )
    a = await ServeProcess.start(config)  # creates the registry's tables
    b = await ServeProcess.start(config)
    try:
        assert a.url != b.url
        async with httpx.AsyncClient(timeout=BOUND) as client:
            first = await _ask(client, a)
            second = await _ask(client, b)
    finally:
        await asyncio.gather(a.stop(), b.stop())

    assert second["data"] == first["data"], "the same customers, ids included"
    person_1 = RecordRef.parse("crm/people/1").customer_id()
    assert first["data"]["byRef2"]["id"] == person_1, "person 50 is person 1's duplicate"
    live = first["extensions"]["custview"]["freshness"]["crm"]
    cached = second["extensions"]["custview"]["freshness"]["crm"]
    assert live["live"] > 0 and live["cached"] == 0, "replica A read the source"
    assert cached["live"] == 0, "replica B did not"
    assert cached["cached"] == live["live"], "every entry A stored, B found"


LINK = """mutation { linkRecords(a: "crm/people/3", b: "crm/people/7") { decision { id } } }"""
SEVEN = """{ customer(ref: "crm/people/7") { id sourceRecords { ref } } }"""


@pytest.fixture()
def registry_url(postgres_url: str) -> Iterator[str]:
    """custview's own registry database, shared by the replicas."""
    with fresh_database(postgres_url) as url:
        yield url


async def test_replicas_share_the_identity_registry_on_postgresql(
    people_url: str, registry_url: str, tmp_path: Path
) -> None:
    """A steward decision taken on one replica holds on the other (same ids)."""

    config = tmp_path / "replicas.yaml"
    config.write_text(
        people_config(
            {"crm": people_url},
            head=f'registry: {{url: "{registry_url}", refresh_seconds: 0}}\n',
        )
    )
    a, b = await asyncio.gather(ServeProcess.start(config), ServeProcess.start(config))
    try:
        async with httpx.AsyncClient(timeout=BOUND) as client:
            before = (await client.post(f"{b.url}/graphql", json={"query": SEVEN})).json()
            assert {r["ref"] for r in before["data"]["customer"]["sourceRecords"]} == {
                "crm/people/7"
            }
            linked = (await client.post(f"{a.url}/graphql", json={"query": LINK})).json()
            assert "errors" not in linked, linked
            on_a = (await client.post(f"{a.url}/graphql", json={"query": SEVEN})).json()
            on_b = (await client.post(f"{b.url}/graphql", json={"query": SEVEN})).json()
    finally:
        await asyncio.gather(a.stop(), b.stop())
    assert on_b["data"] == on_a["data"], "the same customer, id included, on both replicas"
    refs = {r["ref"] for r in on_b["data"]["customer"]["sourceRecords"]}
    assert {"crm/people/3", "crm/people/7"} <= refs
