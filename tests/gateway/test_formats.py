"""Export encoders: what they load and what they write."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

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
