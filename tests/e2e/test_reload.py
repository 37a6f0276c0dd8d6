"""SIGHUP reloads the configuration of a running `custview serve`; a config
that does not validate is logged with its location and changes nothing."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx

from tests.connectors.sql_fixtures import create_people_database
from tests.support.configs import people_config
from tests.support.processes import ServeProcess, until

SOURCES = "{ sources { name } }"


async def _sources(client: httpx.AsyncClient) -> list[str]:
    response = await client.post("/graphql", json={"query": SOURCES})
    assert response.status_code == 200, response.text
    return sorted(s["name"] for s in response.json()["data"]["sources"])


async def _requests_counted(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(
        r'custview_http_requests_total\{method="POST",route="/graphql",status="200"\} (\S+)', text
    )
    assert found, text
    return float(found.group(1))


async def test_sighup_reloads_a_valid_config_and_keeps_serving_through_a_broken_one(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'people.db'}"
    await create_people_database(url)
    config = tmp_path / "custview.yaml"
    config.write_text(people_config({"crm": url}))
    gateway = await ServeProcess.start(config)
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            assert await _sources(client) == ["crm"]

            config.write_text(people_config({"crm": url}).replace("timeout: 5", "timeout: soon"))
            gateway.process.send_signal(signal.SIGHUP)

            async def refused() -> bool:
                return any("configuration not reloaded" in line for line in gateway.log)

            await until(refused, "the broken config is reported")
            line = next(line for line in gateway.log if "configuration not reloaded" in line)
            assert f"{config}:" in line and "sources.crm.options.timeout" in line, line
            assert await _sources(client) == ["crm"], "the previous config keeps serving"
            before = await _requests_counted(client)

            config.write_text(people_config({"crm": url, "sales": url}))
            gateway.process.send_signal(signal.SIGHUP)

            async def reloaded() -> bool:
                return await _sources(client) == ["crm", "sales"]

            await until(reloaded, "the new config serves")
            assert any("configuration reloaded from" in line for line in gateway.log)
            assert await _requests_counted(client) > before, "metrics carry on"
            assert gateway.process.returncode is None
    finally:
        await gateway.stop()
    assert gateway.process.returncode == 0
