"""The Arrow formats of :mod:`gateway.formats`: an Arrow IPC stream and Parquet.

Kept apart so that pyarrow (about 40 MB once imported) is loaded only by an
export that writes Arrow or Parquet, not by every CSV or NDJSON export.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

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


def record_batch(schema: pa.Schema, rows: list[Row]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.record_batch(
        [pa.array(values, type=f.type) for values, f in zip(columns, schema, strict=True)],
        schema=schema,
    )


END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"
"""The stream's end marker: a continuation marker and a zero message length."""


class ArrowEncoder(Encoder):
    """An Arrow IPC stream written a message at a time: the schema, one record batch
    per chunk, the end marker, each the bytes pyarrow's stream writer writes (its
    default options; tested against it). The model's types hold no dictionary, so a
    batch's message depends on its rows alone: batches encoded by other processes
    (export workers) join this stream under its one schema."""

    def __init__(self, columns: Sequence[Column]) -> None:
        super().__init__(columns)
        self.schema = arrow_schema(columns)

    def start(self) -> bytes:
        return bytes(self.schema.serialize())

    def rows(self, rows: list[Row]) -> bytes:
        if not rows:
            return b""
        return bytes(record_batch(self.schema, rows).serialize())

    def finish(self) -> bytes:
        return END_OF_STREAM


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
