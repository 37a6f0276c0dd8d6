"""The CSV connector runs custview's shipped conformance suite.

The canonical dataset is written as ``people.csv``, plus a large
``numbers.csv`` for the streaming test; the connector infers the types.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from custview_csv import CSVConnector, CSVOptions

from connectors.conformance import DATASET, ConnectorConformance, LargeTable, large_rows

LARGE = LargeTable("numbers", rows=100_000)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("csv-source")
    write_csv(root / f"{DATASET.table}.csv", list(DATASET.columns), DATASET.as_text_rows())
    numbers = [{"id": str(r["id"]), "label": r["label"]} for r in large_rows(LARGE.rows)]
    write_csv(root / f"{LARGE.name}.csv", ["id", "label"], numbers)
    return root


@pytest.fixture
async def connector(folder: Path) -> AsyncIterator[CSVConnector]:
    conn = CSVConnector("conformance", CSVOptions(directory=str(folder), timeout=5))
    yield conn
    await conn.aclose()


class TestCSVConnector(ConnectorConformance):
    large_table = LARGE


def test_is_discovered_through_its_entry_point() -> None:
    import connectors

    assert "csv" in connectors.available()
    assert connectors.load("csv") is CSVConnector
