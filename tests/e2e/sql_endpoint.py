"""The demo app with its SQL endpoint on a free port, for the SQL endpoint's tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from gateway.app import create_app
from gateway.settings import DEMO_CONFIG, load_settings
from gateway.sql import SqlSettings


@dataclass
class Endpoint:
    port: int
    http: httpx.AsyncClient
    audit: Path

    def dsn(self, key: str = "demo-key") -> str:
        return f"host=127.0.0.1 port={self.port} user=bi password={key} dbname=custview"

    async def sql(self, query: str, params: Any = None, key: str = "demo-key") -> list[Any]:
        async with await psycopg.AsyncConnection.connect(self.dsn(key), autocommit=True) as conn:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()


@contextlib.asynccontextmanager
async def serve_sql(
    demo_dir: Path, feedback_url: str, audit: Path, sql: SqlSettings
) -> AsyncIterator[Endpoint]:
    """The demo app with its SQL endpoint on a free port, for the time of the block."""
    wanted = {
        "CUSTVIEW_DEMO_DIR": str(demo_dir),
        "CUSTVIEW_FEEDBACK_URL": feedback_url,
        "CUSTVIEW_AUDIT_LOG": str(audit),
    }
    old = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        loaded = load_settings(DEMO_CONFIG)
        loaded.settings = loaded.settings.model_copy(update={"sql": sql})
        app = create_app(loaded)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://custview") as http:
                yield Endpoint(app.state.sql_server.port, http, audit)
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
