"""Graceful shutdown of a real `custview serve` process: SIGTERM lets the
request in flight finish, closes the source pools and exits 0."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.connectors.sql_fixtures import create_people_database
from tests.support.configs import people_config
from tests.support.processes import BOUND, ServeProcess, custview_sessions, until
from tests.support.proxy import FaultProxy

QUERY = '{ customer(ref: "crm/people/3") { id name email } }'
POSTGRES_TERMINATE = b"X\x00\x00\x00\x04"
"""The message a PostgreSQL client sends when it closes a connection on purpose."""


@pytest.fixture(scope="module")
def people_url(postgres_db_url: str) -> str:
    asyncio.run(create_people_database(postgres_db_url))
    return postgres_db_url


@pytest.fixture()
async def proxy(people_url: str) -> AsyncIterator[FaultProxy]:
    target = make_url(people_url)
    running = await FaultProxy(target.host or "127.0.0.1", target.port or 5432).start()
    yield running
    await running.stop()


async def _serve(
    people_url: str, proxy: FaultProxy, tmp_path: Path, server: str, source_timeout: int = 5
) -> ServeProcess:
    """``custview serve`` over the people database, read through ``proxy``."""
    through = make_url(people_url).set(host="127.0.0.1", port=proxy.port)
    config = tmp_path / "serve.yaml"
    text = people_config({"crm": through.render_as_string(hide_password=False)}, head=server)
    config.write_text(text.replace("timeout: 5}", f"timeout: {source_timeout}}}"))
    return await ServeProcess.start(config)


async def _slow_request(
    client: httpx.AsyncClient, proxy: FaultProxy, delay: float
) -> asyncio.Task[httpx.Response]:
    """A request the source answers ``delay`` seconds late, once it reached the source."""
    proxy.mode, proxy.delay = "slow", delay
    request = asyncio.create_task(client.post("/graphql", json={"query": QUERY}))

    async def reached_the_source() -> bool:
        return proxy.delayed > 0

    await until(reached_the_source, "the request reaches the database")
    return request


async def _no_sessions_left(people_url: str) -> None:
    async def none() -> bool:
        return await custview_sessions(people_url) == 0

    await until(none, "the server forgets the sessions")


async def test_sigterm_finishes_the_request_in_flight_closes_pools_and_exits_0(
    people_url: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    gateway = await _serve(people_url, proxy, tmp_path, "server: {shutdown_timeout: 30}\n")
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=BOUND) as client:
            warm = await client.post("/graphql", json={"query": QUERY})
            assert warm.status_code == 200 and "errors" not in warm.json(), warm.text
            assert await custview_sessions(people_url) >= 1

            in_flight = await _slow_request(client, proxy, 0.2)
            gateway.process.send_signal(signal.SIGTERM)

            answer = await in_flight
            assert answer.status_code == 200
            assert answer.json()["data"] == warm.json()["data"], "the request in flight finished"

        async with asyncio.timeout(BOUND):
            code = await gateway.process.wait()
        assert code == 0, "".join(gateway.log)
        log = "".join(gateway.log)
        assert "Waiting for connections to close" in log or "Shutting down" in log
        assert "Application shutdown complete" in log, log

        async def proxy_drained() -> bool:
            return proxy.in_flight == 0

        await until(proxy_drained, "every pooled connection ends")
        assert proxy.endings, "the gateway had opened connections"
        assert all(e.endswith(POSTGRES_TERMINATE) for e in proxy.endings), (
            "every connection was closed by its pool (Terminate), none dropped by process exit"
        )
        await _no_sessions_left(people_url)
    finally:
        await gateway.stop()


async def test_sigterm_exits_within_the_shutdown_timeout_when_a_request_hangs(
    people_url: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The source would answer in 10 minutes, the request may wait that long: SIGTERM
    still ends the process after ``shutdown_timeout``, cleanly, and frees the sessions."""
    server = "server: {shutdown_timeout: 1, request_deadline: 900}\n"
    gateway = await _serve(people_url, proxy, tmp_path, server, source_timeout=900)
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=BOUND) as client:
            warm = await client.post("/graphql", json={"query": QUERY})
            assert warm.status_code == 200 and "errors" not in warm.json(), warm.text
            hanging = await _slow_request(client, proxy, 600)
            gateway.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(BOUND):
                code = await gateway.process.wait()
            (cut,) = await asyncio.gather(hanging, return_exceptions=True)
        assert isinstance(cut, httpx.HTTPError) or cut.status_code >= 500, (
            f"the hanging request was cut (a 5xx, or the connection closed), not answered: {cut}"
        )
        assert code == 0, "".join(gateway.log)
        assert "Application shutdown complete" in "".join(gateway.log)
        proxy.cut()
        await _no_sessions_left(people_url)
    finally:
        await gateway.stop()
