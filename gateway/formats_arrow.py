"""The Arrow formats of :mod:`gateway.formats`: an Arrow IPC stream and Parquet.

Kept apart so that pyarrow (about 40 MB once imported) is loaded only by an
export that writes Arrow or Parquet, not by every CSV or NDJSON export.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from gateway.formats import Encoder
from resolvers.export import Column, Row
from resolvers.model import FieldType

ROW_GROUP = 64_000

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
