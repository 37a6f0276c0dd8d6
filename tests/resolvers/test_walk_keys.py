"""Pass 1 of the export walk on a source that cannot sort: its records come in
any order, a batch of rows at a time, and must still be numbered in listing
order (member rank, then key: numbers before text), every identity key paired
with the number of the record that holds it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from connectors import ScanRequest
from resolvers import walk
from resolvers.identity import Stitcher
from resolvers.model import UnifiedModel


def _model() -> UnifiedModel:
    return UnifiedModel.model_validate(
        {
            "customer": {
                "fields": {"email": {"normalize": "email"}},
                "members": [
                    {
                        "source": "db",
                        "table": "people",
                        "fields": {"email": "email"},
                        "identity": {"mail": ["email"]},
                    }
                ],
            },
            "identity": {"keys": {"mail": {"normalize": "email"}}},
        }
    )


class _Unsorted:
    """A source listing its rows as they are, unable to sort them."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def capabilities_for(self, table: str) -> Any:
        return SimpleNamespace(can_sort=lambda column: False)

    async def scan(self, request: ScanRequest) -> AsyncIterator[dict[str, Any]]:
        for row in self.rows:
            yield dict(row)


def _numbered(
    ids: list[Any], batch: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Any], dict[str, Any]]:
    """Pass 1's keys in numbering order, and each email's record key by its number."""
    monkeypatch.setattr(walk, "SCAN_BATCH", batch)
    model = _model()
    source = _Unsorted([{"id": key, "email": f"U{key}@Example.com "} for key in ids])
    federation = SimpleNamespace(
        connectors={"db": source}, stitcher=Stitcher(model, {"db": source})
    )
    member = walk._Member(model.customer.members[0], 0)
    edges = walk._Edges()
    edges.begin_member()
    try:
        count = asyncio.run(walk._scan_keys(federation, member, edges))  # type: ignore[arg-type]
        assert count == len(ids)
        keys = list(member.keys)
        held = {
            node[1]: keys[number]
            for bucket in range(walk.BUCKETS)
            for number, node in zip(edges.numbers[bucket], edges.keys(bucket), strict=True)
        }
    finally:
        edges.close()
    return keys, held


@pytest.mark.parametrize("batch", [1, 2, 1_024])
@pytest.mark.parametrize(
    "ids",
    [[3, 1, 2], [1, 2, 5, 4, 3], [3, "b", 1, "a"], [2, 1 << 70, 1]],
    ids=["ints", "late-out-of-order", "ints-and-text", "past-a-machine-int"],
)
def test_records_of_a_source_that_cannot_sort_are_numbered_in_listing_order(
    ids: list[Any], batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, held = _numbered(ids, batch, monkeypatch)
    ordered = sorted(ids, key=lambda k: (0, k) if isinstance(k, int) else (1, str(k)))
    assert keys == ordered
    # every email is paired with the number of the record holding it
    assert held == {f"u{key}@example.com": key for key in ids}
