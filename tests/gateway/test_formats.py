"""Export encoders: what they load and what they write, and text as each value reads."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from hypothesis import given
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
