"""One deadline per GraphQL request: a slow source (PostgreSQL behind a
latency proxy) is cut when the request's budget runs out, and the answer is
partial instead of late."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from gateway.demodata.schema import METADATA
from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import gql, serve_in_process
from tests.e2e.test_partial_results import _three_system_email
from tests.support.engines import copy_sqlite_database
from tests.support.proxy import FaultProxy

QUERY = """query($email: String) { customer(email: $email) {
    id sourceRecords { source } tickets { id } orders { id } } }"""
SUPPORT = '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"\n      timeout: 5'


@pytest.fixture(scope="module")
def support_on_postgres(demo_dir: Path, postgres_db_url: str) -> str:
    asyncio.run(copy_sqlite_database(demo_dir / "support.db", postgres_db_url, METADATA["support"]))
    return postgres_db_url


@pytest.fixture()
async def proxy(support_on_postgres: str) -> AsyncIterator[FaultProxy]:
    target = make_url(support_on_postgres)
    running = await FaultProxy(target.host or "127.0.0.1", target.port or 5432).start()
    yield running
    await running.stop()


async def _gateway(
    tmp_path: Path, support_url: str, proxy: FaultProxy, deadline: float, source_timeout: float
) -> AsyncIterator[httpx.AsyncClient]:
    """The demo with support read from PostgreSQL through ``proxy``."""
    through = make_url(support_url).set(host="127.0.0.1", port=proxy.port)
    text = DEMO_CONFIG.read_text()
    assert SUPPORT in text
    url = through.render_as_string(hide_password=False)
    text = text.replace(SUPPORT, f'"{url}"\n      timeout: {source_timeout}')
    text = text.replace("  port: 8000\n", f"  port: 8000\n  request_deadline: {deadline}\n")
    config = tmp_path / "deadline.yaml"
    config.write_text(text)
    loaded = load_settings(config)
    assert loaded.settings.server.request_deadline == deadline
    async for client in serve_in_process(loaded):
        yield client


async def test_the_request_deadline_bounds_a_source_slower_than_its_timeout(
    demo_dir: Path, support_on_postgres: str, proxy: FaultProxy, tmp_path: Path, demo_env: None
) -> None:
    """Support may take 30 s a call, the request 2 s: support is cut at the
    deadline, and what was not asked by then is reported missing, not waited for."""
    email = _three_system_email(demo_dir)
    async for client in _gateway(tmp_path, support_on_postgres, proxy, 2.0, source_timeout=30):
        complete = await gql(client, QUERY, email=email)
        assert "errors" not in complete, complete

        proxy.mode, proxy.delay = "slow", 5.0
        body = await gql(client, QUERY, email=email)
        customer = body["data"]["customer"]  # type: ignore[index]
        assert customer["id"] == complete["data"]["customer"]["id"]  # type: ignore[index]
        assert customer["tickets"] is None
        errors = {e["extensions"]["source"]: e for e in body["errors"]}  # type: ignore[attr-defined]
        assert errors["support"]["extensions"]["code"] == "SOURCE_TIMEOUT"
        assert errors["support"]["message"] == (
            "source 'support': no answer before the request's deadline (2 s)"
        )
        for source, error in errors.items():
            assert error["extensions"]["code"] == "SOURCE_TIMEOUT"
            if source != "support":
                assert "not asked" in error["message"], "healthy sources are not blamed"
        assert body["extensions"]["custview"]["incomplete"] is True  # type: ignore[index]

        proxy.mode = "pass"
        proxy.cut()
        again = await gql(client, QUERY, email=email)
        assert again["data"] == complete["data"], "each request has a budget of its own"
        assert "errors" not in again


async def test_a_source_timeout_below_the_deadline_leaves_time_for_the_others(
    demo_dir: Path, support_on_postgres: str, proxy: FaultProxy, tmp_path: Path, demo_env: None
) -> None:
    """The recommended setup: each source's timeout well below the deadline."""
    email = _three_system_email(demo_dir)
    async for client in _gateway(tmp_path, support_on_postgres, proxy, 30, source_timeout=0.3):
        proxy.mode, proxy.delay = "slow", 5.0
        body = await gql(client, QUERY, email=email)
        customer = body["data"]["customer"]  # type: ignore[index]
        assert {r["source"] for r in customer["sourceRecords"]} == {"crm", "sales"}
        assert customer["orders"], "the other sources answer in full"
        assert customer["tickets"] is None
        (error,) = body["errors"]  # type: ignore[misc]
        assert error["extensions"] == {"code": "SOURCE_TIMEOUT", "source": "support"}
        assert body["extensions"]["custview"] == {  # type: ignore[index]
            "incomplete": True,
            "failedSources": {"support": "SOURCE_TIMEOUT"},
        }
        proxy.mode = "pass"
        proxy.cut()
