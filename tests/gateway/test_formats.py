"""Export encoders: what they load and what they write, and text as each value reads."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.formats import CSV_TEXT, JSON_TEXT, _text, _texts
from resolvers.export import Column
from resolvers.model import FieldType

REPO = Path(__file__).resolve().parents[2]


def test_text_exports_do_not_load_pyarrow() -> None:
    # pyarrow is ~40 MB of a CSV export's peak RSS that it never uses
    script = textwrap.dedent(
        """
        import asyncio, sys
        from gateway.formats import encode
        from resolvers.export import Column

        async def chunks():
            yield [("c1", 1.5)]

        async def main():
            columns = [Column("id", "id"), Column("score", "float")]
            for fmt in ("csv", "ndjson"):
                out = b"".join([d async for d in encode(fmt, columns, chunks())])
                assert b"c1" in out, out
            print(sorted(m for m in sys.modules if m.split(".")[0] == "pyarrow"))

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


class _Stamp(dt.datetime):
    """A datetime subclass (as some drivers return): converted as any other value."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return "stamp:" + super().isoformat(sep, timespec)


VALUES = st.one_of(
    st.none(),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.datetimes().map(
        lambda d: _Stamp(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond)
    ),
    st.dates(),
    st.decimals(allow_nan=False, places=2),
    st.text(max_size=5),
    st.integers(),
)


@given(
    rows=st.lists(st.tuples(VALUES, VALUES, VALUES), max_size=6),
    types=st.tuples(*[st.sampled_from(["datetime", "date", "decimal", "string"])] * 3),
    text_types=st.sampled_from([CSV_TEXT, JSON_TEXT]),
)
def test_columns_become_text_as_each_value_would(
    rows: list[tuple[Any, ...]], types: tuple[FieldType, ...], text_types: frozenset[str]
) -> None:
    columns = [Column(f"c{i}", t) for i, t in enumerate(types)]
    expected = [
        tuple(
            _text(v) if v is not None and c.type in text_types else v
            for v, c in zip(row, columns, strict=True)
        )
        for row in rows
    ]
    assert _texts(rows, columns, text_types) == expected


# -- chunks encoded apart (by export workers) ---------------------------------------

MODEL_VALUES: dict[FieldType, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=8),
    "id": st.text(max_size=8),
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False),
    "decimal": st.decimals(min_value=-(10**12), max_value=10**12, places=2),
    "bool": st.booleans(),
    "date": st.dates(),
    "datetime": st.datetimes(timezones=st.just(dt.UTC)),
}
EVERY_TYPE = [
    Column(f"c_{t}", t, f"the {t} column" if i % 2 else "") for i, t in enumerate(MODEL_VALUES)
]
CHUNKS = st.lists(
    st.lists(st.tuples(*(st.none() | MODEL_VALUES[c.type] for c in EVERY_TYPE)), max_size=4),
    max_size=4,
)


async def _encoded(fmt: str, chunks: list[list[tuple[Any, ...]]], apart: bool) -> bytes:
    """The export of ``chunks`` in ``fmt``; ``apart``: each chunk encoded by an encoder
    of its own (as each worker has) and handed over as bytes."""
    from gateway.formats import encode, encoder_for
    from resolvers.export import Chunk, Encoded

    async def given() -> Any:
        for rows in chunks:
            chunk: Chunk = rows
            if apart:
                chunk = Encoded(fmt, encoder_for(fmt, EVERY_TYPE).rows(rows), len(rows))
            yield chunk

    return b"".join([data async for data in encode(fmt, EVERY_TYPE, given())])


@settings(deadline=None)
@given(chunks=CHUNKS)
def test_the_arrow_stream_is_pyarrows_own_whoever_encodes_each_chunk(
    chunks: list[list[tuple[Any, ...]]],
) -> None:
    import pyarrow as pa

    from gateway.formats_arrow import arrow_schema, record_batch

    schema = arrow_schema(EVERY_TYPE)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for rows in chunks:
            if rows:
                writer.write_batch(record_batch(schema, rows))
    expected = sink.getvalue().to_pybytes()
    alone = asyncio.run(_encoded("arrow", chunks, apart=False))
    assert alone == expected
    assert asyncio.run(_encoded("arrow", chunks, apart=True)) == expected
    # one stream, one schema, every row
    table = pa.ipc.open_stream(alone).read_all()
    assert table.schema == schema
    assert table.num_rows == sum(map(len, chunks))


@settings(deadline=None, max_examples=30)
@given(chunks=CHUNKS)
def test_text_chunks_encoded_apart_make_the_same_file(
    chunks: list[list[tuple[Any, ...]]],
) -> None:
    for fmt in ("csv", "ndjson"):
        alone = asyncio.run(_encoded(fmt, chunks, apart=False))
        assert asyncio.run(_encoded(fmt, chunks, apart=True)) == alone


def test_a_chunk_encoded_in_another_format_is_refused() -> None:
    from gateway.formats import encode, spool_parquet
    from resolvers.export import Encoded

    async def one() -> Any:
        yield Encoded("csv", b"x\n", 1)

    async def written(fmt: str) -> bytes:
        return b"".join([d async for d in encode(fmt, EVERY_TYPE, one())])

    assert asyncio.run(written("csv")).endswith(b"x\n")
    for fmt in ("ndjson", "arrow", "parquet"):
        with pytest.raises(RuntimeError, match="encoded as 'csv'"):
            asyncio.run(written(fmt))
    with pytest.raises(RuntimeError, match="Parquet"):
        asyncio.run(spool_parquet(EVERY_TYPE, one(), "/dev/null"))
