"""The reloading app: new requests go to the new gateway at once, a request
in flight finishes on the old one, which is closed only after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.reload import ReloadingApp
from gateway.settings import LoadedSettings, load_settings
from tests.support.configs import people_config


class Generations:
    """Makes numbered stand-in gateways and records which are open."""

    def __init__(self) -> None:
        self.made = 0
        self.open: set[int] = set()
        self.started: dict[int, asyncio.Event] = {1: asyncio.Event(), 2: asyncio.Event()}
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    def __call__(self, loaded: LoadedSettings) -> Starlette:
        self.made += 1
        number = self.made

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self.open.add(number)
            self.started[number].set()
            yield
            self.open.discard(number)

        async def answer(request: Request) -> PlainTextResponse:
            if request.query_params.get("slow"):
                self.entered.set()
                await self.release.wait()
            return PlainTextResponse(str(number))

        return Starlette(routes=[Route("/", answer)], lifespan=lifespan)


@asynccontextmanager
async def running(app: ReloadingApp) -> AsyncIterator[None]:
    """``app`` between its lifespan's startup and shutdown, as a server runs it."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan


async def test_a_request_in_flight_finishes_on_the_old_gateway(tmp_path: Path) -> None:
    config = tmp_path / "custview.yaml"
    config.write_text(people_config({"crm": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"}))
    made = Generations()
    app = ReloadingApp(load_settings(config), made)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://custview")
    async with running(app), client:
        slow = asyncio.create_task(client.get("/", params={"slow": "1"}))
        await made.entered.wait()
        reload = asyncio.create_task(app.reload())
        await made.started[2].wait()  # the swap follows at once, before reload() awaits again
        assert (await client.get("/")).text == "2", "new requests go to the new gateway"
        assert made.open == {1, 2}, "the old gateway stays open for its request"
        made.release.set()
        assert (await slow).text == "1"
        assert await reload is True
        assert made.open == {2}
    assert made.open == set()


async def test_a_reload_moving_the_sql_endpoint_to_another_host_says_it_needs_a_restart(
    tmp_path: Path, caplog: Any
) -> None:
    from gateway.app import create_app
    from tests.connectors.rest_server import free_port

    config = tmp_path / "custview.yaml"
    base = people_config({"crm": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"})
    port = free_port()
    config.write_text(base + f"\nsql: {{enabled: true, host: 127.0.0.1, port: {port}}}\n")
    app = ReloadingApp(load_settings(config), create_app)
    async with running(app):
        config.write_text(base + f"\nsql: {{enabled: true, host: 0.0.0.0, port: {port}}}\n")
        assert await app.reload() is False  # the running endpoint holds 127.0.0.1:port
        (line,) = [r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage()]
        assert (
            f"sql.host/sql.port changed (127.0.0.1:{port} -> 0.0.0.0:{port})" in line
            and "takes effect after a restart" in line
        ), line


SECRET = "reload-cause-5ecret"


def _failing(on: int) -> Any:
    """A gateway factory whose ``on``-th app fails to start with an error raised from
    another, both quoting a secret."""
    made = 0

    def factory(loaded: LoadedSettings) -> Starlette:
        nonlocal made
        made += 1
        fails = made == on

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            if fails:
                try:
                    raise KeyError(f"pool for {SECRET} is gone")
                except KeyError as exc:
                    raise RuntimeError(f"the gateway could not open {SECRET}") from exc
            yield

        return Starlette(routes=[], lifespan=lifespan)

    return factory


def _log_of(logger_name: str) -> tuple[Any, Any]:
    import io
    import logging

    from gateway.logs import LoggingSettings, log_handler

    stream = io.StringIO()
    handler = log_handler(LoggingSettings(format="text"), stream)
    logging.getLogger(logger_name).addHandler(handler)
    return stream, handler


async def test_a_reload_that_fails_logs_the_errors_cause_redacted(tmp_path: Path) -> None:
    import logging

    from gateway.unexpected import hide

    hide([SECRET])
    config = tmp_path / "custview.yaml"
    config.write_text(people_config({"crm": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"}))
    app = ReloadingApp(load_settings(config), _failing(on=2))
    stream, handler = _log_of("custview.reload")
    try:
        async with running(app):
            assert await app.reload() is False
    finally:
        logging.getLogger("custview.reload").removeHandler(handler)
    text = stream.getvalue()
    assert "configuration not reloaded" in text
    assert "RuntimeError: the gateway could not open ***" in text
    assert "KeyError: 'pool for *** is gone'" in text, text
    assert "The above exception was the direct cause of the following exception" in text
    assert SECRET not in text


async def test_a_gateway_that_cannot_start_logs_the_errors_cause_redacted(tmp_path: Path) -> None:
    import logging

    from gateway.unexpected import hide

    hide([SECRET])
    config = tmp_path / "custview.yaml"
    config.write_text(people_config({"crm": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"}))
    app = ReloadingApp(load_settings(config), _failing(on=1))
    stream, handler = _log_of("custview.reload")
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await inbox.put({"type": "lifespan.startup"})
    try:
        with pytest.raises(RuntimeError, match="could not open"):
            await app({"type": "lifespan"}, inbox.get, send)
    finally:
        logging.getLogger("custview.reload").removeHandler(handler)
    (failed,) = sent
    assert failed["type"] == "lifespan.startup.failed"
    assert SECRET not in failed["message"]  # uvicorn logs it as it is
    text = stream.getvalue()
    assert "KeyError: 'pool for *** is gone'" in text, text
    assert "RuntimeError: the gateway could not open ***" in text
    assert SECRET not in text
