"""custview's own small database: append-only rows of opaque identifiers.

This is the one store custview writes, and it is not a source: a SQLite file
by default, PostgreSQL (or MySQL/MariaDB) when replicas share it. It knows
nothing about customers. It holds three append-only tables of strings and
numbers:

* ``custview_events`` — decisions: who did what to which pair of ids, and
  which earlier event an ``undo`` cancels (erasure tombstones are events
  too: one per erased record id);
* ``custview_links`` — scored pairs of ids written by batch runs; a later row
  for the same pair supersedes an earlier one (a ``NULL`` score retracts it);
* ``custview_runs`` — one row per batch run, with its watermark.

Readers follow all three incrementally by sequence number, so N replicas
sharing one database see each other's writes on their next refresh.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connectors import sqlite_connect
from connectors.errors import ConfigError, SourceUnavailable

__all__ = ["AppendOnlyStore", "EventRow", "Ledger", "LinkRow", "RunRow"]

_ID = BigInteger().with_variant(Integer(), "sqlite")
"""Auto-increment keys: SQLite only auto-increments ``INTEGER PRIMARY KEY``."""

metadata = MetaData()

events = Table(
    "custview_events",
    metadata,
    Column("seq", _ID, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("a", String(500), nullable=False),
    Column("b", String(500)),
    Column("target", BigInteger),
)

links = Table(
    "custview_links",
    metadata,
    Column("seq", _ID, primary_key=True, autoincrement=True),
    Column("a", String(500), nullable=False),
    Column("b", String(500), nullable=False),
    Column("score", Float),
    Column("run", BigInteger, nullable=False),
    Index("custview_links_a", "a"),
    Index("custview_links_b", "b"),
)

runs = Table(
    "custview_runs",
    metadata,
    Column("run", _ID, primary_key=True, autoincrement=True),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("finished", DateTime(timezone=True)),
    Column("model", String(200), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("records", BigInteger),
    Column("pairs", BigInteger),
    Column("watermark", Text),
)


@dataclass(frozen=True, slots=True)
class EventRow:
    seq: int
    at: dt.datetime
    actor: str
    action: str
    a: str
    b: str | None
    target: int | None


@dataclass(frozen=True, slots=True)
class LinkRow:
    seq: int
    a: str
    b: str
    score: float | None
    run: int


@dataclass(frozen=True, slots=True)
class RunRow:
    run: int
    started: dt.datetime
    finished: dt.datetime | None
    model: str
    mode: str
    records: int | None
    pairs: int | None
    watermark: dict[str, Any]


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _async_url(url: str) -> URL:
    parsed = make_url(url)
    driver = {
        "sqlite": "sqlite+aiosqlite",
        "postgresql": "postgresql+asyncpg",
        "mysql": "mysql+aiomysql",
        "mariadb": "mysql+aiomysql",
    }.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


class AppendOnlyStore:
    """custview's own tables in a database of the operator's choosing: created on
    :meth:`open`, written with inserts only. ``what`` names the store in errors
    (and the config section of its URL)."""

    metadata: MetaData

    def __init__(self, url: str, *, what: str) -> None:
        self.what = what
        try:
            parsed = _async_url(url)
            self.engine: AsyncEngine = create_async_engine(parsed)
            if parsed.get_backend_name() == "sqlite":
                sqlite_connect.open_with(self.engine)
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise ConfigError(f"{what}.url: cannot use this database URL ({exc})") from None

    def _unavailable(self, exc: Exception) -> SourceUnavailable:
        kind = type(getattr(exc, "orig", None) or exc).__name__
        return SourceUnavailable(
            f"the {self.what} database is unavailable ({kind})", source=self.what
        )

    def _unopenable(self) -> SourceUnavailable | None:
        """A SQLite file that cannot be opened, named before any connection is tried."""
        file = sqlite_connect.named_file(self.engine.url)
        if file is None:
            return None
        why = sqlite_connect.unopenable(file, f"`{self.what}.url`", created=True)
        if not why:
            return None
        return SourceUnavailable(
            f"the {self.what} database {file.resolve()} cannot be opened: {why}",
            source=self.what,
        )

    async def open(self) -> None:
        """Creates the tables that do not exist yet. Replicas starting together may
        race to create them: the loser's attempt fails and finds them on a retry."""
        unopenable = self._unopenable()
        if unopenable is not None:
            raise unopenable
        for attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(self.metadata.create_all)
                return
            except (IntegrityError, ProgrammingError, OperationalError) as exc:
                if attempt == 2:
                    raise self._unavailable(exc) from None
                await asyncio.sleep(0.2 * (attempt + 1))
            except (SQLAlchemyError, OSError) as exc:
                raise self._unavailable(exc) from None

    async def aclose(self) -> None:
        await self.engine.dispose()

    async def _write(self, statement: Any) -> Any:
        try:
            async with self.engine.begin() as conn:
                return await conn.execute(statement)
        except (SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def _read(self, statement: Any) -> Sequence[Any]:
        try:
            async with self.engine.connect() as conn:
                return (await conn.execute(statement)).all()
        except (SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from None


class Ledger(AppendOnlyStore):
    """The append-only tables behind the identity registry."""

    LINK_CHUNK = 5_000
    metadata = metadata

    def __init__(self, url: str, *, what: str = "registry") -> None:
        super().__init__(url, what=what)

    async def append_event(
        self, actor: str, action: str, a: str, b: str | None = None, target: int | None = None
    ) -> EventRow:
        at = dt.datetime.now(dt.UTC)
        values = {"at": at, "actor": actor, "action": action, "a": a, "b": b, "target": target}
        result = await self._write(insert(events).values(**values))
        (seq,) = result.inserted_primary_key
        return EventRow(int(seq), at, actor, action, a, b, target)

    async def append_events(
        self, actor: str, action: str, pairs: Sequence[tuple[str, str | None]]
    ) -> list[EventRow]:
        """Several ``(a, b)`` events of one action, all or none (one transaction)."""
        at = dt.datetime.now(dt.UTC)
        rows = []
        try:
            async with self.engine.begin() as conn:
                for a, b in pairs:
                    values = {"at": at, "actor": actor, "action": action, "a": a, "b": b}
                    result = await conn.execute(insert(events).values(**values))
                    key = result.inserted_primary_key
                    assert key is not None  # a single-row insert reports its key
                    (seq,) = key
                    rows.append(EventRow(int(seq), at, actor, action, a, b, None))
        except (SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from None
        return rows

    async def events_after(self, seq: int) -> list[EventRow]:
        rows = await self._read(select(events).where(events.c.seq > seq).order_by(events.c.seq))
        return [EventRow(r.seq, _utc(r.at), r.actor, r.action, r.a, r.b, r.target) for r in rows]

    async def append_links(self, run: int, pairs: Iterable[tuple[str, str, float | None]]) -> int:
        """Writes ``(a, b, score)`` rows for ``run`` in chunks; returns how many."""
        count = 0
        chunk: list[dict[str, Any]] = []
        try:
            async with self.engine.begin() as conn:
                for a, b, score in pairs:
                    chunk.append({"a": a, "b": b, "score": score, "run": run})
                    if len(chunk) >= self.LINK_CHUNK:
                        await conn.execute(insert(links), chunk)
                        count += len(chunk)
                        chunk = []
                if chunk:
                    await conn.execute(insert(links), chunk)
                    count += len(chunk)
        except (SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from None
        return count

    async def links_after(self, seq: int, limit: int = 100_000) -> list[LinkRow]:
        statement = select(links).where(links.c.seq > seq).order_by(links.c.seq).limit(limit)
        return [LinkRow(r.seq, r.a, r.b, r.score, r.run) for r in await self._read(statement)]

    async def start_run(self, model: str, mode: str) -> int:
        started = dt.datetime.now(dt.UTC)
        result = await self._write(insert(runs).values(started=started, model=model, mode=mode))
        (run,) = result.inserted_primary_key
        return int(run)

    async def finish_run(
        self, run: int, records: int, pairs: int, watermark: dict[str, Any]
    ) -> None:
        await self._write(
            update(runs)
            .where(runs.c.run == run)
            .values(
                finished=dt.datetime.now(dt.UTC),
                records=records,
                pairs=pairs,
                watermark=json.dumps(watermark, sort_keys=True, default=str),
            )
        )

    async def last_run(self) -> RunRow | None:
        """The latest finished run."""
        statement = (
            select(runs).where(runs.c.finished.is_not(None)).order_by(runs.c.run.desc()).limit(1)
        )
        rows = await self._read(statement)
        if not rows:
            return None
        r = rows[0]
        return RunRow(
            r.run,
            _utc(r.started),
            _utc(r.finished) if r.finished else None,
            r.model,
            r.mode,
            r.records,
            r.pairs,
            json.loads(r.watermark or "{}"),
        )

    async def counts(self) -> dict[str, int]:
        out = {}
        for table in (events, links, runs):
            (row,) = await self._read(select(func.count()).select_from(table))
            out[table.name] = int(row[0])
        return out
