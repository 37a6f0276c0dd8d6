"""Running the gateway under uvicorn, alone or next to the demo's feedback
service (one event loop, two loopback servers)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from gateway import listeners
from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.metrics import GatewayMetrics
from gateway.reload import ReloadingApp
from gateway.settings import LoadedSettings

DEMO_KEY = "demo-key"
"""The demo's documented API key (config/demo.yaml stores only its hash)."""
DEMO_HEADERS = {"X-API-Key": DEMO_KEY}


class _Server(uvicorn.Server):
    """uvicorn's server on sockets bound before it starts (:func:`_bound`), saying
    where it listens once it accepts, as it says when it binds them itself (it says
    nothing of sockets it is given: a multi-worker parent said it before), every
    address it listens on named."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if sockets:
            scheme = "https" if self.config.ssl else "http"
            where = " and ".join(f"{scheme}://{_shown(sock)}" for sock in sockets)
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on %s (Press CTRL+C to quit)", where
            )


def _shown(sock: socket.socket) -> str:
    """``host:port`` of a listening socket, an IPv6 host in brackets."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _server(
    app: ASGIApp, host: str, port: int, shutdown_timeout: float | None = None
) -> uvicorn.Server:
    """A uvicorn server logging through custview's handler (:func:`configure_logging`);
    the gateway writes its own access lines, with request ids."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=None,
        access_log=False,
        timeout_graceful_shutdown=None if shutdown_timeout is None else round(shutdown_timeout),
    )
    return _Server(config)


def _cannot_listen(what: str, host: str, port: int, exc: OSError, hint: str) -> SystemExit:
    """The one line a server that cannot bind its port exits with."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        reason = "address already in use (another custview or another program listens there)"
    shown = f"[{host}]" if ":" in host else host
    return SystemExit(
        f"error: {what} cannot listen on {shown}:{port}: {reason}; "
        f"stop what uses that port or {hint}"
    )


def _hold_sql_port(loaded: LoadedSettings, hint: str) -> listeners.Address | None:
    """Binds the SQL endpoint's port and holds it (:func:`gateway.listeners.reserve`)
    before uvicorn starts, or exits with one clear line when it is taken: the
    endpoint starts on the held sockets in the app's lifespan, where a failure
    would come out as uvicorn's traceback after the sources opened. Held, not
    probed: a second custview started at the same instant finds it taken here.
    Binds as the endpoint does (address reuse, no port reuse, so another custview
    on that port is a clash, not a silent second listener)."""
    sql = loaded.settings.sql
    if not sql.enabled or sql.port == 0:
        return None
    try:
        return listeners.reserve(sql.host, sql.port)
    except OSError as exc:
        raise _cannot_listen("the SQL endpoint", sql.host, sql.port, exc, hint) from None


@contextlib.contextmanager
def _bound(what: str, host: str, port: int, hint: str) -> Iterator[list[socket.socket]]:
    """The listening sockets of an HTTP server, bound before it starts (and closed
    after it stopped), or one clear line to exit with when the port is taken.
    uvicorn would bind only after the app's start-up had opened every source and
    the SQL endpoint, then log the error and exit."""
    try:
        sockets = listeners.bind(host, port)
    except OSError as exc:
        raise _cannot_listen(what, host, port, exc, hint) from None
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def _sql_port_held(loaded: LoadedSettings, hint: str) -> Iterator[None]:
    """:func:`_hold_sql_port` while the server runs; let go of after it stopped, if
    no endpoint took the port over (one that did closes it as it stops)."""
    held = _hold_sql_port(loaded, hint)
    try:
        yield
    finally:
        if held is not None:
            listeners.unreserve(held)


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(loaded: LoadedSettings, host: str, port: int) -> None:
    """Serve the gateway until SIGTERM or Ctrl+C.

    On SIGTERM uvicorn stops accepting connections, lets the requests in
    flight finish (at most ``server.shutdown_timeout`` seconds, then cancels
    them), runs the lifespan's shutdown (which closes every source's pool and
    client) and re-raises the signal; custview takes that as a clean stop and
    exits ``0``, so a process manager sees a successful shutdown.

    On SIGHUP it reloads the config file (:mod:`gateway.reload`).
    """
    http_hint = f"choose another with --port or `server.port` in {loaded.path}"
    with (
        _bound("the gateway", host, port, http_hint) as sockets,
        _sql_port_held(loaded, f"choose another with `sql.port` in {loaded.path}"),
    ):
        configure_logging(loaded.settings.logging)
        metrics = GatewayMetrics()
        server = _server(
            ReloadingApp(loaded, lambda settings: create_app(settings, metrics=metrics)),
            host,
            port,
            shutdown_timeout=loaded.settings.server.shutdown_timeout,
        )
        previous = signal.signal(signal.SIGTERM, _stopped)
        try:
            server.run(sockets)
        finally:
            signal.signal(signal.SIGTERM, previous)


def serve_demo(
    loaded: LoadedSettings,
    host: str,
    port: int,
    data_dir: Path,
    feedback_port: int,
    ready: Callable[[], None] = lambda: None,
) -> None:
    """Serve the gateway and, on loopback, the feedback service it reads over HTTP;
    ``ready`` runs (in a thread) once the feedback service answers."""
    from gateway.demodata.feedback_service import create_feedback_app

    with (
        _bound("the gateway", host, port, "choose another with --port") as sockets,
        _bound(
            "the feedback service",
            "127.0.0.1",
            feedback_port,
            "choose another with --feedback-port",
        ) as feedback_sockets,
        _sql_port_held(loaded, "choose another with --sql-port"),
    ):
        configure_logging(loaded.settings.logging)
        feedback = _server(create_feedback_app(data_dir), "127.0.0.1", feedback_port)
        gateway = _server(
            create_app(loaded, DEMO_HEADERS),
            host,
            port,
            shutdown_timeout=loaded.settings.server.shutdown_timeout,
        )

        async def both() -> None:
            task = asyncio.create_task(feedback.serve(feedback_sockets))
            while not feedback.started:
                if task.done():
                    task.result()
                    raise SystemExit(f"the feedback service could not start on {feedback_port}")
                await asyncio.sleep(0.05)
            await asyncio.to_thread(ready)
            try:
                await gateway.serve(sockets)
            finally:
                feedback.should_exit = True
                await task

        asyncio.run(both())
