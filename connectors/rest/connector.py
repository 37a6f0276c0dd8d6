"""The REST connector: JSON APIs read over HTTP, resources as tables.

Each configured resource (:class:`~connectors.rest.options.ResourceOptions`)
is a table whose columns are dotted JSON paths into its records. The
connector pushes down exactly what a resource declares — the filters its
query parameters evaluate, its sort parameter, its lookups — and refuses
the rest with :class:`~connectors.errors.UnsupportedOperation`, so the
planner does that work in memory instead of the API doing it differently.

Semantics worth knowing:

* Lookups are ``exact`` and compare text: keys and record values are
  matched after ``str()`` (``42`` finds ``"42"``); a list value matches
  each of its items. Empty keys match nothing and cost no request.
* Lookup answers are paged like scans, so a batch whose matches span
  several pages is complete.
* ``scan`` applies ``timeout`` to each page, not to the whole stream; it
  fetches a page only when the previous one is consumed.
* Declared filters are trusted to mean what the contract says
  (``contains`` ignores case, ``lt`` is strict, ...): declare only those
  the API evaluates that way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Sequence
from functools import partial
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx

from connectors._base import (
    Capabilities,
    Connector,
    ConnectorOptions,
    Health,
    LookupTransform,
    Row,
    ScanRequest,
    WriteAccess,
)
from connectors.conformance.planning import check_request_allowed
from connectors.errors import (
    ConfigError,
    ConnectorError,
    QueryError,
    SchemaMismatch,
    UnsupportedOperation,
)
from connectors.rest.client import SourceClient
from connectors.rest.options import LookupOptions, ResourceOptions, RESTOptions, SortOptions
from connectors.rest.pagination import Fetch, Pager, Query, page_size
from connectors.rest.pushdown import declare, filter_params, sort_params
from connectors.rest.records import key_text, pick, project

T = TypeVar("T")

_UNDECLARED = Capabilities(
    supports_batch_lookup=False,
    supports_sort=False,
    supports_keyset=False,
    supports_limit=True,
    supports_aggregates=False,
)
"""What holds on every resource (each declares more through ``capabilities_for``)."""


class RESTConnector(Connector):
    """A read-only connector for one REST/JSON API over httpx (see the module docstring)."""

    kind = "rest"
    options_model = RESTOptions
    options: RESTOptions
    default_capabilities: ClassVar[Capabilities] = Capabilities(
        supports_batch_lookup=True,
        supports_sort=True,
        supports_keyset=False,
        supports_limit=True,
        supports_aggregates=False,
        lookup_transforms=frozenset({"exact"}),
        max_batch_size=LookupOptions.model_fields["max_batch"].default,
        max_sort_columns=SortOptions.model_fields["max_columns"].default,
    )
    """What a resource can declare: batched ``exact`` lookups and sorting where its
    options configure them, a limit always, never keyset pagination or aggregates.
    Filter operators, sortable and lookup columns exist only per resource
    (:meth:`capabilities_for`); the listing says so (:meth:`describe`)."""

    PER_RESOURCE: ClassVar[tuple[str, ...]] = (
        "filter_operators",
        "column_filter_operators",
        "sortable_columns",
        "max_sort_columns",
        "lookup_columns",
        "max_batch_size",
    )
    """What each resource's options declare (their defaults are shown)."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        described = super().describe()
        if described["capabilities"] is not None:
            described["capabilities"]["declared_per_resource"] = list(cls.PER_RESOURCE)
        return described

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        if not isinstance(options, RESTOptions):
            raise ConfigError(f"source '{name}': the rest connector needs RESTOptions")
        super().__init__(name, options)
        self._http = SourceClient(name, options)
        self._declared = {t: declare(r) for t, r in options.resources.items()}

    @property
    def capabilities(self) -> Capabilities:
        return _UNDECLARED

    def capabilities_for(self, table: str) -> Capabilities:
        return self._declared.get(table, _UNDECLARED)

    def pool_usage(self) -> tuple[int, int] | None:
        """GETs in flight against ``max_concurrency`` (httpx's pool is sized to it)."""
        return self._http.in_flight, self.options.max_concurrency

    @property
    def requests(self) -> int:
        """GET requests sent to the source so far (token requests not included)."""
        return self._http.requests

    @property
    def token_requests(self) -> int:
        """OAuth2 token requests sent so far."""
        return self._http.token_requests

    # --- lookups -----------------------------------------------------------------------

    async def lookup_many(
        self,
        table: str,
        column: str,
        keys: Sequence[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[list[Row]]:
        res = self._resource(table, [column, *columns])
        if transform != "exact":
            raise self._unsupported(table, f"'{transform}' lookups (only exact ones)")
        if column not in res.lookup_columns():
            raise self._unsupported(table, f"lookups by '{column}'")
        texts = [key_text(k) if k is not None else "" for k in keys]
        wanted = list(dict.fromkeys(t for t in texts if t))
        found: dict[str, list[Any]] = {}
        if wanted:
            async with self._http.deadline(f"resource '{table}'") as deadline:
                found = await self._find(table, res, column, wanted, deadline)
        names = list(dict.fromkeys(columns))
        return [[project(r, res.columns, names) for r in found.get(t, ())] for t in texts]

    async def _find(
        self, table: str, res: ResourceOptions, column: str, wanted: list[str], deadline: float
    ) -> dict[str, list[Any]]:
        """Raw records by key text."""
        lookup = res.lookups.get(column)
        if lookup is None:
            records = await _all([self._get_by_key(table, res, k, deadline) for k in wanted])
            return dict(zip(wanted, records, strict=True))
        if lookup.batch:
            step = lookup.max_batch
            groups = [wanted[i : i + step] for i in range(0, len(wanted), step)]
        else:
            groups = [[k] for k in wanted]
        pager = self._pager(table, res, deadline)
        url = self._http.url(res.path)

        async def read(group: list[str]) -> list[Any]:
            params: dict[str, str | Sequence[str]] = dict(res.params)
            sep = lookup.separator
            params[lookup.param] = sep.join(group) if sep is not None else group
            size = page_size(res.pagination, None)
            return [
                r async for page in pager.pages(url, params, res.pagination, size) for r in page
            ]

        by_key: dict[str, list[Any]] = {k: [] for k in wanted}
        for group, records in zip(groups, await _all([read(g) for g in groups]), strict=True):
            asked = set(group)
            for record in records:
                value = pick(record, res.columns[column])
                items = value if isinstance(value, list) else [value]
                for text in {key_text(i) for i in items if i is not None} & asked:
                    by_key[text].append(record)
        return by_key

    async def _get_by_key(
        self, table: str, res: ResourceOptions, key: str, deadline: float
    ) -> list[Any]:
        assert res.get_by_key is not None
        what = f"resource '{table}'"
        path = res.get_by_key.replace(_placeholder(res.get_by_key), quote(key, safe=""))
        response = await self._http.get(
            self._http.url(path), res.params, what=what, deadline=deadline, missing_ok=True
        )
        if response is None:
            return []
        found = pick(self._http.json(response, what), res.record)
        if found is None:
            return []
        return found if isinstance(found, list) else [found]

    # --- scans -------------------------------------------------------------------------

    async def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        """Stream records page by page; ``aclose()`` it to stop early."""
        table = request.table
        used = [*request.columns, *(f.column for f in request.filters)]
        res = self._resource(table, [*used, *(s.column for s in request.order_by)])
        if request.limit is not None and request.limit < 0:
            raise QueryError("limit must not be negative")
        check_request_allowed(self.capabilities_for(table), request, source=self.name)
        params = filter_params(res, request.filters, partial(self._unsupported, table))
        if params is None or request.limit == 0:
            return
        params = {**res.params, **params, **sort_params(res, request.order_by)}
        names = list(dict.fromkeys(request.columns))
        size = page_size(res.pagination, request.limit)
        pages = self._pager(table, res, None).pages(
            self._http.url(res.path), params, res.pagination, size
        )
        left = request.limit
        try:
            async for page in pages:
                for record in page:
                    yield project(record, res.columns, names)
                    if left is not None:
                        left -= 1
                        if left == 0:
                            return
        finally:
            await pages.aclose()

    # --- health and lifecycle ----------------------------------------------------------

    async def health(self, tables: Sequence[str] = ()) -> Health:
        url = self._http.url(self.options.health_path)
        try:
            async with self._http.deadline("health") as deadline:
                started = time.perf_counter()
                await self._http.get(url, None, what="health", deadline=deadline, retry=False)
                latency = (time.perf_counter() - started) * 1000
                found = await _all([self._exists(t, deadline) for t in tables])
        except Exception as exc:
            reason = exc.reason if isinstance(exc, ConnectorError) else type(exc).__name__
            return Health(ok=False, detail=reason)
        status = {t: why is None for t, why in zip(tables, found, strict=True)}
        missing = [f"{t} ({why})" for t, why in zip(tables, found, strict=True) if why]
        detail = f"missing resources: {', '.join(missing)}" if missing else ""
        return Health(ok=True, latency_ms=latency, detail=detail, tables=status)

    async def write_access(self, tables: Sequence[str]) -> WriteAccess:
        return WriteAccess(
            can_write=None,
            detail="sends GET requests only; what its credentials allow is not checked",
        )

    async def _exists(self, table: str, deadline: float) -> str | None:
        """None when ``table``'s resource answers, else why not (``not configured``,
        ``GET /path: HTTP 401``: a refused credential is not a missing resource)."""
        res = self.options.resources.get(table)
        if res is None:
            return "not configured"
        params = dict(res.params)
        p = res.pagination
        size_param = getattr(p, "size_param", None) or getattr(p, "limit_param", None)
        if size_param:
            params[size_param] = "1"
        url = self._http.url(res.path)
        what = f"resource '{table}'"
        try:
            await self._http.get(url, params, what=what, deadline=deadline)
        except ConnectorError as exc:
            return exc.reason.removeprefix(f"{what}: ")
        return None

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- helpers -----------------------------------------------------------------------

    def _resource(self, table: str, columns: Sequence[str]) -> ResourceOptions:
        res = self.options.resources.get(table)
        if res is None:
            raise SchemaMismatch(
                f"resource '{table}' is not configured", source=self.name, table=table
            )
        for name in columns:
            if name not in res.columns:
                raise SchemaMismatch(
                    f"column '{table}.{name}' is not mapped (add it to the resource's columns)",
                    source=self.name,
                    table=table,
                    column=name,
                )
        return res

    def _pager(self, table: str, res: ResourceOptions, deadline: float | None) -> Pager:
        what = f"resource '{table}'"
        return Pager(
            self._fetcher(what, deadline),
            records=res.records,
            source=self.name,
            table=table,
            what=what,
        )

    def _fetcher(self, what: str, deadline: float | None) -> Fetch:
        """GET and decode one page, under ``deadline`` or, without one, a fresh timeout."""

        async def fetch(url: httpx.URL, params: Query) -> tuple[Any, httpx.Response]:
            if deadline is None:
                async with self._http.deadline(what) as own:
                    response = await self._http.get(url, params, what=what, deadline=own)
            else:
                response = await self._http.get(url, params, what=what, deadline=deadline)
            assert response is not None
            return self._http.json(response, what), response

        return fetch

    def _unsupported(self, table: str, what: str) -> UnsupportedOperation:
        return UnsupportedOperation(f"resource '{table}' does not declare {what}", source=self.name)


def _placeholder(template: str) -> str:
    start = template.index("{")
    return template[start : template.index("}", start) + 1]


async def _all(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Run ``calls`` concurrently (the client's semaphore bounds the requests);
    the first failure cancels the rest and is raised as itself."""
    if len(calls) == 1:
        return [await calls[0]]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(c)) for c in calls]
    except BaseExceptionGroup as failed:
        raise _first(failed) from None
    return [t.result() for t in tasks]


async def _awaited(call: Awaitable[T]) -> T:
    return await call


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
