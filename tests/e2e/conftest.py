"""Fixtures for the whole demo path: generated sources, settings, a live app."""

from __future__ import annotations

import asyncio
import csv
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.app import create_app
from gateway.demodata.feedback_service import DEMO_TOKEN, create_feedback_app
from gateway.demodata.generate import generate
from gateway.serving import DEMO_HEADERS
from gateway.settings import DEMO_CONFIG, LoadedSettings, load_settings
from gateway.sql import SqlSettings
from tests.e2e.sql_endpoint import Endpoint, serve_sql
from tests.support.servers import serve_in_thread

DEMO_CUSTOMERS = 1500
DEMO_SEED = 7


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "data"
    generate(out, DEMO_CUSTOMERS, DEMO_SEED)
    return out


@pytest.fixture(scope="session")
def ground_truth(demo_dir: Path) -> dict[str, str]:
    """Record reference (source/table/id) -> real entity id."""
    with (demo_dir / "ground_truth.csv").open(newline="") as fh:
        return {
            f"{row['source']}/{row['table']}/{row['record_id']}": row["entity_id"]
            for row in csv.DictReader(fh)
        }


@pytest.fixture(scope="session")
def entities(ground_truth: dict[str, str]) -> dict[str, set[str]]:
    """Real entity id -> its record references."""
    grouped: dict[str, set[str]] = defaultdict(set)
    for ref, entity in ground_truth.items():
        grouped[entity].add(ref)
    return dict(grouped)


@pytest.fixture(scope="session")
def feedback_url(demo_dir: Path) -> Iterator[str]:
    """The demo feedback service over real HTTP on loopback, as `custview demo` runs it."""
    with serve_in_thread(create_feedback_app(demo_dir, DEMO_TOKEN)) as url:
        yield f"{url}/api"


@pytest.fixture()
def demo_env(demo_dir: Path, feedback_url: str, tmp_path: Path) -> Iterator[None]:
    wanted = {
        "CUSTVIEW_DEMO_DIR": str(demo_dir),
        "CUSTVIEW_FEEDBACK_URL": feedback_url,
        "CUSTVIEW_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
    }
    old = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    yield
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session", params=["sqlite", "mixed"])
def engine_layout(request: pytest.FixtureRequest) -> str:
    """``sqlite``: the embedded demo; ``mixed``: crm on PostgreSQL, support on
    MariaDB, sales on SQLite, loaded from the same generated data."""
    return str(request.param)


@pytest.fixture(scope="session")
def mixed_config(
    demo_dir: Path, postgres_url: str, mariadb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The demo config with crm in a fresh PostgreSQL database and support in a fresh
    MariaDB one (dropped at the end), so concurrent test runs never share a database."""
    from gateway.demodata.schema import METADATA
    from tests.support.engines import copy_sqlite_database, fresh_database

    with (
        fresh_database(postgres_url, prefix="custview_e2e") as crm_url,
        fresh_database(mariadb_url, prefix="custview_e2e") as support_url,
    ):

        async def load() -> None:
            await copy_sqlite_database(demo_dir / "crm.db", crm_url, METADATA["crm"])
            await copy_sqlite_database(demo_dir / "support.db", support_url, METADATA["support"])

        asyncio.run(load())
        text = DEMO_CONFIG.read_text()
        for system, url in (("crm", crm_url), ("support", support_url)):
            text = text.replace(
                f'"sqlite+aiosqlite:///${{CUSTVIEW_DEMO_DIR:-demo-data}}/{system}.db"', f'"{url}"'
            )
        path = tmp_path_factory.mktemp("mixed") / "mixed.yaml"
        path.write_text(text)
        yield path


@pytest.fixture()
def demo_settings(
    demo_env: None, engine_layout: str, request: pytest.FixtureRequest
) -> LoadedSettings:
    if engine_layout == "sqlite":
        return load_settings(DEMO_CONFIG)
    return load_settings(request.getfixturevalue("mixed_config"))


async def serve_in_process(
    loaded: LoadedSettings, *, fast_path: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway for ``loaded``, in this process, with the demo's key;
    ``client.app`` is the app."""
    app = create_app(loaded, fast_path=fast_path)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://custview", headers=DEMO_HEADERS
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture()
async def client(demo_settings: LoadedSettings) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve_in_process(demo_settings):
        yield c


async def gql(client: httpx.AsyncClient, query: str, **variables: object) -> dict[str, object]:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def walk(
    client: httpx.AsyncClient,
    query: str,
    headers: dict[str, str] | None = None,
    **variables: object,
) -> list[dict[str, Any]]:
    """Every node of a ``customers(first:, after: $after)`` query, page by page."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        response = await client.post(
            "/graphql", json={"query": query, "variables": {**variables, "after": after}},
            headers=headers,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        page = body["data"]["customers"]
        found.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def endpoint(
    demo_dir: Path, feedback_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Endpoint]:
    """The demo app serving its SQL endpoint (no TLS) on a free port, per test module."""
    audit = tmp_path_factory.mktemp("sql") / "audit.jsonl"
    async with serve_sql(demo_dir, feedback_url, audit, SqlSettings(enabled=True, port=0)) as e:
        yield e


def leaky_demo_config(tmp_path: Path, tail: str = "") -> Path:
    """The demo config plus a PostgreSQL source whose password (never read) and a
    feedback header come from ``${WAREHOUSE_PASSWORD}`` and ``${FEEDBACK_TENANT_KEY}``,
    then ``tail``: for tests that secrets stay out of errors and logs."""
    text = DEMO_CONFIG.read_text()
    warehouse = (
        "sources:\n  warehouse:\n    connector: sql\n    options:\n"
        '      url: "postgresql+asyncpg://reader:${WAREHOUSE_PASSWORD}@127.0.0.1:1/dw"\n'
    )
    text = text.replace("sources:\n", warehouse, 1)
    header = '      headers: {X-Tenant-Key: "${FEEDBACK_TENANT_KEY}"}\n      health_path: /health\n'
    text = text.replace("      health_path: /health\n", header, 1)
    config = tmp_path / "leaky.yaml"
    config.write_text(text + tail)
    return config
