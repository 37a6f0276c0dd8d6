"""One request, one id: in every log line, in the response, and at the sources."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.sql import SQLConnector
from gateway.demodata.feedback_service import DEMO_TOKEN, create_feedback_app
from gateway.logs import OWN_LOGGERS, LoggingSettings, LogLevel, configure_logging
from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import serve_in_process
from tests.support.servers import serve_in_thread

QUERY = """{ customers(first: 3) { nodes { id name
  tickets { id } orders { id } surveys { id } } } }"""


class _Headers:
    """Records the X-Request-ID of every request the wrapped app serves."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            found = headers.get(b"x-request-id")
            self.seen.append(found.decode() if found else None)
        await self.app(scope, receive, send)


@pytest.fixture()
def feedback(demo_dir: Path, demo_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Headers]:
    recorder = _Headers(create_feedback_app(demo_dir, DEMO_TOKEN))
    with serve_in_thread(recorder) as url:
        monkeypatch.setenv("CUSTVIEW_FEEDBACK_URL", f"{url}/api")
        yield recorder


@contextmanager
def captured(level: LogLevel) -> Iterator[io.StringIO]:
    """JSON log lines at ``level``, as `custview serve` writes them."""
    stream = io.StringIO()
    handler = configure_logging(LoggingSettings(format="json", level=level), stream)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.fixture()
def log_lines() -> Iterator[io.StringIO]:
    with captured("debug") as stream:
        yield stream


@contextmanager
def sent_by_sources(app: Starlette) -> Iterator[list[str]]:
    """The statements ``app``'s SQL sources send, heard on their own engines: a
    listener on the ``Engine`` class heard every engine of the process, those of
    an app another test left running too."""
    engines = []
    for connector in app.state.federation.connectors.values():
        while hasattr(connector, "inner"):  # the resilience and cache wrappers
            connector = connector.inner
        if isinstance(connector, SQLConnector):
            engines.append(connector.engine.sync_engine)
    assert len(engines) == 3, "crm, support and sales"
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    for engine in engines:
        event.listen(engine, "after_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "after_cursor_execute", record)


async def test_one_request_one_id_in_logs_response_and_sources(
    feedback: _Headers, log_lines: io.StringIO
) -> None:
    tagged = load_settings(DEMO_CONFIG)
    for source in ("crm", "support", "sales"):  # off by default on SQLite: no server log
        tagged.connectors[source] = (
            tagged.connectors[source][0],
            tagged.connectors[source][1].model_copy(update={"request_id_comment": True}),
        )
    async for client in serve_in_process(tagged):
        log_lines.truncate(0)
        log_lines.seek(0)
        feedback.seen.clear()
        with sent_by_sources(client.app) as statements:  # type: ignore[attr-defined]
            response = await client.post(
                "/graphql", json={"query": QUERY}, headers={"X-Request-ID": "order-7.check_1"}
            )
        assert response.status_code == 200
        body = response.json()
        assert "errors" not in body
        assert response.headers["x-request-id"] == "order-7.check_1"
        assert body["extensions"]["requestId"] == "order-7.check_1"
        lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
        assert {line["logger"] for line in lines} >= {"custview.access", "custview.source"}
        assert {line["request_id"] for line in lines} == {"order-7.check_1"}
        sources = {line["source"] for line in lines if line["logger"] == "custview.source"}
        assert sources >= {"crm", "support", "sales", "feedback"}
        # the REST source got it as a header, the SQL sources as a comment
        assert feedback.seen and set(feedback.seen) == {"order-7.check_1"}
        assert statements
        assert all(s.endswith("/* request_id=order-7.check_1 */") for s in statements)


async def test_an_unusable_caller_id_is_replaced(feedback: _Headers) -> None:
    async for client in serve_in_process(load_settings(DEMO_CONFIG)):
        seen = set()
        for given in (None, "x */ DROP TABLE t; --", "a" * 65):
            headers = {"X-Request-ID": given} if given else {}
            response = await client.post(
                "/graphql", json={"query": "{ sources { name } }"}, headers=headers
            )
            request_id = response.headers["x-request-id"]
            assert request_id != given and len(request_id) == 32
            assert response.json()["extensions"]["requestId"] == request_id
            seen.add(request_id)
        assert len(seen) == 3
        health = await client.get("/healthz")
        assert len(health.headers["x-request-id"]) == 32


async def test_probes_are_quiet_at_info(demo_env: None) -> None:
    with captured("info") as stream:
        async for client in serve_in_process(load_settings(DEMO_CONFIG)):
            await client.get("/healthz")
            await client.get("/metrics")
            await client.post("/graphql", json={"query": "{ sources { name } }"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    paths = [line["path"] for line in lines if line["logger"] == "custview.access"]
    assert paths == ["/graphql"]
