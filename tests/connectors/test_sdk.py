"""The connector SDK's public surface does not drift by accident."""

from __future__ import annotations

import connectors

PUBLIC = [
    "Aggregate", "AggregateFn", "Capabilities", "CircuitOpen", "ConfigError", "Connector",
    "ConnectorError",
    "ConnectorOptions", "CustviewError", "DeadlineExceeded", "Filter", "FilterOp", "Health",
    "KeyLookup", "LookupTransform",
    "PluginError", "QueryError", "ReadOnlyViolation", "Row", "ScanRequest", "SchemaMismatch",
    "Sort", "SourceTimeout", "SourceUnavailable", "UnsupportedOperation", "WriteAccess",
    "available", "current_request_id", "describe_error", "load",
    "register", "time_left", "unregister",
]  # fmt: skip


def test_public_names_are_exactly_the_sdk() -> None:
    assert connectors.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(connectors, name) is not None


def test_every_error_maps_to_a_code_and_descends_from_the_root() -> None:
    errors = [getattr(connectors, n) for n in PUBLIC if n.endswith(("Error", "Violation"))]
    errors += [connectors.SourceTimeout, connectors.SourceUnavailable, connectors.SchemaMismatch]
    codes = {e.code for e in errors}
    assert all(issubclass(e, connectors.CustviewError) for e in errors)
    assert len(codes) == len(set(errors)), "each error class has its own code"


def test_builtin_sql_connector_is_discovered_through_the_entry_point() -> None:
    from connectors.sql import SQLConnector

    assert "sql" in connectors.available()
    assert connectors.load("sql") is SQLConnector
