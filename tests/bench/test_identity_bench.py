"""The identity report of ``make bench`` runs end to end on a small demo."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console

from tests.bench.identity import run


def test_identity_bench_measures_both_matchers(tmp_path: Path) -> None:
    (result,) = asyncio.run(run([1000], tmp_path, Console(width=140)))
    det, full = result["deterministic"], result["full_matcher"]
    assert det["precision"] == 1.0 and 0 < det["recall"] < 1
    # the model only adds links: recall grows, precision stays (nearly) perfect
    assert full["recall"] > det["recall"] and full["precision"] >= 0.99
    assert result["links"] > 0 and result["incremental_changed"] == 0
