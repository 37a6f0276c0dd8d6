"""Streamed BI exports: ``GET /export/{table}.{format}``.

``table`` is ``customers``, a configured relation (``tickets``, ``orders``,
...) or ``source_records``; ``format`` is ``csv``, ``ndjson``, ``arrow`` or
``parquet`` (:mod:`gateway.formats`). Query parameters: ``columns`` (comma
separated), ``filter`` and ``orderBy`` (JSON, exactly the GraphQL
``customers(filter:, orderBy:)`` inputs) and ``segment`` (a configured
segment's name). Rows leave as chunks of customers
are stitched; nothing is buffered beyond one chunk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from connectors import ConnectorError, CustviewError, QueryError
from gateway.audit import auditor_for
from gateway.formats import FORMATS, MEDIA_TYPES, encode
from gateway.metrics import GatewayMetrics
from resolvers.audit import AuditUnavailable
from resolvers.export import Chunk, governed_columns, rows, tables
from resolvers.governance import check_expr
from resolvers.inputs import parse_json_filter
from resolvers.policy import ForbiddenField, Grant
from resolvers.view import Federation

log = logging.getLogger("custview.export")


def json_parameter(name: str, text: str | None) -> Any:
    """A JSON-valued parameter, or a located error."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise QueryError(
            f"{name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            'pass the GraphQL input as JSON, e.g. {"country": {"eq": "DE"}}'
        ) from None


def _error(message: str, code: str, status: int) -> Response:
    return JSONResponse({"error": message, "code": code}, status_code=status)


async def _primed(
    first: Chunk | None, rest: AsyncIterator[Chunk], sent: list[int]
) -> AsyncIterator[Chunk]:
    if first is None:
        return
    sent[0] += len(first)
    yield first
    async for chunk in rest:
        sent[0] += len(chunk)
        yield chunk


async def _tracked(
    body: AsyncIterator[bytes], metrics: GatewayMetrics, name: str, sent: list[int]
) -> AsyncIterator[bytes]:
    """The body, counted in /metrics. A client that goes away cancels the stream here
    (Starlette cancels the response task on ``http.disconnect``), which stops the
    source reads in flight and closes the row generators."""
    table, fmt = name.rsplit(".", 1)
    outcome = "cancelled"
    metrics.exports_running.inc()
    try:
        async for data in body:
            yield data
        outcome = "complete"
    except CustviewError as exc:
        outcome = "failed"
        log.warning("export %s failed after %d rows: %s", name, sent[0], exc.message)
        raise
    finally:
        metrics.exports_running.dec()
        metrics.exports.labels(table, fmt, outcome).inc()
        metrics.export_rows.labels(table, fmt).inc(sent[0])
        if outcome == "cancelled":
            log.info("export %s cancelled by the client after %d rows", name, sent[0])


async def export_table(request: Request) -> Response:
    table, fmt = request.path_params["table"], request.path_params["format"]
    federation: Federation = request.app.state.federation
    known = tables(federation.model)
    if table not in known or fmt not in FORMATS:
        return _error(
            f"no export '{table}.{fmt}'; tables: {', '.join(known)}; formats: {', '.join(FORMATS)}",
            "NOT_FOUND",
            404,
        )
    params = request.query_params
    raw = params.get("columns")
    grant: Grant | None = getattr(request.state, "grant", None)
    if grant is None:  # fail closed: no caller, no data
        return _error("this request carries no access grant", "FORBIDDEN", 403)
    auditor = auditor_for(request, request.app.state.audit, "export")
    auditor.extra.update(table=table, format=fmt)
    try:
        # the same policy as GraphQL: columns, filters, orders and segments
        wanted = governed_columns(federation.model, table, raw.split(",") if raw else None, grant)
        expr, order = parse_json_filter(
            request.app.state.schema,
            federation.model,
            json_parameter("filter", params.get("filter")),
            json_parameter("orderBy", params.get("orderBy")),
            params.get("segment"),
        )
        check_expr(grant, federation.model, expr, order)
        # the export starts only once the audit log takes entries (fail closed)
        await auditor.record((), [c.name for c in wanted], "started")
        workers = getattr(request.app.state, "export_workers", None)
        chunks = rows(
            federation, table, wanted, expr, order, grant=grant, auditor=auditor,
            builders=workers(fmt, wanted) if workers is not None else None,
        )  # fmt: skip
        # the first chunk before the status line: a filter too broad for the planner
        # or a source that is down is a clear error status, not a truncated file
        first = await anext(chunks, None)
        sent = [0]
    except ConnectorError as exc:
        return JSONResponse(
            {"error": exc.message, "code": exc.code, "source": exc.source}, status_code=502
        )
    except (ForbiddenField, AuditUnavailable) as exc:
        return _error(exc.message, exc.code, 403 if isinstance(exc, ForbiddenField) else 503)
    except CustviewError as exc:
        return _error(exc.message, exc.code, 400)
    body = encode(fmt, wanted, _primed(first, chunks, sent))
    metrics: GatewayMetrics | None = getattr(request.app.state, "metrics", None)
    return StreamingResponse(
        body if metrics is None else _tracked(body, metrics, f"{table}.{fmt}", sent),
        media_type=MEDIA_TYPES[fmt],
        headers={"content-disposition": f'attachment; filename="{table}.{fmt}"'},
    )
