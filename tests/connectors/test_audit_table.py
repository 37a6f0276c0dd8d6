"""The audit table: entries go in with INSERT only and come back in order."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import event

from connectors.audit_table import AuditTable


async def test_entries_are_inserted_and_read_back_in_order(own_db_url: str) -> None:
    table = AuditTable(own_db_url)
    statements: list[str] = []
    event.listen(
        table.engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *args: statements.append(statement),
    )
    start = dt.datetime.now(dt.UTC)
    try:
        before = len(await table.entries())  # a shared database may hold earlier entries
        for i, who in enumerate(["alice", "bob", "alice"]):
            at = (start + dt.timedelta(seconds=i)).isoformat()
            await table.append({"at": at, "principal": who, "channel": "graphql", "n": i})
        everything = await table.entries()
        assert [e["n"] for e in everything[before:]] == [0, 1, 2]
        assert [e["n"] for e in await table.entries(principal="bob")][-1:] == [1]
        assert [e["n"] for e in await table.entries(last=2)] == [1, 2]
        later = await table.entries(since=start + dt.timedelta(seconds=1))
        assert [e["n"] for e in later] == [1, 2]
    finally:
        await table.aclose()
    writes = [s.split()[0].upper() for s in statements if not s.lstrip().upper().startswith(
        ("SELECT", "PRAGMA", "CREATE", "BEGIN", "COMMIT", "ROLLBACK", "SHOW")
    )]  # fmt: skip
    assert set(writes) == {"INSERT"}, "the audit table is never updated or deleted from"
