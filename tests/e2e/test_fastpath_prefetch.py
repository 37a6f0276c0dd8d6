"""The fast path's prefetch (a page's relations read for all its customers before
their fields start): a cancelled one leaves nothing behind in the request's
loaders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from connectors import Connector, Row
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.view import CustomerView, Federation, RequestView

# -- a prefetch cancelled while its statement is in flight ---------------------------


class _Held:
    """A connector whose lookups wait until :attr:`released` is set (counted)."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.name = inner.name
        self.lookups: list[list[Any]] = []
        self.waiting = asyncio.Event()
        self.released = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def lookup_many(self, table: str, column: str, keys: Any, *args: Any) -> Any:
        self.lookups.append(list(keys))
        self.waiting.set()
        await self.released.wait()
        rows: list[list[Row]] = await self.inner.lookup_many(table, column, keys, *args)
        return rows


@asynccontextmanager
async def _held_support() -> AsyncIterator[tuple[Federation, _Held]]:
    loaded = load_settings(DEMO_CONFIG)
    connectors = loaded.create_connectors()
    held = _Held(connectors["support"])
    federation = Federation(loaded.settings.model, {**connectors, "support": held})  # type: ignore[dict-item]
    try:
        yield federation, held
    finally:
        await federation.aclose()


async def _page(view: RequestView) -> list[CustomerView]:
    """A page of customers, some of whom have tickets (read without the hold)."""
    page = await view.page(20, None)
    return [c for _, c in page.customers]


async def _tickets(federation: Federation, customers: list[CustomerView]) -> list[list[Row]]:
    """Each customer's ticket rows, read by a view of their own."""
    view = federation.request()
    return [await view.related_rows(c, "tickets") for c in customers]


async def _cancelled_prefetch(
    view: RequestView, customers: list[CustomerView], held: _Held
) -> None:
    """A prefetch of the customers' tickets, cancelled while its statement waits."""
    prefetch = asyncio.create_task(view.prefetch_related(customers, "tickets"))
    await held.waiting.wait()
    prefetch.cancel()
    await asyncio.gather(prefetch, return_exceptions=True)
    assert prefetch.cancelled()


async def test_a_read_waiting_for_a_cancelled_prefetch_reads_again(demo_env: None) -> None:
    """Another read of the same customer's tickets in the request (a second list of
    the same customers, the timeline) waits for the prefetch's statement: when the
    prefetch is cancelled (its list's field was), that read is not, and it reads
    the rows again instead of failing with ``CancelledError``."""
    async with _held_support() as (federation, held):
        held.released.set()
        customers = await _page(federation.request())
        expected = await _tickets(federation, customers)
        busy = next(i for i, rows in enumerate(expected) if rows)
        items = await federation.request().related(customers[busy], "tickets")
        held.released.clear()
        held.waiting.clear()
        held.lookups.clear()

        view = federation.request()
        prefetch = asyncio.create_task(view.prefetch_related(customers, "tickets"))
        await held.waiting.wait()
        one = asyncio.create_task(view.related_rows(customers[busy], "tickets"))
        alone = asyncio.create_task(view.related(customers[busy], "tickets", alone=True))
        await asyncio.sleep(0)  # both wait for the prefetch's rows now
        prefetch.cancel()
        await asyncio.gather(prefetch, return_exceptions=True)
        held.released.set()
        assert await one == expected[busy]
        assert await alone == items
        assert len(held.lookups) == 2, held.lookups  # the prefetch's, then the busy one's


async def test_a_read_sharing_a_batch_with_a_cancelled_one_reads_again(demo_env: None) -> None:
    """The same on both paths without a prefetch: two fields waiting for one key's
    rows share its batch's future, and the task of one cancelled cancels it; the
    other, not cancelled, reads the rows again."""
    async with _held_support() as (federation, held):
        held.released.set()
        customers = await _page(federation.request())
        expected = await _tickets(federation, customers)
        busy = next(i for i, rows in enumerate(expected) if rows)
        held.released.clear()
        held.waiting.clear()
        held.lookups.clear()

        view = federation.request()
        cancelled = asyncio.create_task(view.related_rows(customers[busy], "tickets"))
        other = asyncio.create_task(view.related_rows(customers[busy], "tickets"))
        await held.waiting.wait()
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        held.released.set()
        assert await other == expected[busy]
        assert cancelled.cancelled()


async def test_a_cancelled_prefetch_leaves_nothing_for_a_later_one(demo_env: None) -> None:
    """A cancelled prefetch leaves no cancelled rows in the request's loader: the
    page's next prefetch reads the tickets at once, and every customer's field
    finds its rows read (no statement more)."""
    async with _held_support() as (federation, held):
        held.released.set()
        customers = await _page(federation.request())
        expected = await _tickets(federation, customers)
        held.released.clear()
        held.waiting.clear()
        held.lookups.clear()

        view = federation.request()
        await _cancelled_prefetch(view, customers, held)
        held.released.set()
        await view.prefetch_related(customers, "tickets")
        assert len(held.lookups) == 2, held.lookups
        assert held.lookups[1] == held.lookups[0]
        assert [await view.related_rows(c, "tickets") for c in customers] == expected
        assert len(held.lookups) == 2, held.lookups
