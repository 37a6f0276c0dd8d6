"""No N+1 and concurrent sources, proven by counting statements and by a barrier."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from connectors import Connector, Row
from connectors.observe import observing
from connectors.sql.engine import reading_catalog
from gateway.settings import DEMO_CONFIG, LoadedSettings, load_settings
from resolvers.schema import build_schema
from resolvers.view import Federation

PAGE = """query($first: Int!) { customers(first: $first) { nodes {
    id name email sourceRecords { ref }
    tickets { id status } orders { id total } opportunities { id stage } } } }"""

_FROM = re.compile(r'FROM [`"]?(\w+)[`"]?', re.IGNORECASE)


@contextmanager
def statements_by_table(federation: Federation) -> Iterator[Counter[str]]:
    """Counts the statements each table receives while the block runs (not a
    connector's reads of the catalog: one per table, on its first lookup, whichever
    request makes it)."""
    seen: Counter[str] = Counter()
    hooks = []
    for name, connector in federation.connectors.items():

        def hook(conn: Any, cursor: Any, statement: str, *args: Any, _src: str = name) -> None:
            if reading_catalog():
                return
            match = _FROM.search(statement)
            seen[f"{_src}.{match.group(1) if match else '?'}"] += 1

        if not hasattr(connector, "engine"):
            continue  # not a SQL source
        engine = connector.engine.sync_engine
        event.listen(engine, "before_cursor_execute", hook)
        hooks.append((engine, hook))
    try:
        yield seen
    finally:
        for engine, hook in hooks:
            event.remove(engine, "before_cursor_execute", hook)


async def _page(settings: LoadedSettings, first: int) -> tuple[Counter[str], int]:
    model = settings.settings.model
    federation = Federation(model, settings.create_connectors())
    view = federation.request()
    try:
        with statements_by_table(federation) as counts:
            result = await build_schema(model).execute(
                PAGE, variable_values={"first": first}, context_value={"view": view}
            )
    finally:
        await federation.aclose()
    assert result.errors is None, result.errors
    assert len(result.data["customers"]["nodes"]) == first  # type: ignore[index]
    return counts, view.rounds


async def test_statements_do_not_grow_with_the_page_size(demo_settings: LoadedSettings) -> None:
    model = demo_settings.settings.model
    lookups_per_round = {
        m.id: sum(len(cols) for cols in m.identity.values()) for m in model.customer.members
    }
    results = {first: await _page(demo_settings, first) for first in (5, 50, 200)}
    for first, (counts, rounds) in results.items():
        # one statement per relation, whatever the number of customers
        for rel in (model.relations[n] for n in ("tickets", "orders", "opportunities")):
            assert counts[f"{rel.source}.{rel.table}"] == 1, (first, counts)
        # one scan of the first member table; identity lookups bounded by rounds
        assert counts["crm.contacts"] <= 1 + rounds * lookups_per_round["crm.contacts"]
        for member in model.customer.members:
            assert counts[member.id] <= 1 + rounds * lookups_per_round[member.id], first
        assert rounds <= model.identity.max_rounds
    (small, r5), (large, r50) = results[5], results[50]
    if r5 == r50:
        assert small == large
    per_round = sum(lookups_per_round.values())
    assert sum(large.values()) <= sum(small.values()) + (r50 - r5) * per_round
    assert sum(results[200][0].values()) < 60, "200 customers, a few dozen statements"


class _Gate:
    """Lets calls through once calls to two different sources are in flight."""

    def __init__(self) -> None:
        self.in_flight: Counter[str] = Counter()
        self.max_sources = 0
        self.opened = asyncio.Event()

    async def enter(self, source: str) -> None:
        self.in_flight[source] += 1
        busy = sum(1 for n in self.in_flight.values() if n)
        self.max_sources = max(self.max_sources, busy)
        if busy >= 2:
            self.opened.set()
        try:
            await asyncio.wait_for(self.opened.wait(), timeout=2)
        except TimeoutError:
            self.opened.set()  # the calls were sequential: let them run, the test fails

    def leave(self, source: str) -> None:
        self.in_flight[source] -= 1


class _Gated:
    def __init__(self, inner: Connector, gate: _Gate) -> None:
        self.inner, self.gate = inner, gate
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def lookup_many(self, *args: Any, **kwargs: Any) -> list[list[Row]]:
        await self.gate.enter(self.name)
        try:
            return await self.inner.lookup_many(*args, **kwargs)
        finally:
            self.gate.leave(self.name)


async def test_sources_are_queried_concurrently(demo_settings: LoadedSettings) -> None:
    gate = _Gate()
    connectors = {name: _Gated(c, gate) for name, c in demo_settings.create_connectors().items()}
    model = demo_settings.settings.model
    federation = Federation(model, connectors)  # type: ignore[arg-type]
    try:
        result = await build_schema(model).execute(
            "{ customers(first: 3) { nodes { id tickets { id } orders { id } } } }",
            context_value={"view": federation.request()},
        )
    finally:
        await federation.aclose()
    assert result.errors is None
    assert gate.max_sources >= 2


@pytest.mark.parametrize("rounds", [1, 5])
async def test_a_lookup_cut_at_max_rounds_says_so_in_the_plan(
    demo_env: None, tmp_path: Path, rounds: int
) -> None:
    text = DEMO_CONFIG.read_text().replace(
        "  identity:\n    keys:\n", f"  identity:\n    max_rounds: {rounds}\n    keys:\n", 1
    )
    path = tmp_path / "custview.yaml"
    path.write_text(text)
    federation = load_settings(path).create_federation()
    await federation.open()
    try:
        # a customer whose records hold a phone that no email lookup reached: the
        # phone is followed in a second round
        page = await federation.request().page(50, None)
        seed = next(
            c
            for _, c in page.customers
            if len({k for rec in c.records for k in federation.stitcher.keys_of(rec)}) >= 3
        )
        email = next(k for k in federation.stitcher.keys_of(seed.records[0]) if k[0] == "email")
        with observing() as observer:
            found = await federation.stitcher.resolve(keys=[email])
        steps = observer.report()["memory"]
        cut = [s for s in steps if "max_rounds" in s]
        assert found.rounds <= rounds
        assert bool(cut) == (rounds == 1), steps
    finally:
        await federation.aclose()


ONE = """query($e: String!) { customer(email: $e) {
    id tickets { id status } orders { id total } again: tickets { subject }
    timeline(first: 5) { nodes { kind at title } } } }"""


async def test_one_customers_relations_are_the_same_statements_on_the_fast_path(
    demo_settings: LoadedSettings,
) -> None:
    """The fast path looks a single customer's relation rows up at once instead of
    through the batch: the same statements, the same rows shared by an alias and
    the timeline reading the same relation."""
    from gateway.app import gateway_schema
    from resolvers.audit import Auditor, Caller
    from resolvers.governance import ReadTrail

    class Log:
        async def append(self, entry: dict[str, Any]) -> None:
            pass

    model = demo_settings.settings.model
    federation = Federation(model, demo_settings.create_connectors())
    grant = demo_settings.policy.grant(["admin"])

    async def run(fast: bool, query: str, variables: dict[str, Any]) -> tuple[Any, Counter[str]]:
        schema = gateway_schema(demo_settings, fast_path=fast)
        context = {
            "view": federation.request(),
            "grant": grant,
            "trail": ReadTrail(),
            "auditor": Auditor(Log(), Caller("test", "api_key", ("admin",))),
        }
        with statements_by_table(federation) as counts:
            result = await schema.execute(query, variable_values=variables, context_value=context)
        assert result.errors is None, result.errors
        return result.data, counts

    try:
        listed, _ = await run(
            False, "{ customers(first: 50) { nodes { email tickets { id } } } }", {}
        )
        emails = [n["email"] for n in listed["customers"]["nodes"] if n["email"] and n["tickets"]]
        assert emails
        for email in emails[:3]:
            general, general_counts = await run(False, ONE, {"e": email})
            fast, fast_counts = await run(True, ONE, {"e": email})
            assert fast == general
            assert fast_counts == general_counts
            tickets = model.relations["tickets"]
            assert fast_counts[f"{tickets.source}.{tickets.table}"] == 1, fast_counts
    finally:
        await federation.aclose()
