"""A per-source call cache around any connector (aiocache: memory or Redis).

:class:`CachingConnector` wraps a connector and is one itself. It is the only
state custview keeps about source data, and it keeps it for a TTL:

* **lookups are cached per key** — ``(source, table, column, transform,
  columns, key)`` — so overlapping batches share entries and only the keys
  that are missing go to the source, in one call;
* **aggregates are cached per whole call**; scans stream and are not cached;
* **single-flight**: identical lookups in flight at once (same key, same
  scope) reach the source once, the others wait for that answer;
* **serve-stale-on-error**: when the source fails (unavailable, timed out,
  circuit open), entries that expired less than ``stale_ttl`` seconds ago
  answer instead, if every asked key has one, and are reported as stale;
* **stale-while-revalidate**: an entry asked for less than ``revalidate``
  seconds after it expired answers at once (reported as stale) while one
  background call, outside the request, refreshes it — a hot key never makes
  a caller wait for the source;
* **authorisation scope**: every key includes :data:`cache_scope`, so one
  caller's view is never served to a caller with other (less) access;
* **invalidation across replicas**: entries live in a namespace per source and
  their keys include generation counters stored in the cache itself (one per
  source, one per table); :meth:`CachingConnector.invalidate` bumps one, and
  every replica sharing the Redis stops seeing the old entries at once (they
  expire on their own).

Freshness is recorded per request in :data:`freshness` (opened with
:func:`freshness_scope`): for each source, how many entries (a lookup key,
an aggregate call, a scan) came live, from the cache, or stale from the
cache, and the age of the oldest cached one.

Values are stored as tagged JSON, never pickle (:mod:`connectors.cache_store`).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from connectors._base import (
    Connector,
    KeyLookup,
    Row,
    ScanRequest,
)
from connectors._scope import VarScope
from connectors._wrapping import AggregateCall, Call, ConnectorWrapper, Lookup, relay, wrapper_in
from connectors.cache_store import dumps, hold, release
from connectors.errors import (
    CircuitOpen,
    SourceTimeout,
    SourceUnavailable,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

Origin = Literal["live", "cached", "stale"]
Freshness = dict[str, dict[str, float]]

_SOURCE_FAILURES = (SourceUnavailable, SourceTimeout, CircuitOpen)
"""The failures an older entry may stand in for; errors in the request may not."""

cache_scope: ContextVar[str] = ContextVar("custview_cache_scope", default="public")
"""The caller's authorisation scope; part of every cache key. Governance sets it
per request (e.g. a hash of the caller's roles); the default is ``public``."""

freshness: ContextVar[Freshness | None] = ContextVar("custview_freshness", default=None)
"""Per request: ``{source: {"live": n, "cached": n, "stale": n, "max_age_s": x}}``;
``None`` outside a :func:`freshness_scope`."""


def freshness_scope() -> VarScope[Freshness]:
    """Collect freshness for the calls made inside (and in tasks started inside);
    ``with`` gives the report."""
    report: Freshness = {}
    return VarScope(freshness, report)


def _record(source: str, origin: Origin, count: int, age: float = 0.0) -> None:
    report = freshness.get()
    if report is None or count <= 0:
        return
    entry = report.setdefault(source, {"live": 0, "cached": 0, "stale": 0, "max_age_s": 0.0})
    entry[origin] += count
    if origin != "live":
        entry["max_age_s"] = max(entry["max_age_s"], round(max(age, 0.0), 3))


class CacheOptions(BaseModel):
    """``sources.<name>.cache`` in the settings file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: float = Field(default=0, ge=0)
    """Seconds a cached answer is fresh; 0 disables the cache for this source."""
    tables: dict[str, float] = Field(default_factory=dict)
    """Per-table TTL overrides in seconds (0 disables caching of that table)."""
    stale_ttl: float = Field(default=300, ge=0)
    """Seconds after expiry an entry may still answer when the source fails."""
    revalidate: float = Field(default=0, ge=0)
    """Seconds after expiry an entry still answers at once (stale) while a
    background call refreshes it (stale-while-revalidate); 0 turns it off."""

    def ttl_for(self, table: str) -> float:
        return self.tables.get(table, self.ttl)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 or any(t > 0 for t in self.tables.values())


# --- the wrapper ---------------------------------------------------------------------

_Result = tuple[Any, Origin, float]
"""A value with where it came from and its age in seconds."""


def _digest(*parts: Any) -> str:
    return hashlib.sha256(dumps(parts).encode()).hexdigest()[:40]


class CachingConnector(ConnectorWrapper):
    """``inner`` behind a TTL cache with single-flight and serve-stale-on-error."""

    kind = "caching"

    def __init__(self, inner: Connector, options: CacheOptions, cache: Any) -> None:
        super().__init__(inner)
        self.policy = options
        self.cache = cache
        hold(cache)
        base = getattr(cache, "namespace", None) or "custview"
        self.namespace = f"{base}:{inner.name}:"
        self._flights: dict[str, asyncio.Future[_Result]] = {}
        self._refreshing: set[asyncio.Task[None]] = set()
        self.observer: Callable[[str, Origin, int], None] | None = None
        """Told ``(source, origin, count)`` for every answer: ``live`` is a miss,
        ``cached`` a hit, ``stale`` an older entry standing in (metrics)."""

    def _note(self, origin: Origin, count: int, age: float = 0.0) -> None:
        _record(self.name, origin, count, age)
        if self.observer is not None and count > 0:
            self.observer(self.name, origin, count)

    # --- the cache, never fatal ----------------------------------------------------

    async def _get_many(self, keys: list[str]) -> list[Any]:
        try:
            return list(await self.cache.multi_get(keys, namespace=self.namespace))
        except Exception as exc:  # the cache is an optimisation: on failure, read live
            log.warning("cache read failed for source %r: %s", self.name, exc)
            return [None] * len(keys)

    async def _set_many(self, pairs: list[tuple[str, Any]], ttl: float) -> None:
        try:
            await self.cache.multi_set(pairs, ttl=float(ttl), namespace=self.namespace)
        except Exception as exc:
            log.warning("cache write failed for source %r: %s", self.name, exc)

    async def _generation(self, table: str) -> str:
        source_gen, table_gen = await self._get_many(["!gen", f"!gen:{table}"])
        return f"{source_gen or 0}.{table_gen or 0}"

    async def invalidate(self, table: str | None = None) -> None:
        """Forget this source's cached answers (or one table's), on every replica."""
        key = "!gen" if table is None else f"!gen:{table}"
        await self.cache.increment(key, 1, namespace=self.namespace)

    async def forget(self, table: str, column: str, keys: Iterable[Any]) -> int:
        """Drop, on every replica, the entries of lookups of ``table`` by ``column``
        for any of ``keys`` (in every scope, for every column list and comparison),
        and of aggregates filtered by ``column`` equal to or in one of them.

        A marker per key, stamped now, outlives every entry it may drop; an entry
        stored before its marker no longer answers (not even stale).
        """
        stamp = time.time()
        pairs = [(_mark(table, column, k), stamp) for k in dict.fromkeys(keys)]
        if pairs:
            await self.cache.multi_set(pairs, ttl=self._longest(), namespace=self.namespace)
        return len(pairs)

    def _longest(self) -> float:
        """Seconds the longest-lived entry of this source may be kept."""
        ttl = max([self.policy.ttl, *self.policy.tables.values()])
        return ttl + max(self.policy.stale_ttl, self.policy.revalidate) + 1

    async def _unforgotten(self, keys: list[str], marks: list[list[str]] | None) -> list[Any]:
        """The entries of ``keys``, ``None`` for those a newer marker drops; entries
        and markers are read in one call."""
        guard = sorted({m for ms in marks for m in ms}) if marks else []
        found = await self._get_many(keys + guard)
        entries = found[: len(keys)]
        stamps = {m: s for m, s in zip(guard, found[len(keys) :], strict=True) if s is not None}
        if not stamps or marks is None:
            return entries
        return [
            None
            if isinstance(entry, dict)
            and any(float(stamps.get(m, -1)) >= float(entry.get("at", 0)) for m in ms)
            else entry
            for entry, ms in zip(entries, marks, strict=True)
        ]

    def _key(self, generation: str, table: str, *call: Any) -> str:
        return f"e:{table}:{_digest(generation, cache_scope.get(), table, *call)}"

    # --- the core: fresh entries, single-flight, one source call, stale fallback ----

    async def _resolve(
        self,
        table: str,
        keys: list[str],
        fetch: Callable[[list[int]], Awaitable[list[Any]]],
        marks: list[list[str]] | None = None,
    ) -> list[_Result]:
        """Answer each of ``keys`` (cache keys, unique) from the cache or the source.

        ``fetch`` gets the positions of the keys to read live and returns their
        values in that order, in one source call. ``marks[i]`` are the markers
        (:meth:`forget`) that drop ``keys[i]``'s entry when newer than it.
        """
        ttl = self.policy.ttl_for(table)
        now = time.time()
        entries = await self._unforgotten(keys, marks)
        results: dict[int, _Result] = {}
        stale: dict[int, _Result] = {}
        own: list[int] = []
        joined: dict[int, asyncio.Future[_Result]] = {}
        refresh: list[int] = []
        for i, (key, entry) in enumerate(zip(keys, entries, strict=True)):
            flight = self._flights.get(key)
            if isinstance(entry, dict) and "at" in entry:
                age = now - float(entry["at"])
                if age <= ttl:
                    results[i] = (entry["value"], "cached", age)
                    continue
                if age <= ttl + self.policy.revalidate:
                    results[i] = (entry["value"], "stale", age)
                    if flight is None:
                        refresh.append(i)
                    continue
                if age <= ttl + self.policy.stale_ttl:
                    stale[i] = (entry["value"], "stale", age)
            if flight is not None:
                joined[i] = flight
            else:
                own.append(i)
        if refresh:
            self._revalidate([keys[i] for i in refresh], ttl, _subset(fetch, refresh))
        if own:
            results.update(await self._fetch(keys, own, stale, ttl, fetch))
        retry: list[int] = []
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        for i, flight in joined.items():
            try:
                value, origin, age = await asyncio.shield(flight)
            except asyncio.CancelledError:
                if not flight.cancelled():
                    raise  # we were cancelled, not the call we joined
                if task is not None and task.cancelling() > cancelling:
                    raise  # both were (one request cancelled): no call anew for nobody
                retry.append(i)
                continue
            results[i] = (_copy(value), origin, age)
        if retry:
            again = await self._resolve(
                table,
                [keys[i] for i in retry],
                _subset(fetch, retry),
                [marks[i] for i in retry] if marks is not None else None,
            )
            results.update(zip(retry, again, strict=True))
        return [results[i] for i in range(len(keys))]

    def _claim(self, keys: list[str], own: list[int]) -> dict[int, asyncio.Future[_Result]]:
        """Flights for ``keys[i]`` for each ``i`` in ``own``: from now on, identical
        calls wait for this one."""
        loop = asyncio.get_running_loop()
        flights = {i: loop.create_future() for i in own}
        for i, flight in flights.items():
            self._flights[keys[i]] = flight
        return flights

    async def _fetch(
        self,
        keys: list[str],
        own: list[int],
        stale: dict[int, _Result],
        ttl: float,
        fetch: Callable[[list[int]], Awaitable[list[Any]]],
        flights: dict[int, asyncio.Future[_Result]] | None = None,
    ) -> dict[int, _Result]:
        if flights is None:
            flights = self._claim(keys, own)
        try:
            try:
                values = await fetch(own)
            except _SOURCE_FAILURES:
                if not all(i in stale for i in own):
                    raise
                answered = {i: stale[i] for i in own}
            else:
                stored = time.time()
                await self._set_many(
                    [
                        (keys[i], {"at": stored, "value": v})
                        for i, v in zip(own, values, strict=True)
                    ],
                    ttl + max(self.policy.stale_ttl, self.policy.revalidate),
                )
                answered = {i: (v, "live", 0.0) for i, v in zip(own, values, strict=True)}
            for i, flight in flights.items():
                flight.set_result(answered[i])
            return answered
        except BaseException as exc:
            for flight in flights.values():
                if flight.done():
                    continue
                if isinstance(exc, Exception):
                    flight.set_exception(exc)
                    flight.exception()  # retrieved: joiners re-raise it, nobody else must
                else:
                    flight.cancel()
            raise
        finally:
            for i, flight in flights.items():
                if self._flights.get(keys[i]) is flight:
                    del self._flights[keys[i]]

    def _revalidate(
        self, keys: list[str], ttl: float, fetch: Callable[[list[int]], Awaitable[list[Any]]]
    ) -> None:
        """Refresh ``keys`` in the background, as one single-flight source call.

        It runs in a context of its own: not bound by the request's deadline (the
        source's timeout bounds it) and not part of the request's explain plan.
        """

        positions = list(range(len(keys)))
        flights = self._claim(keys, positions)  # before the task starts: single-flight

        async def refresh() -> None:
            try:
                await self._fetch(keys, positions, {}, ttl, fetch, flights)
            except Exception as exc:  # the stale entry keeps answering until it ends
                log.warning("refreshing cached answers of source %r failed: %s", self.name, exc)

        task = asyncio.get_running_loop().create_task(refresh(), context=contextvars.Context())
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def settle(self) -> None:
        """Wait for the background refreshes started so far."""
        while self._refreshing:
            await asyncio.gather(*self._refreshing, return_exceptions=True)

    # --- the contract --------------------------------------------------------------

    async def lookup_many_columns(
        self, table: str, lookups: Sequence[KeyLookup], columns: Sequence[str]
    ) -> list[list[list[Row]]]:
        # cached per column and key: one lookup_many per column, each answered here
        return await Connector.lookup_many_columns(self, table, lookups, columns)

    async def around(self, call: Call[T]) -> T:
        if self.policy.ttl_for(call.table) <= 0 or (isinstance(call, Lookup) and not call.keys):
            result = await call.run(self.inner)
            self._note("live", len(call.keys) if isinstance(call, Lookup) else 1)
            return result
        if isinstance(call, Lookup):
            return cast(T, await self._lookup(call))
        assert isinstance(call, AggregateCall)
        return cast(T, await self._aggregate(call))

    async def _lookup(self, call: Lookup) -> list[list[Row]]:
        table, column, keys, transform = call.table, call.column, call.keys, call.transform
        generation = await self._generation(table)
        cols = list(call.columns)
        cache_keys = [
            self._key(generation, table, "lookup", column, transform, cols, k) for k in keys
        ]
        first: dict[str, Any] = {}
        for cache_key, key in zip(cache_keys, keys, strict=True):
            first.setdefault(cache_key, key)
        unique = list(first)

        async def fetch(positions: list[int]) -> list[Any]:
            wanted = [first[unique[p]] for p in positions]
            return list(await replace(call, keys=wanted, columns=cols).run(self.inner))

        marks = [[_mark(table, column, first[k])] for k in unique]
        resolved = dict(zip(unique, await self._resolve(table, unique, fetch, marks), strict=True))
        for origin in ("live", "cached", "stale"):
            hits = [resolved[k] for k in unique if resolved[k][1] == origin]
            self._note(origin, len(hits), max((age for _, _, age in hits), default=0.0))
        out: list[list[Row]] = []
        seen: set[str] = set()
        for key in cache_keys:
            rows = resolved[key][0]
            out.append(_copy(rows) if key in seen else rows)
            seen.add(key)
        return out

    def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        self._note("live", 1)
        return relay(self.inner.scan(request))

    async def _aggregate(self, call: AggregateCall) -> list[Row]:
        table, filters = call.table, call.filters
        generation = await self._generation(table)
        key = self._key(
            generation,
            table,
            "aggregate",
            list(call.group_by),
            [
                [a.fn, a.column, a.alias, [[f.column, f.op, f.value] for f in a.where]]
                for a in call.aggregates
            ],
            [[f.column, f.op, f.value] for f in filters],
        )

        async def fetch(positions: list[int]) -> list[Any]:
            return [await call.run(self.inner)]

        marks = [
            _mark(table, f.column, v)
            for f in filters
            if f.op in ("eq", "in")
            for v in (f.value if f.op == "in" else [f.value])
        ]
        [(rows, origin, age)] = await self._resolve(table, [key], fetch, [marks] if marks else None)
        self._note(origin, 1, age)
        return list(rows)

    async def aclose(self) -> None:
        for task in self._refreshing:
            task.cancel()
        await asyncio.gather(*self._refreshing, return_exceptions=True)
        for flight in self._flights.values():
            flight.cancel()  # a refresh cancelled before it started: its waiters go on
        try:
            await self.inner.aclose()
        finally:
            await release(self.cache)


def _mark(table: str, column: str, key: Any) -> str:
    """The marker that drops entries read by ``column`` = ``key`` in ``table``."""
    return f"!k:{table}:{_digest(column, key)}"


def _copy(value: Any) -> Any:
    """A copy of cached rows for a second caller: rows are dicts callers may change."""
    if isinstance(value, list):
        return [dict(r) if isinstance(r, dict) else _copy(r) for r in value]
    return value


def _subset(
    fetch: Callable[[list[int]], Awaitable[list[Any]]], positions: list[int]
) -> Callable[[list[int]], Awaitable[list[Any]]]:
    def narrowed(inner: list[int]) -> Awaitable[list[Any]]:
        return fetch([positions[i] for i in inner])

    return narrowed


def cache_in(connector: Connector) -> CachingConnector | None:
    """The cache wrapper in a chain of wrappers, if the source is cached."""
    return wrapper_in(connector, CachingConnector)
