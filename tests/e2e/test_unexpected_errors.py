"""An error custview did not expect (a bug in custview or a connector plugin) whose
text quotes the configured secrets: the CLI and the server log say what it was and
where it was raised, never the secrets (:mod:`gateway.unexpected`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.demodata.feedback_service import DEMO_TOKEN
from gateway.serving import DEMO_HEADERS
from tests.e2e.conftest import leaky_demo_config
from tests.support.processes import ROOT, ServeProcess

PASSWORD = "pg-pass-5ecret"
TENANT_KEY = "tenant-key-5ecret"
LEAKS = (PASSWORD, TENANT_KEY, DEMO_TOKEN)
URL = f"postgresql+asyncpg://reader:{PASSWORD}@127.0.0.1:1/dw"
MESSAGE = f"{URL} refused {PASSWORD!r}; token {DEMO_TOKEN}, X-Tenant-Key: {TENANT_KEY}"
REDACTED = "ValueError: *** refused '***'; token ***, X-Tenant-Key: ***"
LEAKY_CLI = str(ROOT / "tests" / "support" / "leaky_cli.py")
ENV = {"WAREHOUSE_PASSWORD": PASSWORD, "FEEDBACK_TENANT_KEY": TENANT_KEY, "LEAK_MESSAGE": MESSAGE}


@pytest.fixture()
def leaky_config(demo_env: None, tmp_path: Path) -> Path:
    """The demo plus a PostgreSQL source with a password (never read) and a header on
    the feedback source, both from the environment."""
    return leaky_demo_config(tmp_path)


def _logging(config: Path, log_format: str) -> Path:
    """``config`` logging in ``log_format`` at info."""
    logged = config.with_name(f"leaky-{log_format}.yaml")
    logged.write_text(config.read_text() + f"\nlogging: {{format: {log_format}, level: info}}\n")
    return logged


def _secret_free(text: str) -> None:
    for secret in LEAKS:
        assert secret not in text, text
    assert REDACTED in text, text
    assert "in leaking_" in text, "where it was raised"


def test_the_cli_ends_an_unexpected_error_with_its_traceback_without_secrets(
    leaky_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "customers.csv"
    result = subprocess.run(
        [sys.executable, LEAKY_CLI, "export", "-c", str(leaky_config), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **ENV},
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: unexpected {REDACTED}\n"), result.stderr
    assert "a bug in custview or a connector plugin: please report it" in result.stderr
    assert "Traceback (most recent call last):" in result.stderr
    _secret_free(result.stderr)
    assert not any(secret in result.stdout for secret in LEAKS)


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_server_log_shows_unexpected_errors_without_secrets(
    leaky_config: Path, log_format: str
) -> None:
    config = _logging(leaky_config, log_format)
    server = await ServeProcess.start(config, (LEAKY_CLI,), **ENV)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, headers=DEMO_HEADERS) as c:
            with contextlib.suppress(httpx.HTTPError):  # the error cuts the stream short
                export = await c.get("/export/customers.csv", headers={"Connection": "close"})
                assert export.status_code == 500
            graphql = await c.post("/graphql", json={"query": "{ sources { name } }"})
    finally:
        await server.stop()
    log = "".join(server.log)
    assert graphql.json()["errors"][0]["message"] == "Internal error (logged on the server)."
    assert "Exception in ASGI application" in log  # the export's error, by uvicorn
    assert log.count(REDACTED) >= 2, log  # and the query's, by strawberry
    _secret_free(log)
