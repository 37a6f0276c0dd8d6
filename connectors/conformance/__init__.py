"""The connector conformance suite: proof that a connector honours the contract.

Like SQLAlchemy's dialect compliance suite, it ships inside the package and
runs in the connector author's own test run. Load :data:`DATASET` (plain
rows, see :mod:`connectors.conformance.dataset`) into your source, then
write one small test module::

    import pytest
    from connectors.conformance import ConnectorConformance

    @pytest.fixture
    async def connector(tmp_path):            # any fixture that yields a Connector
        conn = MyConnector("conformance", MyOptions(...))  # reading DATASET's rows
        yield conn
        await conn.aclose()

    class TestMyConnector(ConnectorConformance):
        table = "people"                     # where the rows live (the default)
        # Optional, each enabling more tests:
        # large_table = LargeTable("numbers", rows=100_000)  # rows of large_rows()
        # slow_table = SlowTable("slow", "x")  # reads slower than options.timeout
        # def text_key(self, value): return value.upper().rstrip(" ")  # a _ci collation

and run it with plain ``pytest`` (``pytest-asyncio`` in ``auto`` mode, or
mark the ``connector`` fixture with ``pytest_asyncio.fixture``).

Every test reads ``connector.capabilities_for(table)`` and skips, with the
reason "connector does not declare ...", what is not declared; what is
declared is checked against a Python reference evaluation of the dataset
(:mod:`connectors.conformance.reference`), and what is *not* declared must
raise :class:`~connectors.UnsupportedOperation`. Nothing here assumes SQL.

:func:`check_request_allowed` is the same check the planner applies before
it pushes a read down; it imports without pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.conformance.dataset import DATASET, Dataset, large_rows
from connectors.conformance.planning import (
    aggregate_problems,
    check_aggregate_allowed,
    check_request_allowed,
    scan_problems,
)

if TYPE_CHECKING:
    from connectors.conformance.suite import ConnectorConformance, LargeTable, SlowTable

__all__ = [
    "DATASET",
    "ConnectorConformance",
    "Dataset",
    "LargeTable",
    "SlowTable",
    "aggregate_problems",
    "check_aggregate_allowed",
    "check_request_allowed",
    "large_rows",
    "scan_problems",
]

_SUITE = {"ConnectorConformance", "LargeTable", "SlowTable"}


def __getattr__(name: str) -> Any:
    # The suite needs pytest; the planner's checks above must import without it.
    if name in _SUITE:
        from connectors.conformance import suite

        return getattr(suite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
