"""A field cancelled while a batch of the request's loaders is in flight breaks no
other field: metrics, and the businesses' and households' lookups and stitching.

Two fields asking for the same key share its future; the task of one cancelled
cancels that future (and the batch's read when nobody else waits for it). The
other field, not cancelled, reads the key again; a later read of the key in the
same request does too. (Relations: ``test_fastpath_prefetch.py``.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from resolvers.groups import Household
from resolvers.view import CustomerView, Federation
from tests.support.held import HeldConnector, held_source

Read = Callable[[], Awaitable[Any]]


async def _customers(federation: Federation, first: int = 20) -> list[CustomerView]:
    """A page of customers, each read afresh (a metric worked out is kept on its customer)."""
    page = await federation.request().page(first, None)
    return [c for _, c in page.customers]


async def _one_cancelled(held: HeldConnector, read: Read, shared: bool) -> Any:
    """``read()`` by a field whose task is cancelled while the source call waits, and
    by another field of the request: at the same time (``shared``: their loads share
    the batch's futures), else after. The other field's answer."""
    cancelled = asyncio.create_task(read())
    other = asyncio.create_task(read()) if shared else None
    await held.waiting.wait()
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert cancelled.cancelled()
    held.released.set()
    return await (other or read())


def _read_again(held: HeldConnector) -> None:
    """The call held when the field was cancelled was made again."""
    assert len(held.calls) >= 2, held.calls
    assert held.calls[0] in held.calls[1:], held.calls


async def test_a_metric_sharing_a_batch_with_a_cancelled_field_reads_again(
    demo_env: None,
) -> None:
    """The metrics' loaders (a grouped aggregate of the customers' tickets)."""
    async with held_source("support", "aggregate") as (federation, held):
        customers = await _customers(federation)
        expected = await federation.request().metric_many(customers, "openTickets")
        busy = next(i for i, value in enumerate(expected) if value)

        for shared in (True, False):
            customer = (await _customers(federation))[busy]
            held.hold()
            read = partial(federation.request().metric, customer, "openTickets")
            assert await _one_cancelled(held, read, shared) == expected[busy], shared
            assert held.calls == [held.calls[0]] * 2, held.calls  # once cancelled, once read


def _shape(household: Household | None) -> tuple[str, list[list[str]]] | None:
    if household is None:
        return None
    return household.id, [[str(r.ref) for r in c] for c in household.customers]


async def _household_reads(source: str, method: str) -> None:
    """A customer's household read by two fields of a request, and by a field after
    a cancelled one, with ``source``'s ``method`` held."""
    async with held_source(source, method) as (federation, held):
        customers = await _customers(federation, 100)  # a few of them share a home
        groups = federation.request().groups()
        found = await asyncio.gather(*(groups.household_of(c.records) for c in customers))
        homes = [_shape(h) for h in found]
        home = next(i for i, h in enumerate(homes) if h)

        for shared in (True, False):
            held.hold()
            read = partial(federation.request().groups().household_of, customers[home].records)
            assert _shape(await _one_cancelled(held, read, shared)) == homes[home], shared
            _read_again(held)


async def test_a_group_lookup_sharing_a_batch_with_a_cancelled_field_reads_again(
    demo_env: None,
) -> None:
    """The lookup loaders (the household's records by key and by postcode)."""
    await _household_reads("crm", "lookup_many")


async def test_stitching_sharing_a_batch_with_a_cancelled_field_reads_again(
    demo_env: None,
) -> None:
    """The loader that stitches the records found into customers (the identity
    lookups of every caller waiting at once, as one resolution)."""
    await _household_reads("crm", "lookup_many_columns")
