"""The audit log as a database table: ``custview_audit``, insert-only.

Like the registry's ledger this is custview's own store, not a source, and
it knows nothing about customers: each row is an opaque JSON document plus
the few columns a reader filters on (when, who, through which channel).
Nothing here updates or deletes a row.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from connectors.ledger import AppendOnlyStore

__all__ = ["AuditTable"]

metadata = MetaData()

audit = Table(
    "custview_audit",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("principal", String(200), nullable=False),
    Column("channel", String(40), nullable=False),
    Column("entry", Text, nullable=False),
    Index("custview_audit_at", "at"),
    Index("custview_audit_principal", "principal"),
)


class AuditTable(AppendOnlyStore):
    """Appends audit entries (JSON objects) and reads them back in order."""

    metadata = metadata

    def __init__(self, url: str) -> None:
        super().__init__(url, what="audit")
        self._opened = False

    async def append(self, entry: dict[str, Any]) -> None:
        """Stores one entry, creating the table on first use; raises when it cannot."""
        if not self._opened:
            await self.open()
            self._opened = True
        at = dt.datetime.fromisoformat(str(entry["at"]))
        row = {
            "at": at,
            "principal": str(entry.get("principal", ""))[:200],
            "channel": str(entry.get("channel", ""))[:40],
            "entry": json.dumps(entry, ensure_ascii=False, default=str),
        }
        await self._write(insert(audit).values(**row))

    async def entries(
        self,
        principal: str | None = None,
        since: dt.datetime | None = None,
        last: int | None = None,
    ) -> list[dict[str, Any]]:
        """Entries in the order they were written; ``last``: only the most recent N."""
        await self.open()
        statement = select(audit.c.seq, audit.c.entry)
        if principal is not None:
            statement = statement.where(audit.c.principal == principal)
        if since is not None:
            statement = statement.where(audit.c.at >= since)
        statement = statement.order_by(audit.c.seq.desc() if last else audit.c.seq)
        if last:
            statement = statement.limit(last)
        rows = list(await self._read(statement))
        if last:
            rows.reverse()
        return [json.loads(r.entry) for r in rows]
