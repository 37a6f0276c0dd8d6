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
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from connectors import ConnectorError, CustviewError, QueryError
from gateway.formats import FORMATS, MEDIA_TYPES, encode
from resolvers.export import Row, columns, rows, tables
from resolvers.inputs import parse_json_filter
from resolvers.view import Federation


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
    first: list[Row] | None, rest: AsyncIterator[list[Row]]
) -> AsyncIterator[list[Row]]:
    if first is not None:
        yield first
        async for chunk in rest:
            yield chunk


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
    try:
        wanted = columns(federation.model, table, raw.split(",") if raw else None)
        expr, order = parse_json_filter(
            request.app.state.schema,
            federation.model,
            json_parameter("filter", params.get("filter")),
            json_parameter("orderBy", params.get("orderBy")),
            params.get("segment"),
        )
        chunks = rows(federation, table, wanted, expr, order)
        # the first chunk before the status line: a filter too broad for the planner
        # or a source that is down is a clear error status, not a truncated file
        first = await anext(chunks, None)
    except ConnectorError as exc:
        return JSONResponse(
            {"error": exc.message, "code": exc.code, "source": exc.source}, status_code=502
        )
    except CustviewError as exc:
        return _error(exc.message, exc.code, 400)
    return StreamingResponse(
        encode(fmt, wanted, _primed(first, chunks)),
        media_type=MEDIA_TYPES[fmt],
        headers={"content-disposition": f'attachment; filename="{table}.{fmt}"'},
    )
