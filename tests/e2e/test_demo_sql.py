"""`custview demo --sql-port`: the README's psql commands work against the demo."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import psycopg

from tests.connectors.rest_server import free_port
from tests.support.processes import BOUND, ROOT


async def test_demo_with_sql_port_answers_psql_style_queries_with_the_demo_keys(
    demo_dir: Path, tmp_path: Path
) -> None:
    port, feedback, sql = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTVIEW_")}
    env.update(PYTHONUNBUFFERED="1", CUSTVIEW_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "demo", "--data-dir", str(demo_dir),
        "--port", str(port), "--feedback-port", str(feedback), "--sql-port", str(sql),
        cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    log = ""
    try:
        async with asyncio.timeout(BOUND):
            while f"Uvicorn running on http://127.0.0.1:{port}" not in log:
                line = await process.stderr.readline()
                assert line, f"custview demo stopped:\n{log}"
                log += line.decode(errors="replace")
        assert f"PGPASSWORD=demo-key psql -h 127.0.0.1 -p {sql} -U bi custview" in log
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        dsn = f"host=127.0.0.1 port={sql} user=bi dbname=custview password="
        async with await psycopg.AsyncConnection.connect(dsn + "demo-key") as conn:
            cursor = await conn.execute(
                "SELECT id, email FROM customers WHERE email IS NOT NULL LIMIT 1"
            )
            ((customer, email),) = await cursor.fetchall()
        async with await psycopg.AsyncConnection.connect(dsn + "support-key") as conn:
            cursor = await conn.execute("SELECT email FROM customers WHERE id = %s", (customer,))
            ((masked,),) = await cursor.fetchall()
        assert "@" in email and masked != email, "support-key sees masked emails"
    finally:
        process.terminate()
        async with asyncio.timeout(BOUND):
            await process.communicate()
