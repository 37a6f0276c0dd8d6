"""The conformance suite as one base class for a connector's test module."""

from __future__ import annotations

from connectors.conformance._aggregates import AggregateTests
from connectors.conformance._lifecycle import LifecycleTests
from connectors.conformance._lookups import LookupTests
from connectors.conformance._scans import ScanTests
from connectors.conformance._support import LargeTable, SlowTable


class ConnectorConformance(LookupTests, ScanTests, AggregateTests, LifecycleTests):
    """Subclass as ``Test<Name>`` and provide a ``connector`` fixture (see the package doc)."""


__all__ = ["ConnectorConformance", "LargeTable", "SlowTable"]
