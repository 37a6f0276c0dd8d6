"""Walking a collection page by page, in each style an API may use.

:func:`pages` is an async generator that fetches a page only when the
previous one has been consumed: a reader that stops early (a ``limit``, a
closed export) costs no further request, and only one page is ever held.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from connectors.errors import SchemaMismatch, SourceUnavailable
from connectors.rest.options import (
    CursorPagination,
    LinkPagination,
    NoPagination,
    OffsetPagination,
    PagePagination,
    PaginationOptions,
)
from connectors.rest.records import has, pick

Query = Mapping[str, str | Sequence[str]]
"""Query parameters; a list repeats the parameter."""

Fetch = Callable[[httpx.URL, Query], Awaitable[tuple[Any, httpx.Response]]]
"""GET a URL with query parameters: ``(parsed JSON body, response)``."""


def page_size(paging: PaginationOptions, limit: int | None) -> int | None:
    """Records to ask for per page: fewer than ``page_size`` when ``limit`` needs fewer."""
    if isinstance(paging, NoPagination):
        return None
    sized = getattr(paging, "size_param", None) or getattr(paging, "limit_param", None)
    if limit is not None and sized:
        return max(1, min(paging.page_size, limit))
    return paging.page_size


class Pager:
    """The pages of one resource read; ``what`` and ``source`` name it in errors."""

    def __init__(self, fetch: Fetch, *, records: str, source: str, table: str, what: str) -> None:
        self._fetch = fetch
        self._records = records
        self._source = source
        self._table = table
        self._what = what

    async def pages(
        self, url: httpx.URL, params: Query, paging: PaginationOptions, size: int | None
    ) -> AsyncGenerator[list[Any], None]:
        if isinstance(paging, NoPagination):
            body, _ = await self._fetch(url, params)
            yield self.records(body)
        elif isinstance(paging, PagePagination | OffsetPagination):
            assert size is not None
            async for page in self._numbered(url, params, paging, size):
                yield page
        elif isinstance(paging, CursorPagination):
            assert size is not None
            async for page in self._cursor(url, params, paging, size):
                yield page
        else:
            async for page in self._links(url, params, paging, size):
                yield page

    async def _numbered(
        self,
        url: httpx.URL,
        params: Query,
        paging: PagePagination | OffsetPagination,
        size: int,
    ) -> AsyncGenerator[list[Any], None]:
        position = paging.start if isinstance(paging, PagePagination) else 0
        size_param = paging.size_param if isinstance(paging, PagePagination) else paging.limit_param
        while True:
            query: dict[str, str | Sequence[str]] = {**params, paging.param: str(position)}
            if size_param:
                query[size_param] = str(size)
            body, _ = await self._fetch(url, query)
            found = self.records(body)
            if found:
                yield found
            if len(found) < size:
                return
            position += 1 if isinstance(paging, PagePagination) else len(found)

    async def _cursor(
        self, url: httpx.URL, params: Query, paging: CursorPagination, size: int
    ) -> AsyncGenerator[list[Any], None]:
        cursor: str | None = None
        while True:
            query: dict[str, str | Sequence[str]] = dict(params)
            if paging.limit_param:
                query[paging.limit_param] = str(size)
            if cursor is not None:
                query[paging.param] = cursor
            body, _ = await self._fetch(url, query)
            found = self.records(body)
            if found:
                yield found
            following = pick(body, paging.next)
            if following in (None, "") or not found:
                return
            if str(following) == cursor:
                raise self._stuck("the next cursor repeats the current one")
            cursor = str(following)

    async def _links(
        self, url: httpx.URL, params: Query, paging: LinkPagination, size: int | None
    ) -> AsyncGenerator[list[Any], None]:
        query: dict[str, str | Sequence[str]] = dict(params)
        if paging.limit_param and size is not None:
            query[paging.limit_param] = str(size)
        while True:
            body, response = await self._fetch(url, query)
            found = self.records(body)
            if found:
                yield found
            target = response.links.get("next", {}).get("url")
            if not target or not found:
                return
            following = response.url.join(target)
            if following == response.url:
                raise self._stuck("the next link points at the current page")
            url, query = following, {}  # the link carries its own query

    def records(self, body: Any) -> list[Any]:
        """The record list of one page's body."""
        found = pick(body, self._records)
        if found is None and has(body, self._records):
            return []
        if not isinstance(found, list):
            where = f"'{self._records}'" if self._records else "the top level"
            raise SchemaMismatch(
                f"{self._what}: the answer has no record list at {where}",
                source=self._source,
                table=self._table,
            )
        return found

    def _stuck(self, why: str) -> SourceUnavailable:
        return SourceUnavailable(f"{self._what}: pagination is stuck ({why})", source=self._source)
