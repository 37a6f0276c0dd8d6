"""Clearing the source-call cache: by source, by table, or by customer.

By source or table, a generation counter is bumped (see :mod:`connectors.cache`).
By customer, markers drop every cached answer that read the customer's
records: its member records by id, the lookups by its identity keys (each
pushed-down variant), its relations by parent key, and aggregates (metrics)
filtered by those keys — in every caller's scope, on every replica sharing
the cache. The customer is read twice: the first pass may see cached
records, the second reads them live, so the keys the cache still holds and
the keys the customer has now are both cleared. Cached answers that found
nobody (a lookup by an email no record had yet) and business/household
groupings are left to their TTL.

The gateway's admin endpoint and ``custview cache clear`` both come here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors import QueryError
from connectors.cache import CachingConnector
from resolvers.view import CustomerView, Federation


@dataclass
class Cleared:
    """What a clear reached: per cached source, the keys (or ``*``) dropped."""

    sources: dict[str, int | str] = field(default_factory=dict)
    customer_found: bool = True


def cached_sources(
    federation: Federation, source: str | None = None
) -> dict[str, CachingConnector]:
    """The sources with a cache (only ``source``, if given; a QueryError if unknown)."""
    if source is not None and source not in federation.connectors:
        known = ", ".join(federation.connectors)
        raise QueryError(f"no source '{source}' (known: {known})")
    return {
        name: connector
        for name, connector in federation.connectors.items()
        if source in (None, name) and isinstance(connector, CachingConnector)
    }


async def clear_cache(
    federation: Federation,
    *,
    source: str | None = None,
    table: str | None = None,
    customer: str | None = None,
) -> Cleared:
    """Invalidate cached answers: of ``customer`` (optionally of one ``source``),
    else of ``source`` / ``table`` / everything."""
    cached = cached_sources(federation, source)
    if customer is None:
        for connector in cached.values():
            await connector.invalidate(table)
        return Cleared({name: "*" for name in cached})
    if table is not None:
        raise QueryError("clear by customer or by table, not both")
    cleared = Cleared(customer_found=False)
    for _ in range(2):
        view = await federation.request().by_id(customer)
        if view is None:
            break
        cleared.customer_found = True
        for name, table_name, column, keys in customer_lookups(federation, view):
            if name in cached:
                count = await cached[name].forget(table_name, column, keys)
                before = cleared.sources.get(name, 0)
                cleared.sources[name] = int(before) + count
    return cleared


def customer_lookups(
    federation: Federation, customer: CustomerView
) -> Iterator[tuple[str, str, str, list[Any]]]:
    """``(source, table, column, keys)`` of the lookups that read ``customer``."""
    found: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for record in customer.records:
        member = record.member
        found[(member.source, member.table, member.key)].append(record.key)
    for member, column, values in federation.stitcher.key_lookups(customer.records):
        found[(member.source, member.table, column)].extend(values)
    for relation in federation.model.relations.values():
        keys = [r.key for r in customer.records if r.member.id == relation.parent.member]
        if keys:
            found[(relation.source, relation.table, relation.parent.column)].extend(keys)
    for (source, table, column), keys in found.items():
        yield source, table, column, keys
