"""A real source whose calls wait until the test lets them go: a batch the request's
loaders sent stays in flight while the test cancels one of the fields waiting for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from connectors import Connector
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.view import Federation


class HeldConnector:
    """``inner``, whose calls of the methods ``held`` wait until :attr:`released` is
    set; each held call's arguments are kept in :attr:`calls`."""

    def __init__(self, inner: Connector, held: tuple[str, ...]) -> None:
        self.inner = inner
        self.name = inner.name
        self.held = held
        self.calls: list[tuple[Any, ...]] = []
        self.waiting = asyncio.Event()
        """Set by the first held call (since :meth:`hold`)."""
        self.released = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name not in self.held:
            return method

        async def held(*args: Any) -> Any:
            self.calls.append(args)
            self.waiting.set()
            await self.released.wait()
            return await method(*args)

        return held

    def hold(self) -> None:
        """Calls wait again, none counted (after reads made with :attr:`released` set)."""
        self.released.clear()
        self.waiting.clear()
        self.calls.clear()


@asynccontextmanager
async def held_source(source: str, *held: str) -> AsyncIterator[tuple[Federation, HeldConnector]]:
    """The demo's federation with ``source``'s calls of the methods ``held`` held
    (released at first: reads made before :meth:`HeldConnector.hold` go through)."""
    loaded = load_settings(DEMO_CONFIG)
    connectors = loaded.create_connectors()
    connector = HeldConnector(connectors[source], held)
    connector.released.set()
    federation = Federation(loaded.settings.model, {**connectors, source: connector})  # type: ignore[dict-item]
    try:
        yield federation, connector
    finally:
        await federation.aclose()
