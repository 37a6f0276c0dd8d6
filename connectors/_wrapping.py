"""The base of connectors that wrap another one (resilience, cache, observation).

A wrapper is a connector itself, so every caller gets its policy; what it
does not override passes straight to the wrapped connector, counters and
engine handles included. The request/response operations reach a
wrapper as one value (:class:`Lookup`, :class:`ColumnsLookup` or
:class:`AggregateCall`) in
:meth:`ConnectorWrapper.around`, so a wrapper guards or records both in one
place and the contract's signatures are written once, here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from connectors._base import (
    Aggregate,
    Capabilities,
    Connector,
    Filter,
    Health,
    KeyLookup,
    LookupTransform,
    Row,
    ScanRequest,
    WriteAccess,
)

T = TypeVar("T")
W = TypeVar("W", bound="ConnectorWrapper")


class Call(Generic[T]):
    """One request/response call of the connector contract, to run on any connector."""

    operation: ClassVar[str]
    """Its name in metrics and logs: ``lookup`` or ``aggregate``."""
    method: ClassVar[str]
    """The contract method it calls: ``lookup_many`` or ``aggregate``."""
    table: str

    def run(self, connector: Connector) -> Awaitable[T]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Lookup(Call[list[list[Row]]]):
    """:meth:`Connector.lookup_many`'s arguments."""

    operation: ClassVar[str] = "lookup"
    method: ClassVar[str] = "lookup_many"
    table: str
    column: str
    keys: Sequence[Any]
    columns: Sequence[str]
    transform: LookupTransform = "exact"

    def run(self, connector: Connector) -> Awaitable[list[list[Row]]]:
        return connector.lookup_many(
            self.table, self.column, self.keys, self.columns, self.transform
        )


@dataclass(frozen=True, slots=True)
class ColumnsLookup(Call[list[list[list[Row]]]]):
    """:meth:`Connector.lookup_many_columns`'s arguments."""

    operation: ClassVar[str] = "lookup"
    method: ClassVar[str] = "lookup_many"
    table: str
    lookups: Sequence[KeyLookup]
    columns: Sequence[str]

    def run(self, connector: Connector) -> Awaitable[list[list[list[Row]]]]:
        return connector.lookup_many_columns(self.table, self.lookups, self.columns)


@dataclass(frozen=True, slots=True)
class AggregateCall(Call[list[Row]]):
    """:meth:`Connector.aggregate`'s arguments."""

    operation: ClassVar[str] = "aggregate"
    method: ClassVar[str] = "aggregate"
    table: str
    group_by: Sequence[str]
    aggregates: Sequence[Aggregate]
    filters: Sequence[Filter] = ()

    def run(self, connector: Connector) -> Awaitable[list[Row]]:
        return connector.aggregate(self.table, self.group_by, self.aggregates, self.filters)


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
    """Delegates every operation to ``inner``; subclasses override what they guard:
    :meth:`around` for lookups and aggregates, :meth:`scan` for streams."""

    def __init__(self, inner: Connector) -> None:
        super().__init__(inner.name, inner.options)
        self.inner = inner
        kind = type(inner)
        self._inner_around = (
            inner.around
            if isinstance(inner, ConnectorWrapper)
            and kind.lookup_many is ConnectorWrapper.lookup_many
            and kind.lookup_many_columns is ConnectorWrapper.lookup_many_columns
            and kind.aggregate is ConnectorWrapper.aggregate
            else None
        )
        """The wrapped connector's :meth:`around` when it is a wrapper that takes
        the contract's calls as they are (it overrides none of the methods that
        build them): :meth:`run` hands a call straight to it."""
        if type(self).capabilities_for is ConnectorWrapper.capabilities_for:
            # the innermost connector's own method, without a frame per wrapper: the
            # planner asks for it before every statement it sends
            self.capabilities_for = inner.capabilities_for  # type: ignore[method-assign]

    def run(self, call: Call[T]) -> Awaitable[T]:
        """``call`` on the wrapped connector (``call.run(self.inner)``, without
        building the same call again when the inner wrapper would)."""
        around = self._inner_around
        return call.run(self.inner) if around is None else around(call)

    @property
    def source_kind(self) -> str:
        return self.inner.source_kind

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def capabilities_for(self, table: str) -> Capabilities:
        return self.inner.capabilities_for(table)

    def pool_usage(self) -> tuple[int, int] | None:
        return self.inner.pool_usage()

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
        return await self.around(Lookup(table, column, keys, columns, transform))

    async def lookup_many_columns(
        self, table: str, lookups: Sequence[KeyLookup], columns: Sequence[str]
    ) -> list[list[list[Row]]]:
        return await self.around(ColumnsLookup(table, lookups, columns))

    def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        return relay(self.inner.scan(request))

    async def aggregate(
        self,
        table: str,
        group_by: Sequence[str],
        aggregates: Sequence[Aggregate],
        filters: Sequence[Filter] = (),
    ) -> list[Row]:
        return await self.around(AggregateCall(table, group_by, aggregates, filters))

    def around(self, call: Call[T]) -> Awaitable[T]:
        """Runs ``call`` on the wrapped connector; a wrapper overrides it (often with a
        coroutine function) to guard, answer or record lookups and aggregates."""
        return self.run(call)

    async def health(self, tables: Sequence[str] = ()) -> Health:
        return await self.inner.health(tables)

    async def write_access(self, tables: Sequence[str]) -> WriteAccess:
        return await self.inner.write_access(tables)

    async def aclose(self) -> None:
        await self.inner.aclose()


def wrapper_in(connector: Connector, kind: type[W]) -> W | None:
    """The wrapper of type ``kind`` in a chain of wrappers, if there is one."""
    found: object = connector
    for _ in range(8):
        if isinstance(found, kind):
            return found
        found = found.__dict__.get("inner")
        if found is None:
            return None
    return None
