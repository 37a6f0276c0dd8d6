"""Streamed BI exports: ``GET /export/customers.csv`` and ``.ndjson``.

Rows leave as chunks of customers are stitched; nothing is buffered beyond
one chunk. ``?columns=id,name,lifetimeValue`` picks columns.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from connectors import CustviewError
from resolvers.export import Row, columns, customer_rows
from resolvers.view import Federation

FORMATS = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


def csv_lines(header: Sequence[str], rows: list[Row], with_header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(header), lineterminator="\n")
    if with_header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def ndjson_lines(rows: list[Row]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


async def encode(federation: Federation, fmt: str, wanted: Sequence[str]) -> AsyncIterator[str]:
    """The export as text chunks in ``fmt`` (``csv`` or ``ndjson``)."""
    first = True
    async for rows in customer_rows(federation, wanted):
        yield csv_lines(wanted, rows, first) if fmt == "csv" else ndjson_lines(rows)
        first = False


async def export_customers(request: Request) -> Response:
    fmt = request.path_params["format"]
    if fmt not in FORMATS:
        return JSONResponse(
            {"error": f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}"}, status_code=404
        )
    federation: Federation = request.app.state.federation
    raw = request.query_params.get("columns")
    try:
        wanted = columns(federation, raw.split(",") if raw else None)
    except CustviewError as exc:
        return JSONResponse({"error": exc.message, "code": exc.code}, status_code=400)
    return StreamingResponse(
        encode(federation, fmt, wanted),
        media_type=FORMATS[fmt],
        headers={"content-disposition": f'attachment; filename="customers.{fmt}"'},
    )
