"""The fast path's prefetch (a page's relations read for all its customers before
their fields start) reads nothing the general path would not, and a cancelled
one leaves nothing behind in the request's loaders."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors import Row
from gateway.app import create_app
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.view import CustomerView, Federation, RequestView
from tests.e2e.test_batching import statements_by_table
from tests.e2e.test_fastpath import SAME_ID, _compiled_share, _field_tasks
from tests.support.held import HeldConnector, held_source

# -- a prefetch cancelled while its statement is in flight ---------------------------


async def _page(view: RequestView) -> list[CustomerView]:
    """A page of customers, some of whom have tickets (read without the hold)."""
    page = await view.page(20, None)
    return [c for _, c in page.customers]


async def _tickets(federation: Federation, customers: list[CustomerView]) -> list[list[Row]]:
    """Each customer's ticket rows, read by a view of their own."""
    view = federation.request()
    return [await view.related_rows(c, "tickets") for c in customers]


@asynccontextmanager
async def _held_tickets() -> AsyncIterator[
    tuple[Federation, HeldConnector, list[CustomerView], list[list[Row]], list[int]]
]:
    """A page of customers, each one's ticket rows and which have some, read; then
    support's lookups held."""
    async with held_source("support", "lookup_many") as (federation, held):
        customers = await _page(federation.request())
        expected = await _tickets(federation, customers)
        busy = [i for i, rows in enumerate(expected) if rows]
        held.hold()
        yield federation, held, customers, expected, busy


async def _cancelled_prefetch(
    view: RequestView, customers: list[CustomerView], held: HeldConnector
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
    async with _held_tickets() as (federation, held, customers, expected, (busy, *_)):
        held.released.set()
        items = await federation.request().related(customers[busy], "tickets")
        held.hold()

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
        assert len(held.calls) == 2, held.calls  # the prefetch's, then the busy one's


async def test_a_read_sharing_a_batch_with_a_cancelled_one_reads_again(demo_env: None) -> None:
    """The same on both paths without a prefetch: two fields waiting for one key's
    rows share its batch's future, and the task of one cancelled cancels it; the
    other, not cancelled, reads the rows again."""
    async with _held_tickets() as (federation, held, customers, expected, (busy, *_)):
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
    async with _held_tickets() as (federation, held, customers, expected, _):
        view = federation.request()
        await _cancelled_prefetch(view, customers, held)
        held.released.set()
        await view.prefetch_related(customers, "tickets")
        assert len(held.calls) == 2, held.calls
        assert held.calls[1] == held.calls[0]
        assert [await view.related_rows(c, "tickets") for c in customers] == expected
        assert len(held.calls) == 2, held.calls


async def test_a_reader_cancelled_while_it_waits_for_a_prefetch_fails_no_other_key(
    demo_env: None,
) -> None:
    """A field waiting for the prefetch's rows of one key is cancelled (its task, as
    a sibling's failure cancels it), which cancels that key's future: the prefetch
    still answers every other key (it failed setting the cancelled one, and the
    keys after it were never answered: their readers waited until the deadline)."""
    async with _held_tickets() as (federation, held, customers, expected, busy):
        first, last = busy[0], busy[-1]

        view = federation.request()
        prefetch = asyncio.create_task(view.prefetch_related(customers, "tickets"))
        await held.waiting.wait()
        doomed = asyncio.create_task(view.related_rows(customers[first], "tickets"))
        other = asyncio.create_task(view.related_rows(customers[last], "tickets"))
        await asyncio.sleep(0)  # both wait for the prefetch's futures now
        doomed.cancel()
        await asyncio.gather(doomed, return_exceptions=True)
        held.released.set()
        await prefetch
        async with asyncio.timeout(10):  # left waiting, it would wait for ever
            assert await other == expected[last]
        assert await view.related_rows(customers[first], "tickets") == expected[first]


async def test_a_read_at_once_survives_a_cancelled_reader_of_its_keys(demo_env: None) -> None:
    """The customer 360's read at once (``alone``) shares its key's future with
    another field of the request (the timeline, say) whose task is cancelled: the
    read still answers its rows (it failed with ``InvalidStateError``)."""
    async with _held_tickets() as (federation, held, customers, expected, (busy, *_)):
        view = federation.request()
        alone = asyncio.create_task(view.related_rows(customers[busy], "tickets", alone=True))
        await held.waiting.wait()
        sharer = asyncio.create_task(view.related_rows(customers[busy], "tickets"))
        await asyncio.sleep(0)
        sharer.cancel()
        await asyncio.gather(sharer, return_exceptions=True)
        held.released.set()
        assert await alone == expected[busy]


async def test_a_key_answered_with_a_cancelled_error_is_not_read_for_ever(
    demo_env: None,
) -> None:
    """A connector answering a key with a ``CancelledError`` object (a plugin's
    ``gather(..., return_exceptions=True)``): the read raises it, as before; no
    future was cancelled, so reading again would answer the same at once, without
    the loop ever getting a turn (no deadline could stop it)."""
    async with held_source("support", "lookup_many") as (federation, held):
        customers = await _page(federation.request())
        calls: list[list[Any]] = []

        async def cancelled_answers(table: str, column: str, keys: list[Any], *rest: Any) -> Any:
            calls.append(list(keys))
            return [asyncio.CancelledError() for _ in keys]

        held.lookup_many = cancelled_answers  # type: ignore[attr-defined]  # the source's, replaced
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(10):
                await federation.request().related_rows(customers[0], "tickets")
        assert 1 <= len(calls) <= 2, calls


# -- relations whose fields fail before reading ----------------------------------------

REFUSED = """query($n: Int) { customers(first: 10) { nodes { id name
  tickets(first: $n) { id status } orders { id total } } } }"""
"""``tickets(first: $n)`` over the page-size limit fails before reading."""
ALIASED = """query($n: Int) { customers(first: 10) { nodes { id
  few: tickets(first: 2) { id } many: tickets(first: $n) { id } orders { id } } } }"""
"""One of the two fields reads the tickets: they are read (once)."""
DENIED = """query { customers(first: 10) { nodes { id name
  opportunities { id stage } tickets { id } } } }"""
"""The support role may not read ``opportunities``."""


@asynccontextmanager
async def _counted(
    headers: dict[str, str],
) -> AsyncIterator[tuple[list[httpx.AsyncClient], list[Counter[str]], Any]]:
    """(general client, fast client), the statements each one's sources receive per
    table, and the fast path."""
    from resolvers.fastpath import FastPath
    from resolvers.lifecycle import parts_of

    loaded = load_settings(DEMO_CONFIG)
    async with AsyncExitStack() as stack:
        clients, counts = [], []
        with ExitStack() as hooks:
            for fast in (False, True):
                app = create_app(loaded, fast_path=fast)
                await stack.enter_async_context(app.router.lifespan_context(app))
                counts.append(hooks.enter_context(statements_by_table(app.state.federation)))
                client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://custview",
                    headers=headers,
                )
                clients.append(await stack.enter_async_context(client))
            fast_path = next(
                e.__self__
                for e in parts_of(app.state.schema.extensions)
                if isinstance(getattr(e, "__self__", None), FastPath)
            )
            yield clients, counts, fast_path


def _audit(seen: int) -> list[dict[str, Any]]:
    path = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    lines = path.read_text().splitlines()[seen:] if path.exists() else []
    return [{k: v for k, v in json.loads(line).items() if k != "at"} for line in lines]


async def _both(
    key: str, query: str, variables: dict[str, Any]
) -> tuple[dict[str, Any], list[Counter[str]]]:
    """The answer (the same bytes and audit entry on both paths) and the statements
    each path sent for it, per table."""
    async with _counted({"X-API-Key": key, **SAME_ID}) as (clients, counts, fast_path):
        body = {"query": query, "variables": variables}
        for client, count in zip(clients, counts, strict=True):
            await client.post("/graphql", json=body)  # compiled; connections opened
            count.clear()
        seen = len(_audit(0))
        general, fast = [await c.post("/graphql", json=body) for c in clients]
        assert fast.content == general.content
        entries = _audit(seen)
        assert len(entries) == 2 and entries[0] == entries[1], entries
        _compiled_share(fast_path, [query])
        return fast.json(), counts


async def test_a_relation_whose_fields_fail_is_not_prefetched(demo_env: None) -> None:
    """A relation field over the page-size limit (given by a variable) or denied to
    the caller fails before it reads: the fast path's prefetch does not read it
    either (no statement), and the answer and its errors are the general path's."""
    found, (general, fast) = await _both("demo-key", REFUSED, {"n": 501})
    nodes = found["data"]["customers"]["nodes"]
    assert len(nodes) == 10 and all(n["tickets"] is None for n in nodes), nodes
    messages = {e["message"] for e in found["errors"]}
    assert messages == {"'first' may be at most 500"}, found["errors"]
    assert len(found["errors"]) == 10
    assert fast["support.tickets"] == general["support.tickets"] == 0, (general, fast)
    assert fast["sales.orders"] == general["sales.orders"] == 1, (general, fast)

    found, (general, fast) = await _both("demo-key", ALIASED, {"n": 501})
    assert len(found["errors"]) == 10
    assert fast["support.tickets"] == general["support.tickets"] == 1, (general, fast)

    found, (general, fast) = await _both("support-key", DENIED, {})
    assert {e["extensions"]["code"] for e in found["errors"]} == {"FORBIDDEN_FIELD"}
    assert fast["crm.opportunities"] == general["crm.opportunities"] == 0, (general, fast)
    assert fast["support.tickets"] == general["support.tickets"] == 1, (general, fast)


async def test_an_aliased_relation_is_prefetched_when_one_of_its_fields_reads_it(
    demo_dir: Path, demo_env: None
) -> None:
    """``few: tickets(first: 2)`` reads the tickets though ``many: tickets(first:
    $n)`` fails before reading: the page reads them first (no relation field waits
    in a task of its own), as it does without the failing alias."""

    def answered(found: dict[str, Any]) -> None:
        assert len(found["errors"]) == 10, found  # the ten customers' `many`
        assert any(n["few"] for n in found["data"]["customers"]["nodes"]), found

    fields = await _field_tasks({"query": ALIASED, "variables": {"n": 501}}, answered)
    assert min(fields) == 0, fields
