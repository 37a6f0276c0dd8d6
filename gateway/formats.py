"""Export file formats: typed rows in, bytes out, one chunk of rows at a time.

* ``csv``: a header, then RFC 4180 lines; dates ISO 8601, decimals as text.
* ``ndjson``: one JSON object per line; the same text forms as CSV.
* ``arrow``: an Arrow IPC *stream* (schema, one record batch per chunk, end
  marker), typed from the model; readable by pyarrow, DuckDB, Polars, Spark.
* ``parquet``: needs its footer written last, so rows are spooled to a
  temporary file in row groups (of at most ``ROW_GROUP`` rows) and the file
  is served when complete, then deleted.

Memory stays bounded by one chunk of rows (plus one row group for Parquet).
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
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from resolvers.export import Column, Row
from resolvers.model import FieldType

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
FORMATS = tuple(MEDIA_TYPES)
ROW_GROUP = 64_000
READ_SIZE = 1 << 20

ARROW_TYPES: dict[FieldType, pa.DataType] = {
    "string": pa.string(),
    "id": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    # every decimal of the unified view is quantized to cents (resolvers.coerce)
    "decimal": pa.decimal128(38, 2),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema(
        [
            pa.field(c.name, ARROW_TYPES[c.type], metadata={"description": c.description})
            if c.description
            else pa.field(c.name, ARROW_TYPES[c.type])
            for c in columns
        ]
    )


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


def _texts(rows: list[Row], columns: Sequence[Column], types: frozenset[str]) -> list[Row]:
    """``rows`` with the values of columns of ``types`` as text (rows are typed as
    their columns say, so the other columns need nothing)."""
    convert = [at for at, c in enumerate(columns) if c.type in types]
    if not convert:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for at in convert:
            values[at] = _text(values[at])
        out.append(tuple(values))
    return out


class _Chunks:
    """A write-only file for pyarrow that hands back what was written since last asked."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._size += len(chunk)
        return len(chunk)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self._size

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def record_batch(schema: pa.Schema, rows: list[Row]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.record_batch(
        [pa.array(values, type=f.type) for values, f in zip(columns, schema, strict=True)],
        schema=schema,
    )


class Encoder:
    """Bytes for one format: ``start()``, ``rows()`` per chunk, ``finish()``."""

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


class ArrowEncoder(Encoder):
    def __init__(self, columns: Sequence[Column]) -> None:
        super().__init__(columns)
        self.schema = arrow_schema(columns)
        self._sink = _Chunks()
        self._writer = pa.ipc.new_stream(self._sink, self.schema)

    def start(self) -> bytes:
        return self._sink.take()

    def rows(self, rows: list[Row]) -> bytes:
        if rows:
            self._writer.write_batch(record_batch(self.schema, rows))
        return self._sink.take()

    def finish(self) -> bytes:
        self._writer.close()
        return self._sink.take()


ENCODERS: dict[str, type[Encoder]] = {
    "csv": CSVEncoder,
    "ndjson": NDJSONEncoder,
    "arrow": ArrowEncoder,
}


async def encode(
    fmt: str, columns: Sequence[Column], chunks: AsyncIterator[list[Row]]
) -> AsyncIterator[bytes]:
    """The export in ``fmt``, as byte chunks that leave as rows arrive (Parquet: when
    the spooled file is complete)."""
    if fmt == "parquet":
        async for data in _parquet(columns, chunks):
            yield data
        return
    encoder = ENCODERS[fmt](columns)
    yield encoder.start()
    async for rows in chunks:
        data = encoder.rows(rows)
        if data:
            yield data
    yield encoder.finish()


async def spool_parquet(
    columns: Sequence[Column], chunks: AsyncIterator[list[Row]], path: str
) -> None:
    """Write the rows to ``path`` as Parquet, in row groups of at most ``ROW_GROUP`` rows."""
    schema = arrow_schema(columns)
    pending: list[pa.RecordBatch] = []
    size = 0
    with pq.ParquetWriter(path, schema) as writer:
        async for rows in chunks:
            if rows:
                pending.append(record_batch(schema, rows))
                size += len(rows)
            if size >= ROW_GROUP:
                writer.write_table(pa.Table.from_batches(pending, schema), ROW_GROUP)
                pending, size = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema), ROW_GROUP)


async def _parquet(
    columns: Sequence[Column], chunks: AsyncIterator[list[Row]]
) -> AsyncIterator[bytes]:
    fd, path = tempfile.mkstemp(prefix="custview-export-", suffix=".parquet")
    os.close(fd)
    try:
        await spool_parquet(columns, chunks, path)
        async with await anyio.open_file(path, "rb") as spooled:
            while data := await spooled.read(READ_SIZE):
                yield data
    finally:
        os.unlink(path)
