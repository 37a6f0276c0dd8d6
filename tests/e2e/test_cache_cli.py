"""`custview cache clear` in one process invalidates what another replica cached
in the shared Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app as cli_app
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.records import RecordRef
from tests.connectors.test_cache import sent_keys


async def test_cache_clear_reaches_every_replica(
    demo_dir: Path, tmp_path: Path, redis_url: str, demo_env: None
) -> None:
    namespace = f"custview-test-{uuid.uuid4().hex[:12]}"
    config = tmp_path / "cached.yaml"
    config.write_text(
        DEMO_CONFIG.read_text()
        .replace(
            "server:\n",
            f"cache: {{backend: redis, url: '{redis_url}', namespace: {namespace}}}\n\nserver:\n",
        )
        .replace(
            "    description: Commerce (customers, orders, order lines, refunds)\n",
            "    description: Commerce (customers, orders, order lines, refunds)\n"
            "    cache: {ttl: 300}\n",
        )
    )
    connectors = load_settings(config).create_connectors()
    sales = connectors["sales"]
    try:

        async def lookup() -> int:
            before = sales.statements  # type: ignore[attr-defined]
            rows = await sales.lookup_many("customers", "id", [1, 2, 3], ["id", "email"])
            assert [r[0]["id"] for r in rows] == [1, 2, 3]
            return int(sales.statements) - before  # type: ignore[attr-defined]

        assert await lookup() == 1
        assert await lookup() == 0, "cached"
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gateway", "cache", "clear", "--config", str(config),
             "--source", "sales"],
            capture_output=True, text=True, env=dict(os.environ), timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "cleared the cache of sales" in result.stdout
        assert await lookup() == 1, "the other process's clear reached this replica"
        customer = RecordRef.parse("sales/customers/2").customer_id()
        result = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["cache", "clear", "--config", str(config),
                                          "--customer", customer],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"cleared what the cache holds about customer {customer}" in result.output
        seen = sent_keys(sales)  # type: ignore[arg-type]
        assert await lookup() == 1
        assert seen == [[2]], "only the customer's record is read again"
    finally:
        for connector in connectors.values():
            await connector.aclose()
