"""The connector SDK: the contract, its value types, discovery and errors.

A connector adapts one kind of source system and knows nothing about
customers. Import from here, not from the private modules.
"""

from __future__ import annotations

from connectors._base import (
    Aggregate,
    AggregateFn,
    Capabilities,
    Connector,
    ConnectorOptions,
    Filter,
    FilterOp,
    Health,
    KeyLookup,
    LookupTransform,
    Row,
    ScanRequest,
    Sort,
    WriteAccess,
)
from connectors.deadline import time_left
from connectors.errors import (
    CircuitOpen,
    ConfigError,
    ConnectorError,
    CustviewError,
    DeadlineExceeded,
    PluginError,
    QueryError,
    ReadOnlyViolation,
    SchemaMismatch,
    SourceTimeout,
    SourceUnavailable,
    UnsupportedOperation,
)
from connectors.redaction import describe_error
from connectors.registry import available, load, register, unregister
from connectors.request_id import current_request_id

__all__ = [
    "Aggregate",
    "AggregateFn",
    "Capabilities",
    "CircuitOpen",
    "ConfigError",
    "Connector",
    "ConnectorError",
    "ConnectorOptions",
    "CustviewError",
    "DeadlineExceeded",
    "Filter",
    "FilterOp",
    "Health",
    "KeyLookup",
    "LookupTransform",
    "PluginError",
    "QueryError",
    "ReadOnlyViolation",
    "Row",
    "ScanRequest",
    "SchemaMismatch",
    "Sort",
    "SourceTimeout",
    "SourceUnavailable",
    "UnsupportedOperation",
    "WriteAccess",
    "available",
    "current_request_id",
    "describe_error",
    "load",
    "register",
    "time_left",
    "unregister",
]
