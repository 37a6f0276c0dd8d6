"""Reloading the configuration of a running ``custview serve`` on SIGHUP.

The server calls a :class:`ReloadingApp`, which forwards each request to the
current gateway app. On SIGHUP it re-reads and validates the file and builds
a complete new app from it (schema, policy, auth, limits, sources, cache,
registry), starts it (its lifespan opens the sources), and only then routes
new requests to it; the old app finishes the requests it holds and is shut
down (its pools closed). A file that does not validate, or an app that does
not start, is logged with its location and changes nothing: the old
configuration keeps serving.

What a reload cannot change is logged as needing a restart: the listening
``server.host``/``server.port`` and ``server.shutdown_timeout`` (uvicorn's).
A new SQL endpoint address (``sql.host``, ``sql.port``) binds anew while the old
endpoint still holds its own: a new port free of it is taken at once, the same
port on another host (``127.0.0.1`` -> ``0.0.0.0``) is refused with the whole
reload, whose log line says that this change needs a restart.
A reload starts afresh what belongs to an app: in-memory cache entries,
circuit-breaker states. The ``/metrics`` counters carry on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from connectors import CustviewError
from gateway.logs import configure_logging
from gateway.settings import LoadedSettings, load_settings
from gateway.unexpected import describe

log = logging.getLogger("custview.reload")
AppFactory = Callable[[LoadedSettings], Starlette]
_RESTART_ONLY = ("host", "port", "shutdown_timeout")


class _Running:
    """One started app and the requests it is serving."""

    def __init__(self, app: Starlette, loaded: LoadedSettings, stack: AsyncExitStack) -> None:
        self.app = app
        self.loaded = loaded
        self.stack = stack
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()


class ReloadingApp:
    """An ASGI app that serves the current gateway app and swaps it on SIGHUP."""

    def __init__(self, loaded: LoadedSettings, factory: AppFactory) -> None:
        self.factory = factory
        self._first = loaded
        self._current: _Running | None = None
        self._lock = asyncio.Lock()
        self._reloading: set[asyncio.Task[bool]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        running = self._current
        assert running is not None, "the server sends lifespan.startup first"
        running.in_flight += 1
        running.idle.clear()
        try:
            await running.app(scope, receive, send)
        finally:
            running.in_flight -= 1
            if running.in_flight == 0:
                running.idle.set()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            self._current = await self._start(self._first)
        except Exception as exc:
            _log_failure("the gateway could not start", exc)
            # said above, with its cause: uvicorn would log only the message's text
            await send({"type": "lifespan.startup.failed", "message": ""})
            raise
        except BaseException as exc:
            await send({"type": "lifespan.startup.failed", "message": describe(exc)})
            raise
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        loop.remove_signal_handler(signal.SIGHUP)
        async with self._lock:
            if self._current is not None:
                await self._current.stack.aclose()
        await send({"type": "lifespan.shutdown.complete"})

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloading.add(task)
        task.add_done_callback(self._reloading.discard)

    async def _start(self, loaded: LoadedSettings) -> _Running:
        app = self.factory(loaded)
        stack = AsyncExitStack()
        context: AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)
        await stack.enter_async_context(context)
        return _Running(app, loaded, stack)

    async def reload(self) -> bool:
        """Re-read the config file; ``True`` when the new one is serving."""
        async with self._lock:
            old = self._current
            assert old is not None
            path = old.loaded.path
            loaded: LoadedSettings | None = None
            try:
                loaded = await asyncio.to_thread(load_settings, path)
                new = await self._start(loaded)
            except Exception as exc:
                moved = _sql_moved(old.loaded, loaded) if isinstance(exc, OSError) else ""
                _log_failure(
                    "configuration not reloaded, the previous one keeps serving",
                    exc,
                    f"{path}: " if not isinstance(exc, CustviewError) else "",
                    moved,
                )
                return False
            if loaded.settings.logging != old.loaded.settings.logging:
                configure_logging(loaded.settings.logging)
            _warn_restart_only(old.loaded, loaded, path)
            self._current = new
            log.info("configuration reloaded from %s (%d sources)", path, len(loaded.connectors))
        await old.idle.wait()
        await old.stack.aclose()
        return True


def _log_failure(what: str, exc: Exception, where: str = "", why: str = "") -> None:
    """One error line saying ``what`` failed and why. custview's own error is its
    message (located, no traceback) unless it was raised from another; any other
    error, or one with a cause, is its redacted first line and traceback, every
    error of its chain included (:func:`gateway.unexpected.redacted_traceback`
    through the log handler): the cause is what says why."""
    if isinstance(exc, CustviewError) and exc.__cause__ is None:
        log.error("%s: %s%s%s", what, where, exc, why)
    else:
        log.error("%s: %s%s%s", what, where, describe(exc), why, exc_info=exc)


def _sql_moved(old: LoadedSettings, new: LoadedSettings | None) -> str:
    """Why a reload that moves the SQL endpoint may fail to bind, or nothing."""
    if new is None or not (old.settings.sql.enabled and new.settings.sql.enabled):
        return ""
    before, after = old.settings.sql, new.settings.sql
    if (before.host, before.port) == (after.host, after.port):
        return ""
    return (
        f"; sql.host/sql.port changed ({before.host}:{before.port} -> {after.host}:"
        f"{after.port}) while the running SQL endpoint holds its address: "
        "this change takes effect after a restart"
    )


def _warn_restart_only(old: LoadedSettings, new: LoadedSettings, path: Path) -> None:
    for key in _RESTART_ONLY:
        before, after = getattr(old.settings.server, key), getattr(new.settings.server, key)
        if before != after:
            log.warning(
                "%s: server.%s changed (%s -> %s); it takes effect after a restart",
                path,
                key,
                before,
                after,
            )
