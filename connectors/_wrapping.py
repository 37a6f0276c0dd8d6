"""The base of connectors that wrap another one (resilience, cache).

A wrapper is a connector itself, so every caller gets its policy; what it
does not override passes straight to the wrapped connector, counters and
engine handles included.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from connectors._base import (
    Aggregate,
    Capabilities,
    Connector,
    Filter,
    Health,
    LookupTransform,
    Row,
    ScanRequest,
    WriteAccess,
)


async def relay(stream: AsyncIterator[Row]) -> AsyncGenerator[Row, None]:
    """Pass a connector's stream through, closing it however the consumer stops,
    so a wrapper that stops early releases the source's connection at once."""
    try:
        async for row in stream:
            yield row
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


class ConnectorWrapper(Connector):
    """Delegates every operation to ``inner``; subclasses override what they guard."""

    def __init__(self, inner: Connector) -> None:
        super().__init__(inner.name, inner.options)
        self.inner = inner

    @property
    def source_kind(self) -> str:
        return self.inner.source_kind

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def capabilities_for(self, table: str) -> Capabilities:
        return self.inner.capabilities_for(table)

    def __getattr__(self, name: str) -> Any:
        # counters, breaker state and engine handles of the wrapped connector
        return getattr(self.inner, name)

    async def lookup_many(
        self,
        table: str,
        column: str,
        keys: Sequence[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[list[Row]]:
        return await self.inner.lookup_many(table, column, keys, columns, transform)

    def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        return relay(self.inner.scan(request))

    async def aggregate(
        self,
        table: str,
        group_by: Sequence[str],
        aggregates: Sequence[Aggregate],
        filters: Sequence[Filter] = (),
    ) -> list[Row]:
        return await self.inner.aggregate(table, group_by, aggregates, filters)

    async def health(self, tables: Sequence[str] = ()) -> Health:
        return await self.inner.health(tables)

    async def write_access(self, tables: Sequence[str]) -> WriteAccess:
        return await self.inner.write_access(tables)

    async def aclose(self) -> None:
        await self.inner.aclose()
