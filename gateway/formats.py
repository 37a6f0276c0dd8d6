"""Export file formats: typed rows in, bytes out, one chunk of rows at a time.

* ``csv``: a header, then RFC 4180 lines; dates ISO 8601, decimals as text.
* ``ndjson``: one JSON object per line; the same text forms as CSV.
* ``arrow``: an Arrow IPC *stream* (schema, one record batch per chunk, end
  marker), typed from the model; readable by pyarrow, DuckDB, Polars, Spark.
* ``parquet``: needs its footer written last, so rows are spooled to a
  temporary file in row groups (of at most ``ROW_GROUP`` rows) and the file
  is served when complete, then deleted.

Memory stays bounded by one chunk of rows (plus one row group for Parquet).
The Arrow formats live in :mod:`gateway.formats_arrow`, imported only by an
export that asks for one: a CSV or NDJSON export does not load pyarrow.

In CSV, NDJSON and Arrow a chunk's bytes depend on its rows alone (no state
carried from one chunk to the next), so an export worker may encode the chunks it
builds (:data:`CHUNKED`) and the exporter write their bytes as they come
(:class:`resolvers.export.Encoded`), exactly where its own encoder would have
written them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import anyio

from resolvers.export import Chunk, Column, Encoded, Row

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
FORMATS = tuple(MEDIA_TYPES)
READ_SIZE = 1 << 20


def _text(value: Any) -> Any:
    """A value as CSV/JSON carry it: ISO dates, decimals as text, others unchanged."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


JSON_TEXT = frozenset({"date", "datetime", "decimal"})
CSV_TEXT = frozenset({"datetime"})
"""The csv module writes ``str(value)``: already ISO 8601 for a date, the text of a
decimal; a datetime's ``str`` has a space where ISO 8601 has ``T``."""


_DATETIME = dt.datetime
_isoformat = dt.datetime.isoformat
""":func:`_text` of a datetime, the commonest value converted, without the call."""


def _texts(rows: list[Row], columns: Sequence[Column], types: frozenset[str]) -> list[Row]:
    """``rows`` with the values of columns of ``types`` as text (rows are typed as
    their columns say, so the other columns need nothing)."""
    convert = [at for at, c in enumerate(columns) if c.type in types]
    if not convert or not rows:
        return rows
    # a column at a time: the other columns' values are not touched one by one
    values = list(zip(*rows, strict=True))
    for at in convert:
        values[at] = tuple(
            [
                _isoformat(v) if v.__class__ is _DATETIME else None if v is None else _text(v)
                for v in values[at]
            ]
        )
    return list(zip(*values, strict=True))


class Encoder:
    """Bytes for one format: ``start()``, ``rows()`` per chunk, ``finish()``; ``rows()``
    keeps no state, so chunks encoded by different encoders of the format join up."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.names = [c.name for c in columns]
        self.columns = list(columns)

    def start(self) -> bytes:
        return b""

    def rows(self, rows: list[Row]) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        return b""


class CSVEncoder(Encoder):
    def _lines(self, rows: Sequence[Sequence[Any]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue().encode()

    def start(self) -> bytes:
        return self._lines([self.names])

    def rows(self, rows: list[Row]) -> bytes:
        return self._lines(_texts(rows, self.columns, CSV_TEXT))


class NDJSONEncoder(Encoder):
    def rows(self, rows: list[Row]) -> bytes:
        return "".join(
            json.dumps(dict(zip(self.names, row, strict=True)), ensure_ascii=False) + "\n"
            for row in _texts(rows, self.columns, JSON_TEXT)
        ).encode()


def encoder_for(fmt: str, columns: Sequence[Column]) -> Encoder:
    if fmt == "arrow":
        from gateway.formats_arrow import ArrowEncoder

        return ArrowEncoder(columns)
    return ENCODERS[fmt](columns)


ENCODERS: dict[str, type[Encoder]] = {"csv": CSVEncoder, "ndjson": NDJSONEncoder}
"""The text formats; Arrow's encoder is :mod:`gateway.formats_arrow`'s."""

CHUNKED = ("csv", "ndjson", "arrow")
"""The formats encoded a chunk at a time (:func:`encoder_for`), each chunk's bytes
from its rows alone: an export worker may encode its chunks itself. Parquet is
written whole."""


def encoded_bytes(fmt: str, chunk: Encoded) -> bytes:
    """The bytes of a chunk encoded elsewhere, which must be in the export's format."""
    if chunk.form != fmt:  # a real check: an assert would vanish under python -O
        raise RuntimeError(f"a chunk encoded as {chunk.form!r} in an export as {fmt!r}")
    return chunk.data


async def encode(
    fmt: str, columns: Sequence[Column], chunks: AsyncIterator[Chunk]
) -> AsyncIterator[bytes]:
    """The export in ``fmt``, as byte chunks that leave as rows arrive (Parquet: when
    the spooled file is complete); a chunk already encoded leaves as it is."""
    if fmt == "parquet":
        async for data in _parquet(columns, chunks):
            yield data
        return
    encoder = encoder_for(fmt, columns)
    yield encoder.start()
    async for chunk in chunks:
        data = encoded_bytes(fmt, chunk) if isinstance(chunk, Encoded) else encoder.rows(chunk)
        if data:
            yield data
    yield encoder.finish()


async def _rows(chunks: AsyncIterator[Chunk]) -> AsyncIterator[list[Row]]:
    """The chunks as rows: a Parquet export's are never encoded elsewhere."""
    async for chunk in chunks:
        if isinstance(chunk, Encoded):
            raise RuntimeError(f"a chunk encoded as {chunk.form!r} in a Parquet export")
        yield chunk


async def spool_parquet(columns: Sequence[Column], chunks: AsyncIterator[Chunk], path: str) -> None:
    """Write the rows to ``path`` as Parquet (:func:`gateway.formats_arrow.spool_parquet`)."""
    from gateway.formats_arrow import spool_parquet as spool

    await spool(columns, _rows(chunks), path)


async def _parquet(columns: Sequence[Column], chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    fd, path = tempfile.mkstemp(prefix="custview-export-", suffix=".parquet")
    os.close(fd)
    try:
        await spool_parquet(columns, chunks, path)
        async with await anyio.open_file(path, "rb") as spooled:
            while data := await spooled.read(READ_SIZE):
                yield data
    finally:
        os.unlink(path)
