"""`custview demo --sql-port`: the README's psql commands work against the demo, and a
port clash stops it with one clear line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from gateway.settings import DEMO_CONFIG
from tests.connectors.rest_server import free_port
from tests.support.processes import BOUND, ROOT, ServeProcess, until
from tests.support.processes import run_custview as _custview


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


def test_demo_with_a_sql_port_in_use_exits_with_one_clear_line(
    demo_dir: Path, tmp_path: Path
) -> None:
    port, feedback = free_port(), free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sql = taken.getsockname()[1]
        result = _custview(
            "demo", "--data-dir", str(demo_dir), "--port", str(port),
            "--feedback-port", str(feedback), "--sql-port", str(sql), tmp_path=tmp_path,
        )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "psql" not in result.stderr, "no banner"
    (line,) = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert f"the SQL endpoint cannot listen on 127.0.0.1:{sql}" in line
    assert "in use" in line and "--sql-port" in line


def test_serve_with_the_sql_endpoint_on_a_port_in_use_exits_with_one_clear_line(
    demo_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "sql.yaml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sql = taken.getsockname()[1]
        config.write_text(DEMO_CONFIG.read_text() + f"\nsql: {{enabled: true, port: {sql}}}\n")
        result = _custview(
            "serve", "--config", str(config), "--port", str(free_port()),
            tmp_path=tmp_path, CUSTVIEW_DEMO_DIR=str(demo_dir),
        )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"error: the SQL endpoint cannot listen on 127.0.0.1:{sql}" in result.stderr
    assert "sql.port" in result.stderr


def test_demo_refuses_a_sql_port_shared_with_another_port(demo_dir: Path, tmp_path: Path) -> None:
    port, feedback = free_port(), free_port()
    for sql, other in ((port, "--port"), (feedback, "--feedback-port")):
        result = _custview(
            "demo", "--data-dir", str(demo_dir), "--port", str(port),
            "--feedback-port", str(feedback), "--sql-port", str(sql), tmp_path=tmp_path,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "psql" not in result.stderr
        assert f"--sql-port {sql} is also {other}" in result.stderr


def test_the_port_check_binds_an_ipv6_address_as_the_endpoint_does() -> None:
    """asyncio's start_server binds IPv6 only on "::": an IPv4 listener on the same
    port is no clash; an IPv6 clash names the address in brackets."""
    from types import SimpleNamespace

    from gateway.listeners import unreserve
    from gateway.serving import _hold_sql_port

    def loaded(host: str, port: int) -> Any:
        sql = SimpleNamespace(enabled=True, host=host, port=port)
        return SimpleNamespace(settings=SimpleNamespace(sql=sql))

    with socket.socket() as ipv4:
        ipv4.bind(("127.0.0.1", 0))
        ipv4.listen()
        held = _hold_sql_port(loaded("::", ipv4.getsockname()[1]), "choose another")
        assert held is not None
        unreserve(held)
    with socket.socket(socket.AF_INET6) as ipv6:
        ipv6.bind(("::1", 0))
        ipv6.listen()
        port = ipv6.getsockname()[1]
        with pytest.raises(SystemExit, match=rf"cannot listen on \[::1\]:{port}: "):
            _hold_sql_port(loaded("::1", port), "choose another")


async def _count(port: int) -> int:
    dsn = f"host=127.0.0.1 port={port} user=bi dbname=custview password=demo-key"
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cursor = await conn.execute("SELECT count(*) FROM customers")
        ((count,),) = await cursor.fetchall()
        return int(count)


async def test_a_second_custview_on_the_same_sql_port_is_refused_and_a_restart_binds_at_once(
    demo_env: None, tmp_path: Path
) -> None:
    """Two custview processes on one ``sql.port`` would split the connections between
    them without a word (``SO_REUSEPORT``): the second stops with one line naming the
    key. A reload keeps the port; a restart still binds at once, with the old one's
    connections in TIME_WAIT."""
    sql = free_port()
    config = tmp_path / "sql.yaml"
    config.write_text(DEMO_CONFIG.read_text() + f"\nsql: {{enabled: true, port: {sql}}}\n")
    first = await ServeProcess.start(config)
    try:
        expected = await _count(sql)
        first.process.send_signal(signal.SIGHUP)  # a reload listens on the same port

        async def reloaded() -> bool:
            return any("configuration reloaded" in line for line in first.log)

        await until(reloaded, "the first custview reloaded its config")
        assert await _count(sql) == expected
        dsn = f"host=127.0.0.1 port={sql} user=bi dbname=custview password=demo-key"
        held = await psycopg.AsyncConnection.connect(dsn)  # closed by the server's stop
        second = await asyncio.to_thread(
            _custview, "serve", "--config", str(config), "--port", str(free_port()),
            tmp_path=tmp_path, CUSTVIEW_DEMO_DIR=os.environ["CUSTVIEW_DEMO_DIR"],
        )  # fmt: skip
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        (line,) = second.stderr.strip().splitlines()
        assert line == (
            f"error: the SQL endpoint cannot listen on 127.0.0.1:{sql}: address already in use "
            "(another custview or another program listens there); stop what uses that port "
            f"or choose another with `sql.port` in {config}"
        )
        assert await _count(sql) == expected, "the first one still answers every connection"
    finally:
        await first.stop()
    await held.close()
    restarted = await ServeProcess.start(config)
    try:
        assert await _count(sql) == expected
    finally:
        await restarted.stop()
