"""The unified customer view flattened to rows, streamed for BI exports.

Customers are walked in the stable ``customers`` order, one chunk at a time,
each chunk with its own request view (so loaders and caches are dropped
between chunks): memory stays bounded whatever the number of customers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

from connectors import ConnectorError, QueryError
from resolvers.view import Federation

Row = dict[str, Any]


def columns(federation: Federation, wanted: Sequence[str] | None = None) -> list[str]:
    """The export's columns: ``id``, golden fields, metrics and ``source_records``;
    ``wanted`` picks and orders a subset."""
    model = federation.model
    every = ["id", *model.customer.fields, *model.metrics, "source_records"]
    if not wanted:
        return every
    unknown = [c for c in wanted if c not in every]
    if unknown:
        raise QueryError(
            f"unknown export column(s) {', '.join(unknown)}; known: {', '.join(every)}"
        )
    return list(wanted)


def plain(value: Any) -> Any:
    """A value as CSV/JSON carry it: ISO dates, decimals as text, others unchanged."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


async def customer_rows(
    federation: Federation,
    wanted: Sequence[str],
    chunk: int = 500,
    failures: dict[str, str] | None = None,
) -> AsyncIterator[list[Row]]:
    """Chunks of flattened customers, in the stable ``customers`` order.

    A failing source raises, unless ``failures`` is given: then the export
    goes on with what the other sources know, and ``failures`` collects
    source -> reason for the caller to report.
    """
    metrics = [c for c in wanted if c in federation.model.metrics]
    after: str | None = None
    while True:
        view = federation.request()
        try:
            page = await view.page(chunk, after)
        except ConnectorError as exc:
            if failures is None:
                raise
            # customers known only to that source cannot be listed without it
            failures.setdefault(exc.source, exc.reason)
            return
        customers = [c for _, c in page.customers]
        # all metrics of the chunk at once, so each relation costs one batched call
        values = await asyncio.gather(
            *(view.metric(c, m) for c in customers for m in metrics),
            return_exceptions=failures is not None,
        )
        for value in values:
            if isinstance(value, ConnectorError) and failures is not None:
                failures.setdefault(value.source, value.reason)
        computed = iter(values)
        rows = []
        for customer in customers:
            found = {m: next(computed) for m in metrics}
            row: Row = {}
            for column in wanted:
                if column == "id":
                    row[column] = customer.id
                elif column == "source_records":
                    row[column] = ";".join(str(r.ref) for r in customer.records)
                elif column in found:
                    value = found[column]
                    row[column] = None if isinstance(value, BaseException) else plain(value)
                else:
                    row[column] = plain(customer.golden.values.get(column))
            rows.append(row)
        if view.errors and failures is None:
            raise view.errors[0]
        for error in view.errors:
            if failures is not None:
                failures.setdefault(error.source, error.reason)
        yield rows
        if not page.has_next:
            return
        after = page.end_cursor
