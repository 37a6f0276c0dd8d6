"""The identity registry over a real ledger database: SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from connectors import QueryError
from connectors.ledger import Ledger
from resolvers.registry import IdentityRegistry

A, B, C = "crm/contacts/1", "sales/customers/2", "support/users/3"


async def _registry(url: str, refresh: float = 0.0) -> IdentityRegistry:
    registry = IdentityRegistry(Ledger(url), refresh_seconds=refresh)
    await registry.open()
    return registry


async def test_decisions_fold_in_order_and_undo_restores(own_db_url: str) -> None:
    registry = await _registry(own_db_url)
    try:
        link = await registry.decide("api_key:alice", "link", A, B)
        assert registry.manual_edges(A) == {B} and registry.manual_edges(B) == {A}
        apart = await registry.decide("api_key:alice", "not_duplicate", A, B)
        assert registry.manual_edges(A) == set()  # the later decision wins
        assert registry.blocked([A], {B, C}) and not registry.blocked([A], {C})
        undo = await registry.undo("api_key:bob", apart.seq)
        assert registry.manual_edges(A) == {B} and not registry.blocked([A], {B})
        with pytest.raises(QueryError, match="already undone"):
            await registry.undo("api_key:bob", apart.seq)
        await registry.undo("api_key:bob", undo.seq)  # undo the undo: apart again
        assert registry.blocked([A], {B})
        unlink = await registry.decide("api_key:alice", "unlink", C)
        assert registry.is_detached(C)
        await registry.undo("api_key:alice", unlink.seq)
        assert not registry.is_detached(C)
        log = registry.decisions([A])
        assert [d.seq for d in log] == sorted((d.seq for d in log), reverse=True)
        assert {d.action for d in log} == {"link", "not_duplicate", "undo"}
        assert next(d for d in log if d.seq == link.seq).actor == "api_key:alice"
        assert next(d for d in log if d.seq == apart.seq).undone is False  # restored
        with pytest.raises(QueryError, match="no identity decision"):
            await registry.undo("api_key:bob", 10_000)
    finally:
        await registry.aclose()


async def test_a_second_replica_sees_decisions_and_batch_links(own_db_url: str) -> None:
    first, second = await _registry(own_db_url), await _registry(own_db_url)
    try:
        await first.decide("api_key:alice", "link", A, B)
        run = await first.ledger.start_run("model-v1", "full")
        await first.ledger.append_links(run, [(A, C, 0.995), (B, C, 0.7)])
        await first.ledger.finish_run(run, records=3, pairs=2, watermark={"crm.contacts": 5})
        await second.refresh()
        assert second.manual_edges(B) == {A}
        assert second.machine_edges(C) == {A: 0.995, B: 0.7}
        assert second.has_run and second.last_run is not None
        assert second.last_run.watermark == {"crm.contacts": 5}
        # a later run retracts a pair with a NULL score; an unlinked record keeps none
        run2 = await first.ledger.start_run("model-v1", "incremental")
        await first.ledger.append_links(run2, [(B, C, None)])
        await first.ledger.finish_run(run2, records=1, pairs=0, watermark={})
        await first.decide("api_key:alice", "unlink", A)
        await second.refresh()
        assert second.machine_edges(C) == {}
        assert second.machine_edges(A) == {}
    finally:
        await first.aclose()
        await second.aclose()


async def test_refresh_is_rate_limited_per_process(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    now = [0.0]
    reader = IdentityRegistry(Ledger(url), refresh_seconds=5, clock=lambda: now[0])
    writer = await _registry(url)
    await reader.open()
    try:
        await writer.decide("api_key:alice", "link", A, B)
        await reader.refresh()
        assert reader.manual_edges(A) == set()  # within refresh_seconds of the last read
        now[0] = 6.0
        await reader.refresh()
        assert reader.manual_edges(A) == {B}
    finally:
        await reader.aclose()
        await writer.aclose()


async def test_the_registry_holds_identifiers_only(tmp_path: Path) -> None:
    """Every column is an id, a number, a timestamp or a decision word: no attribute."""
    path = tmp_path / "registry.db"
    registry = await _registry(f"sqlite+aiosqlite:///{path}")
    await registry.decide("api_key:alice", "link", A, B)
    await registry.aclose()
    engine = create_engine(f"sqlite:///{path}")
    inspector = inspect(engine)
    columns = {
        t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()
    }
    assert columns == {
        "custview_events": {"seq", "at", "actor", "action", "a", "b", "target"},
        "custview_links": {"seq", "a", "b", "score", "run"},
        "custview_runs": {
            "run",
            "started",
            "finished",
            "model",
            "mode",
            "records",
            "pairs",
            "watermark",
        },
    }
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT action, a, b FROM custview_events")).all()
    assert rows == [("link", A, B)]
    engine.dispose()


async def test_replicas_opening_a_new_registry_together_both_start(own_db_url: str) -> None:
    import asyncio

    ledgers = [Ledger(own_db_url) for _ in range(4)]
    try:
        await asyncio.gather(*(ledger.open() for ledger in ledgers))
        # every one of them can use the tables (the module's earlier tests may have rows)
        counts = await asyncio.gather(*(ledger.counts() for ledger in ledgers))
        assert all(
            c.keys() == {"custview_events", "custview_links", "custview_runs"} for c in counts
        )
    finally:
        await asyncio.gather(*(ledger.aclose() for ledger in ledgers))


async def test_erasure_tombstones_are_final_and_block_decisions(own_db_url: str) -> None:
    registry = await _registry(own_db_url)
    other = await _registry(own_db_url)
    try:
        link = await registry.decide("api_key:alice", "link", A, C)
        run = await registry.ledger.start_run("model", "full")
        await registry.ledger.append_links(run, [(A, B, 0.999), (B, C, 0.999)])
        rows = await registry.erase("api_key:dpo", "cus_x", [A, C])
        assert [(r.action, r.a, r.b) for r in rows] == [
            ("erase", A, "cus_x"),
            ("erase", C, "cus_x"),
        ]
        assert registry.is_erased(A) and not registry.is_erased(B)
        assert registry.machine_edges(B) == {}  # batch links to erased records are not followed
        for attempt in (
            registry.decide("api_key:alice", "link", B, A),
            registry.decide("api_key:alice", "unlink", C),
            registry.undo("api_key:alice", link.seq),
            registry.undo("api_key:alice", rows[0].seq),
            registry.erase("api_key:dpo", "cus_x", [A]),
            other.decide("api_key:bob", "not_duplicate", B, C),  # another replica knows too
        ):
            with pytest.raises(QueryError, match="eras"):
                await attempt
        shown = {d.seq for d in registry.decisions()}
        assert link.seq not in shown and rows[0].seq not in shown  # no answer names them
        written = await registry.ledger.events_after(0)
        assert max(e.seq for e in written) == rows[-1].seq  # nothing refused was written
    finally:
        await registry.aclose()
        await other.aclose()
