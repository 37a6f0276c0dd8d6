"""A connector whose lookups wait at a gate per key: a source call held in flight
(or answered at once, its gate opened first) for tests of what waits on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from connectors import (
    Capabilities,
    Connector,
    ConnectorOptions,
    Health,
    LookupTransform,
    Row,
    ScanRequest,
)


class Gated(Connector):
    """Each lookup enters, is noted, and holds its place until its key's gate opens."""

    def __init__(self) -> None:
        super().__init__("gated", ConnectorOptions(timeout=5))
        self.entered: list[int] = []
        self.gates: dict[int, asyncio.Event] = {}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def lookup_many(
        self,
        table: str,
        column: str,
        keys: Sequence[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[list[Row]]:
        self.entered.append(keys[0])
        await self.gate(keys[0]).wait()
        return [[{"id": keys[0]}]]

    def gate(self, key: int) -> asyncio.Event:
        return self.gates.setdefault(key, asyncio.Event())

    async def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        raise NotImplementedError
        yield {}

    async def health(self, tables: Sequence[str] = ()) -> Health:
        return Health(ok=True)

    async def aclose(self) -> None:
        pass
