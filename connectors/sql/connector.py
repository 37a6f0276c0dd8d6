"""The SQL connector: any database SQLAlchemy reaches through an asyncio driver.

Every read is one SQLAlchemy Core statement with bound parameters, run on a
pooled read-only connection (see :mod:`connectors.sql.engine`) under the
source's timeout. Failures leave as :mod:`connectors.errors` types that name
the source and never its URL.

Semantics worth knowing:

* ``lookup_many`` (and ``lookup_many_columns``, and ``aggregate`` grouped by a
  column its ``in`` filter lists keys of) gives each key exactly the rows the
  database's ``=`` matches to it, under the column's collation and type rules
  (MariaDB's ``utf8mb4_general_ci``, PostgreSQL's ``citext``, SQLite's
  affinity), each key on its own: where Python's ``==`` could differ, the keys
  are joined as a derived table and the database says which key each row
  matched (:mod:`connectors.sql.keys`; a table's column types are read once,
  :attr:`SQLConnector.catalog_statements`).
* ``contains``/``startswith`` are case-insensitive on every engine; ``%``
  and ``_`` in the value are literal.
* Keyset columns (``ScanRequest.order_by`` with ``after``) must be non-null
  and unique together (end with the primary key); NULL ordering otherwise
  follows the engine.
* ``scan`` applies ``timeout`` to each fetch, not to the whole stream, so a
  long export keeps going while the source keeps answering.
* Inside a :func:`~connectors.deadline.deadline_scope` every timeout is cut
  to the time left before the deadline.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from dataclasses import replace
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, ClassVar, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from connectors._base import (
    Aggregate,
    Capabilities,
    Connector,
    ConnectorOptions,
    Filter,
    Health,
    KeyLookup,
    LookupTransform,
    Row,
    ScanRequest,
    WriteAccess,
)
from connectors.deadline import Deadline, time_left
from connectors.errors import ConfigError, ConnectorError, QueryError, SchemaMismatch
from connectors.sql import keys as keys_
from connectors.sql import privileges, statements
from connectors.sql.direct import DirectSession, DirectSQLite
from connectors.sql.engine import backend, catalog_read, create_read_only_engine, read_only_url
from connectors.sql.engine_sqlite import (
    Watch,
    new_watch,
    ready_watch,
    stop_when_abandoned,
    waiting_for_locks,
)
from connectors.sql.failures import (
    is_schema_error,
    is_source_failure,
    translate,
)
from connectors.sql.locks import locked
from connectors.sql.options import BATCH_LIMITS, DEFAULT_BATCH, SQLOptions
from connectors.sql.readonly import check_statement

STREAM_CHUNK = 500
"""Rows fetched from a server-side cursor per round trip while scanning."""

T = TypeVar("T")


class SQLConnector(Connector):
    """A read-only connector for one SQL database (see the module docstring)."""

    kind = "sql"
    options_model = SQLOptions
    options: SQLOptions
    default_capabilities: ClassVar[Capabilities] = Capabilities(
        supports_batch_lookup=True,
        supports_sort=True,
        supports_keyset=True,
        supports_limit=True,
        supports_aggregates=True,
        supports_filtered_aggregates=True,
        filter_operators=statements.OPERATORS,
        lookup_transforms=frozenset({"exact", "casefold", "digits"}),
        max_batch_size=DEFAULT_BATCH,
    )
    """Every table declares this; only ``max_batch_size`` follows the options (by
    default the engine's limit, see :data:`~connectors.sql.options.BATCH_LIMITS`)."""

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        if not isinstance(options, SQLOptions):
            raise ConfigError(f"source '{name}': the sql connector needs SQLOptions")
        super().__init__(name, options)
        self._url = make_url(options.url)
        self._backend = backend(self._url)
        self._statements = 0
        self._catalog_statements = 0
        self._kinds: dict[str, keys_.Columns] = {}
        """Table to its columns' kinds (:mod:`.keys`), read on its first lookup."""
        self._agreeing: dict[tuple[str, str, str], frozenset[type]] = {}
        """(Table, column, transform) to the set of key types a lookup of it must have
        for the cheap ``IN`` list (:func:`.keys.agreeing`)."""
        self._engine = create_read_only_engine(options, name, self._count)
        size = options.max_batch_size or BATCH_LIMITS.get(self._backend, DEFAULT_BATCH)
        self._capabilities = replace(self.default_capabilities, max_batch_size=size)
        self._own_capabilities = type(self).capabilities is SQLConnector.capabilities
        """Whether :attr:`capabilities` is this class's (a subclass may override it)."""
        self._max_overflow = options.max_overflow
        self._direct: DirectSQLite | None = None
        if self._backend == "sqlite":
            stop_when_abandoned(self._engine)
        if self._backend == "sqlite" and options.sqlite_direct and not options.echo:
            self._direct = DirectSQLite(
                self._engine,
                options.pool_size,
                options.max_overflow,
                size,
                name,
                options.sqlite_inline_budget,
            )

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def capabilities_for(self, table: str) -> Capabilities:
        """:attr:`capabilities` (the same on every table), without the property's
        frame unless a subclass overrides it: the planner asks before every
        statement it sends."""
        if self._own_capabilities:
            return self._capabilities
        return self.capabilities

    def pool_usage(self) -> tuple[int, int] | None:
        if self._direct is not None:
            return self._direct.usage()
        pool = self._engine.sync_engine.pool
        checked_out, size = getattr(pool, "checkedout", None), getattr(pool, "size", None)
        if checked_out is None or size is None:
            return None  # a pool that does not count (e.g. SQLite's static pool)
        return int(checked_out()), int(size()) + max(self._max_overflow, 0)

    @property
    def engine(self) -> AsyncEngine:
        """The read-only engine, for tests and instrumentation."""
        return self._engine

    @property
    def statements(self) -> int:
        """Statements sent to the source so far (every one passed the read-only guard)."""
        return self._statements

    @property
    def catalog_statements(self) -> int:
        """Catalog reads sent so far, apart from :attr:`statements`: one per table on
        its first lookup (its columns' types, :mod:`.keys`), through the same guard."""
        return self._catalog_statements

    def _count(self) -> None:
        self._statements += 1

    async def lookup_many(
        self,
        table: str,
        column: str,
        keys: Sequence[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[list[Row]]:
        if transform not in self._capabilities.lookup_transforms:
            raise QueryError(f"unknown lookup transform '{transform}'")
        distinct = dict.fromkeys(keys)  # :func:`_distinct`, written out
        distinct.pop(None, None)
        wanted = list(distinct)
        if not wanted:
            return [[] for _ in keys]
        names = list(dict.fromkeys(columns))  # :func:`statements.unique`, written out
        used = [column, *names]
        agreeing = self._agreeing.get((table, column, transform))
        if agreeing is None:
            agreeing = await self._agreeing_types(table, column, transform, used)
        types = set(map(type, wanted))  # :meth:`_agrees`, written out
        if not (types == agreeing or (self._backend == "sqlite" and types == {bytes})):
            # keys of the agreeing type only go in the IN list
            [joined] = await self._joined(table, [(column, transform, wanted)], names, used)
            return _per_position(joined, wanted, keys)
        stmt = statements.lookup(table, self.options.schema_name, column, tuple(names), transform)
        size = self._capabilities.max_batch_size
        if len(wanted) <= size:  # one statement (most lookups)
            batches = [await self._rows(table, used, stmt, {statements.KEYS_PARAM: wanted})]
        else:
            batches = []
            async with self._connection(table, used) as session:
                for start in range(0, len(wanted), size):
                    chunk = wanted[start : start + size]
                    # the timeout bounds each statement: a lookup of many chunks is many
                    # statements (the request's deadline still bounds them all)
                    batches.append(await self._all(session, stmt, {statements.KEYS_PARAM: chunk}))
        every = batches[0] if len(batches) == 1 else list(chain.from_iterable(batches))
        # every row's record (the names' values; the matched key is the row's last
        # value) made by C-level maps, no Python frame per row
        records = map(dict, map(zip, repeat(names), every))
        matched = list(map(itemgetter(-1), every))
        found: dict[Any, list[Row]]
        if len(set(matched)) == len(matched):  # one row a key (a lookup by a unique key)
            found = dict(zip(matched, map(list, zip(records)), strict=True))
        else:
            found = {}
            for key, record in zip(matched, records, strict=True):
                group = found.get(key)
                if group is None:
                    found[key] = [record]
                else:
                    group.append(record)
        # :func:`_per_key`, written out; no row's key is None (NULL is in no IN list)
        return list(map(list, map(found.get, keys, repeat(()))))

    async def lookup_many_columns(
        self, table: str, lookups: Sequence[KeyLookup], columns: Sequence[str]
    ) -> list[list[list[Row]]]:
        """One statement per ``max_batch_size`` keys for all the lookups together
        (``a IN (...) OR b IN (...)``), each row read once however many match."""
        if len(lookups) == 1:
            only = lookups[0]
            return [await self.lookup_many(table, only.column, only.keys, columns, only.transform)]
        for lk in lookups:
            if lk.transform not in self._capabilities.lookup_transforms:
                raise QueryError(f"unknown lookup transform '{lk.transform}'")
        wanted = [_distinct(lk.keys) for lk in lookups]
        names = statements.unique(columns)
        used = [*(lk.column for lk in lookups), *names]
        agreed = True
        for lk, keys in zip(lookups, wanted, strict=True):
            if keys:
                agreeing = self._agreeing.get((table, lk.column, lk.transform))
                if agreeing is None:
                    agreeing = await self._agreeing_types(table, lk.column, lk.transform, used)
                agreed = agreed and self._agrees(keys, agreeing)
        if not agreed:
            parts = [
                (lk.column, lk.transform, keys) for lk, keys in zip(lookups, wanted, strict=True)
            ]
            joined = await self._joined(table, parts, names, used)
            return [
                _per_position(found, keys, lk.keys)
                for found, keys, lk in zip(joined, wanted, lookups, strict=True)
            ]
        found: list[dict[Any, list[Row]]] = [{} for _ in lookups]
        if any(wanted):
            chunks = list(_chunks(wanted, self._capabilities.max_batch_size))
            if len(chunks) == 1:  # one statement (most lookups)
                stmt, params = self._lookup_chunk(table, lookups, chunks[0], names)
                _group(await self._rows(table, used, stmt, params), chunks[0], names, found)
            else:
                async with self._connection(table, used) as session:
                    for parts_ in chunks:
                        stmt, params = self._lookup_chunk(table, lookups, parts_, names)
                        _group(await self._all(session, stmt, params), parts_, names, found)
        return [_per_key(found[i], lk.keys) for i, lk in enumerate(lookups)]

    def _lookup_chunk(
        self,
        table: str,
        lookups: Sequence[KeyLookup],
        parts: dict[int, list[Any]],
        names: list[str],
    ) -> tuple[ClauseElement, dict[str, list[Any]]]:
        """The statement and parameters of one chunk of :meth:`lookup_many_columns`."""
        shape = tuple((lookups[i].column, lookups[i].transform) for i in parts)
        stmt = statements.lookup_columns(table, self.options.schema_name, shape, tuple(names))
        params = {f"{statements.KEYS_PARAM}{j}": keys for j, keys in enumerate(parts.values())}
        return stmt, params

    def _agrees(self, keys: Iterable[Any], agreeing: frozenset[type]) -> bool:
        """Whether ``keys`` may be matched to rows in Python: all of the agreeing type,
        or on SQLite all ``bytes`` (a blob equals only a blob, byte for byte, under any
        column's affinity and collation)."""
        types = set(map(type, keys))
        return types == agreeing or (self._backend == "sqlite" and types == {bytes})

    async def _agreeing_types(
        self, table: str, column: str, transform: LookupTransform, used: Sequence[str]
    ) -> frozenset[type]:
        """The key type whose ``==`` with ``column`` (after ``transform``) is the
        database's (:func:`.keys.agreeing`), once the table's columns are read (one
        catalog statement per table, kept for the connector's life)."""
        kinds = self._kinds.get(table)
        if kinds is None:
            stmt = keys_.describe(self._backend, table, self.options.schema_name)
            rows: Sequence[Any] = []
            if stmt is not None:
                self._catalog_statements += 1
                if self._backend == "sqlite":
                    found = await self._sqlite_catalog(stmt)
                    if found is None:  # not read (a writer's lock): join the keys this time
                        return keys_.agreeing(keys_.OTHER)
                    rows = found
                else:
                    with catalog_read():
                        rows = await self._rows(table, used, stmt, None)
            kinds = keys_.kinds(self._backend, rows)
            if not kinds:  # no such table (yet), or not readable: read it again next time
                return keys_.agreeing(keys_.OTHER)
            self._kinds[table] = kinds
        kind = keys_.kind_of(self._backend, kinds, column, transform)
        assert kind is not None
        agreeing = self._agreeing[table, column, transform] = keys_.agreeing(kind)
        return agreeing

    async def _sqlite_catalog(self, stmt: ClauseElement) -> list[Any] | None:
        """``stmt``'s rows on a connection of its own, opened read-only as the pool's
        are and closed after it (the pool's connections, their statement counts and
        their lock waits stay the lookups'); None when the file cannot be opened or
        is locked (without waiting); no rows when the table cannot be read there."""
        sync_engine = self._engine.sync_engine
        dialect = sync_engine.dialect
        compiled = stmt.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        sql = str(compiled)
        check_statement(sql, self.name)
        args = tuple(compiled.params[name] for name in compiled.positiontup or ())
        connect_args, kwargs = dialect.create_connect_args(read_only_url(sync_engine.url))

        def read() -> list[Any] | None:
            connect: Callable[..., sqlite3.Connection] = sqlite3.connect
            try:
                conn = connect(*connect_args, **{**kwargs, "timeout": 0})
            except sqlite3.Error:
                return None  # the lookup's own connection says why
            try:
                conn.execute("PRAGMA query_only = ON")
                rows: list[Any] = conn.execute(sql, args).fetchall()
                return rows
            except sqlite3.Error as exc:
                if locked(exc):
                    return None
                # e.g. a view over a function only the pool's connections have: every
                # column is then one whose keys are joined
                return []
            finally:
                conn.close()

        async with self._bounded():
            return await asyncio.to_thread(read)

    async def _joined(
        self,
        table: str,
        parts: Sequence[tuple[str, LookupTransform, list[Any]]],
        names: list[str],
        used: Sequence[str],
    ) -> list[list[list[Row]]]:
        """Per part (``(column, transform, distinct keys)``), per key, the rows the
        database's ``=`` matched to it: the keys joined as derived tables
        (:mod:`.keys`), ``max_batch_size`` keys in all per statement."""
        found: list[list[list[Row]]] = [[[] for _ in keys] for _, _, keys in parts]
        chunks = list(_slices([keys for _, _, keys in parts], self._capabilities.max_batch_size))
        dialect = self._engine.dialect
        schema = self.options.schema_name
        width = len(names)

        def statement(
            chunk: list[tuple[int, int, list[Any]]],
        ) -> tuple[ClauseElement, dict[str, Any], list[tuple[int, int]]]:
            shapes = []
            params: dict[str, Any] = {}
            places: list[tuple[int, int]] = []
            for j, (i, start, keys) in enumerate(chunk):
                name, transform = parts[i][0], parts[i][1]
                cast_to = keys_.cast_of(self._backend, self._kinds.get(table), name, transform)
                shape, filled, base = keys_.keys_table(self._backend, dialect, j, keys, cast_to)
                shapes.append((name, transform, shape, cast_to))
                params.update(filled)
                places.append((i, start - base))
            return keys_.lookup(table, schema, tuple(shapes), tuple(names)), params, places

        def place(rows: Sequence[Any], places: list[tuple[int, int]]) -> None:
            several = len(places) > 1  # a column says which part a row answers
            for row in rows:
                i, offset = places[row[width] if several else 0]
                found[i][offset + row[-1]].append(dict(zip(names, row, strict=False)))

        if len(chunks) == 1:
            stmt, params, places = statement(chunks[0])
            place(await self._rows(table, used, stmt, params), places)
        else:
            async with self._connection(table, used) as session:
                for chunk in chunks:
                    stmt, params, places = statement(chunk)
                    place(await self._all(session, stmt, params), places)
        return found

    async def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        """Stream rows from a server-side cursor; ``aclose()`` it to stop early."""
        if request.limit is not None and request.limit < 0:
            raise QueryError("limit must not be negative")
        schema = self.options.schema_name
        # the direct path binds the values into a statement built once per shape
        bound = statements.bound_scan(request.table, schema, request) if self._direct else None
        stmt, params = bound or (
            statements.scan(statements.table_ref(request.table, schema), request),
            None,
        )
        if request.limit == 0:
            return
        names = statements.unique(request.columns)
        used = [*names, *(f.column for f in request.filters), *(s.column for s in request.order_by)]
        async with self._connection(request.table, used) as session:
            if isinstance(session, DirectSession):
                chunks = self._direct_chunks(session, stmt, params, request.limit)
            else:  # never with bound values: only the direct path binds them
                chunks = self._streamed_chunks(session, stmt)
            async with aclosing(chunks):
                async for rows in chunks:
                    for row in rows:
                        yield dict(zip(names, row, strict=False))

    async def _direct_chunks(
        self,
        session: DirectSession,
        stmt: ClauseElement,
        params: Mapping[str, Any] | None,
        limit: int | None,
    ) -> AsyncGenerator[Sequence[Any], None]:
        """The direct path's scan: one hop when the limit fits in a chunk."""
        if limit is not None and limit <= STREAM_CHUNK:
            async with self._bounded():
                rows = await session.all(stmt, params)
            yield rows
            return
        async with self._bounded():
            rows = await session.first_chunk(stmt, STREAM_CHUNK, params)
        while rows:
            yield rows
            if len(rows) < STREAM_CHUNK:
                return
            async with self._bounded():
                rows = await session.chunk(STREAM_CHUNK)

    async def _streamed_chunks(
        self, session: _AlchemySession, stmt: Any
    ) -> AsyncGenerator[Sequence[Any], None]:
        """A server-side cursor through SQLAlchemy, ``STREAM_CHUNK`` rows a fetch."""
        conn = session.conn
        exhausted = False
        try:
            if self._backend == "postgresql":
                # asyncpg's server-side cursors live inside a transaction.
                await conn.execution_options(
                    isolation_level="READ COMMITTED", postgresql_readonly=True
                )
            streamed = stmt.execution_options(yield_per=STREAM_CHUNK)
            async with self._bounded():
                result = await session.locked_retry(lambda: conn.stream(streamed))
            while True:
                async with self._bounded():
                    rows = await result.fetchmany(STREAM_CHUNK)
                if not rows:
                    exhausted = True
                    break
                yield rows
        finally:
            if not exhausted and self._backend == "mysql":
                # Closing an unfinished MySQL stream would read it to the end.
                await conn.invalidate()

    async def aggregate(
        self,
        table: str,
        group_by: Sequence[str],
        aggregates: Sequence[Aggregate],
        filters: Sequence[Filter] = (),
    ) -> list[Row]:
        schema = self.options.schema_name
        used = [*group_by, *(a.column for a in aggregates if a.column)]
        used += [f.column for f in filters]
        used += [f.column for a in aggregates for f in a.where]
        keyed = _keyed(group_by, filters)
        if keyed is not None:
            listed = filters[keyed]
            wanted = _distinct(listed.value)
            agreeing = self._agreeing.get((table, listed.column, "exact"))
            if agreeing is None:
                agreeing = await self._agreeing_types(table, listed.column, "exact", used)
            if wanted and not self._agrees(wanted, agreeing):
                return await self._keyed_aggregate(
                    table, group_by, aggregates, filters, keyed, wanted, used
                )
        # the direct path binds the values into a statement built once per shape
        bound = (
            statements.bound_aggregate(table, schema, group_by, aggregates, filters)
            if self._direct
            else None
        )
        if bound is None:
            tbl = statements.table_ref(table, schema)
            stmt, names = statements.aggregate(tbl, group_by, aggregates, filters)
            params = None
        else:
            stmt, names, params = bound
        rows = await self._rows(table, used, stmt, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def _keyed_aggregate(
        self,
        table: str,
        group_by: Sequence[str],
        aggregates: Sequence[Aggregate],
        filters: Sequence[Filter],
        keyed: int,
        wanted: list[Any],
        used: Sequence[str],
    ) -> list[Row]:
        """:meth:`aggregate` grouped by the keys ``filters[keyed]`` lists (``wanted``,
        without repeats) as the database matches them: a group per key, the key in
        the grouped column (:func:`.keys.aggregate`)."""
        listed = filters[keyed].column
        cast_to = keys_.cast_of(self._backend, self._kinds.get(table), listed, "exact")
        dialect = self._engine.dialect
        shape, params, base = keys_.keys_table(self._backend, dialect, 0, wanted, cast_to)
        stmt, names = keys_.aggregate(
            table, self.options.schema_name, group_by, aggregates, filters, keyed, shape, cast_to
        )
        rows = await self._rows(table, used, stmt, params)
        at = names.index(listed)
        out = []
        for row in rows:
            record = dict(zip(names, row, strict=True))
            record[listed] = wanted[row[at] - base]
            out.append(record)
        return out

    async def health(self, tables: Sequence[str] = ()) -> Health:
        try:
            async with self._bounded(), self._engine.connect() as conn:
                watch = await self._watch(conn)
                started = time.perf_counter()
                await _locks_waited(watch, lambda: conn.execute(select(1)))
                latency = (time.perf_counter() - started) * 1000
                found = await _locks_waited(
                    watch, lambda: conn.run_sync(self._existing_tables, list(tables))
                )
        except ConnectorError as exc:
            return Health(ok=False, detail=exc.reason)
        except Exception as exc:
            return Health(ok=False, detail=self._failure(exc).reason)
        missing = [t for t, ok in found.items() if not ok]
        detail = f"missing tables: {', '.join(missing)}" if missing else ""
        return Health(ok=True, latency_ms=latency, detail=detail, tables=found)

    async def write_access(self, tables: Sequence[str]) -> WriteAccess:
        """Write privileges of the configured role on ``tables`` (see :mod:`.privileges`)."""
        if self._backend == "sqlite":
            return WriteAccess(
                can_write=False, detail="the file is opened read-only (mode=ro, query_only)"
            )
        if self._backend not in ("postgresql", "mysql"):
            return WriteAccess(None, f"privileges are not checked on {self._backend}")
        try:
            async with self._bounded(), self._engine.connect() as conn:
                role = await privileges.role_name(conn, self._backend)
                if self._backend == "postgresql":
                    grants = await privileges.postgres_write_grants(
                        conn, tables, self.options.schema_name
                    )
                else:
                    database = self.options.schema_name or self._url.database or ""
                    grants = await privileges.mysql_write_grants(conn, tables, database)
        except ConnectorError as exc:
            return WriteAccess(None, f"could not check the privileges: {exc.reason}")
        except Exception as exc:
            if not is_source_failure(exc):
                raise
            return WriteAccess(None, f"could not check the privileges: {self._failure(exc).reason}")
        if not grants:
            return WriteAccess(False, f"role '{role}' can only read these tables")
        held = "; ".join(f"{', '.join(p)} on {t}" for t, p in grants.items())
        return WriteAccess(True, f"role '{role}' can {held}", grants)

    def _existing_tables(self, conn: Connection, tables: list[str]) -> dict[str, bool]:
        inspector = inspect(conn)
        return {t: inspector.has_table(t, schema=self.options.schema_name) for t in tables}

    async def aclose(self) -> None:
        if self._direct is not None:
            self._direct.close()
        await self._engine.dispose()

    def _connection(
        self, table: str, columns: Sequence[str]
    ) -> AbstractAsyncContextManager[Session]:
        """A pooled connection; source failures inside become connector errors."""
        if self._direct is not None:
            return _DirectLease(self, self._direct, table, columns)
        return self._engine_connection(table, columns)

    @asynccontextmanager
    async def _engine_connection(
        self, table: str, columns: Sequence[str]
    ) -> AsyncIterator[Session]:
        try:
            async with self._bounded():
                conn = await self._engine.connect().start()
            try:
                watch = ready_watch(conn) if self._backend == "sqlite" else None
                if watch is None and self._backend == "sqlite":
                    async with self._bounded():  # a new connection's setup: three hops
                        watch = await new_watch(conn)
                yield _AlchemySession(conn, watch)
            finally:
                await conn.close()
        except Exception as exc:
            failure = await self._failed(exc, table, columns)
            if failure is None:
                raise
            raise failure from exc

    async def _watch(self, conn: AsyncConnection) -> Watch | None:
        """SQLite's watch of ``conn`` (:mod:`.engine_sqlite`), set up on its first use;
        None on other engines."""
        if self._backend != "sqlite":
            return None
        return ready_watch(conn) or await new_watch(conn)

    async def _failed(
        self, exc: Exception, table: str, columns: Sequence[str]
    ) -> ConnectorError | None:
        """The connector error a failure inside :meth:`_connection` becomes, or None
        when it stays as it is (already one, or not the source's failure)."""
        if isinstance(exc, ConnectorError | QueryError):
            return None
        if not (isinstance(exc, TimeoutError) or is_source_failure(exc)):
            return None
        return await self._explain(exc, table, columns)

    def _bounded(self) -> _Bounded:
        """``options.timeout``, cut to the time left before the request's deadline;
        :class:`DeadlineExceeded` when the deadline is what ran out."""
        return _Bounded(self.name, self.options.timeout)

    async def _rows(
        self,
        table: str,
        columns: Sequence[str],
        stmt: ClauseElement,
        params: Mapping[str, Any] | None,
    ) -> Sequence[Any]:
        """Every row of one statement on a pooled connection: :meth:`_all` inside
        :meth:`_connection`, written out (one frame, not five) on the direct path
        when a connection is idle, as most statements find one: the same release
        (not reused after a driver error) and the same connector errors."""
        direct = self._direct
        session = None if direct is None else direct.idle()
        if session is None:
            async with self._connection(table, columns) as lent:
                return await self._all(lent, stmt, params)
        assert direct is not None
        try:
            rows = await session.all(stmt, params, self.options.timeout)
        except BaseException as exc:
            direct.release(session, not isinstance(exc, sqlite3.Error))
            if isinstance(exc, Exception):
                failure = await self._failed(exc, table, columns)
                if failure is not None:
                    raise failure from exc
            raise
        direct.release(session)
        return rows

    async def _all(
        self, session: Session, stmt: ClauseElement, params: Mapping[str, Any] | None
    ) -> Sequence[Any]:
        """Every row of one statement, bounded by ``options.timeout`` and the
        request's deadline (:meth:`_bounded`; the direct path bounds it itself,
        without a timer per statement)."""
        if isinstance(session, DirectSession):
            return await session.all(stmt, params, self.options.timeout)
        async with self._bounded():
            return await session.all(stmt, params)

    async def _explain(
        self, exc: BaseException, table: str, columns: Sequence[str]
    ) -> ConnectorError:
        """The error for ``exc``: a named missing table/column when that is the cause."""
        if is_schema_error(exc):
            try:
                async with self._bounded(), self._engine.connect() as conn:
                    watch = await self._watch(conn)
                    mismatch = await _locks_waited(
                        watch, lambda: conn.run_sync(self._find_missing, table, list(columns))
                    )
            except Exception:
                mismatch = None
            if mismatch is not None:
                return mismatch
        return self._failure(exc)

    def _failure(self, exc: BaseException) -> ConnectorError:
        return translate(exc, self.name, self._url, self.options.timeout)

    def _find_missing(
        self, conn: Connection, table: str, columns: list[str]
    ) -> SchemaMismatch | None:
        inspector = inspect(conn)
        schema = self.options.schema_name
        where = f"{schema}.{table}" if schema else table
        if not inspector.has_table(table, schema=schema):
            return SchemaMismatch(f"table '{where}' does not exist", source=self.name, table=table)
        known = {c["name"] for c in inspector.get_columns(table, schema=schema)}
        fold: Callable[[str], str] = str.lower if self._backend == "mysql" else str
        known = {fold(k) for k in known}
        for name in columns:
            if fold(name) not in known:
                return SchemaMismatch(
                    f"column '{where}.{name}' does not exist",
                    source=self.name,
                    table=table,
                    column=name,
                )
        return None


class _AlchemySession:
    """A connection of SQLAlchemy's async engine lent to one operation."""

    def __init__(self, conn: AsyncConnection, watch: Watch | None) -> None:
        self.conn = conn
        self.watch = watch
        """SQLite's (:mod:`connectors.sql.engine_sqlite`); None on other engines."""

    async def all(self, stmt: Any, params: Mapping[str, Any] | None = None) -> Sequence[Any]:
        result = await self.locked_retry(lambda: self.conn.execute(stmt, params))
        rows: Sequence[Any] = result.all()
        return rows

    def locked_retry(self, start: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """``start()``; on SQLite tried again while the file is locked."""
        return _locks_waited(self.watch, start)


def _locks_waited(watch: Watch | None, start: Callable[[], Awaitable[T]]) -> Awaitable[T]:
    """``start()``; with a SQLite ``watch`` tried again while the file is locked."""
    if watch is None:
        return start()
    return waiting_for_locks(start, watch.busy_wait)


Session = DirectSession | _AlchemySession


def _per_key(found: dict[Any, list[Row]], keys: Sequence[Any]) -> list[list[Row]]:
    """Each key's rows (a list of its own), in key order; most keys match nothing."""
    found.pop(None, None)  # a None key matches nothing
    # a list of its own for each key (``list`` of its rows, or of none), in C
    return list(map(list, map(found.get, keys, repeat(()))))


def _per_position(
    found: list[list[Row]], wanted: list[Any], keys: Sequence[Any]
) -> list[list[Row]]:
    """:func:`_per_key` of rows found per position in ``wanted`` (``keys`` without
    repeats or nulls)."""
    return _per_key(dict(zip(wanted, found, strict=True)), keys)


def _group(
    rows: Sequence[Any],
    parts: dict[int, list[Any]],
    names: list[str],
    found: list[dict[Any, list[Row]]],
) -> None:
    """Each row under every lookup key it matched (a row may match several)."""
    wanted = [(i, set(keys)) for i, keys in parts.items()]
    width = len(names)
    for row in rows:
        record: Row | None = None
        for j, (i, keys) in enumerate(wanted):
            key = row[width + j]
            if key in keys:
                record = record or dict(zip(names, row, strict=False))
                found[i].setdefault(key, []).append(record)


def _slices(wanted: list[list[Any]], size: int) -> Iterator[list[tuple[int, int, list[Any]]]]:
    """:func:`_chunks` that says where each slice starts: per chunk, ``(lookup index,
    start, keys)``, at most ``size`` keys in all."""
    chunk: list[tuple[int, int, list[Any]]] = []
    room = size
    for i, keys in enumerate(wanted):
        start = 0
        while start < len(keys):
            part = keys[start : start + room]
            chunk.append((i, start, part))
            start += len(part)
            room -= len(part)
            if not room:
                yield chunk
                chunk, room = [], size
    if chunk:
        yield chunk


def _keyed(group_by: Sequence[str], filters: Sequence[Filter]) -> int | None:
    """The first filter that lists keys (``in``) of a grouped column, if any."""
    for i, f in enumerate(filters):
        if f.op == "in" and f.column in group_by and type(f.value) in (list, tuple):
            return i
    return None


def _distinct(keys: Iterable[Any]) -> list[Any]:
    """``keys`` without repeats or nulls, in order."""
    found = dict.fromkeys(keys)
    found.pop(None, None)
    return list(found)


def _chunks(wanted: list[list[Any]], size: int) -> Iterator[dict[int, list[Any]]]:
    """Lookup index -> keys, at most ``size`` keys in all per chunk."""
    if sum(map(len, wanted)) <= size:
        yield {i: keys for i, keys in enumerate(wanted) if keys}
        return
    chunk: dict[int, list[Any]] = {}
    room = size
    for i, keys in enumerate(wanted):
        start = 0
        while start < len(keys):
            part = keys[start : start + room]
            chunk[i] = part
            start += len(part)
            room -= len(part)
            if not room:
                yield chunk
                chunk, room = {}, size
    if chunk:
        yield chunk


class _DirectLease:
    """:meth:`SQLConnector._connection` on the direct path: a class, not a
    generator-based context manager, as it wraps every statement. The
    connection goes back to the pool however the block ends (unusable after a
    driver error); a source failure becomes a connector error."""

    __slots__ = ("_columns", "_connector", "_direct", "_session", "_table")

    def __init__(
        self, connector: SQLConnector, direct: DirectSQLite, table: str, columns: Sequence[str]
    ) -> None:
        self._connector = connector
        self._direct = direct
        self._table = table
        self._columns = columns
        self._session: DirectSession | None = None

    async def __aenter__(self) -> DirectSession:
        session = self._direct.idle()
        if session is None:
            connector = self._connector
            try:
                async with connector._bounded():
                    session = await self._direct.acquire()
            except Exception as exc:
                failure = await connector._failed(exc, self._table, self._columns)
                if failure is None:
                    raise
                raise failure from exc
        self._session = session
        return session

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        session = self._session
        assert session is not None
        self._session = None
        self._direct.release(session, not isinstance(exc, sqlite3.Error))
        if isinstance(exc, Exception):
            failure = await self._connector._failed(exc, self._table, self._columns)
            if failure is not None:
                raise failure from exc


class _Bounded:
    """:meth:`SQLConnector._bounded`: a class, not a generator-based context
    manager, as it wraps every statement."""

    __slots__ = ("_deadline", "_name", "_scope", "_timeout")

    def __init__(self, name: str, timeout: float) -> None:
        self._name = name
        self._timeout = timeout
        self._deadline: Deadline | None = None
        self._scope: asyncio.Timeout | None = None

    async def __aenter__(self) -> asyncio.Timeout:
        seconds, self._deadline = time_left(self._timeout)
        if self._deadline is not None and seconds <= 0:
            raise self._deadline.passed(self._name)
        self._scope = asyncio.timeout(seconds)
        return await self._scope.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        scope, deadline = self._scope, self._deadline
        assert scope is not None
        try:
            await scope.__aexit__(kind, exc, tb)
        except TimeoutError:
            if deadline is None or not scope.expired():
                raise
            raise deadline.exceeded(self._name) from None
        if isinstance(exc, TimeoutError) and deadline is not None and scope.expired():
            raise deadline.exceeded(self._name) from None
