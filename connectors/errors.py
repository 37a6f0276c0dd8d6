"""The one error tree of custview.

It lives in the lowest layer so every layer can raise and catch it::

    CustviewError
    ├── ConfigError              bad configuration: file, key path, what to do
    ├── ConnectorError           a source misbehaved (carries ``source``)
    │   ├── SourceTimeout        the source did not answer in time
    │   │   └── DeadlineExceeded the request's deadline passed first
    │   ├── SourceUnavailable    the source cannot be reached or failed
    │   ├── CircuitOpen          the source failed repeatedly and is skipped for now
    │   ├── UnsupportedOperation the connector cannot do what was asked
    │   ├── SchemaMismatch       a configured table or column does not exist
    │   └── ReadOnlyViolation    something tried to write to a source
    ├── PluginError              a connector plugin could not be loaded
    └── QueryError               a request is invalid (bad cursor, bad id, ...)

Every error keeps its context as attributes and maps to a GraphQL
``extensions.code`` through :attr:`CustviewError.code`; messages never carry
connection strings or secrets.
"""

from __future__ import annotations

from typing import Any


class CustviewError(Exception):
    """Root of every error custview raises on purpose."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # the default rebuilds through __init__ with ``args`` alone, which misses the
        # keyword-only context (``source=``): an error crossing to another process
        # (an export worker's) keeps its class, message and attributes instead
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(cls: type[CustviewError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(CustviewError):
    """The configuration is invalid; ``file`` and ``path`` locate the problem."""

    code = "CONFIG_INVALID"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        where = file or "<config>"
        if line is not None:
            where += f":{line}"
        if path:
            where += f" at '{path}'"
        super().__init__(f"{where}: {message}")
        self.reason = message
        self.file = file
        self.path = path
        self.line = line


class ConnectorError(CustviewError):
    """A source failed; ``source`` names it."""

    code = "SOURCE_ERROR"

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(f"source '{source}': {message}")
        self.reason = message
        self.source = source


class SourceTimeout(ConnectorError):
    code = "SOURCE_TIMEOUT"


class DeadlineExceeded(SourceTimeout):
    """The deadline of the work in progress (a request) passed before the source
    answered; the time may have gone to other sources, so the circuit breaker
    does not count it."""


class SourceUnavailable(ConnectorError):
    """``retryable`` is false when another attempt cannot help now: the connector
    already retried under its own policy (REST: backoff, ``Retry-After``), or the
    answer is wrong in a way a retry repeats; the resilience wrapper does not retry it."""

    code = "SOURCE_UNAVAILABLE"

    def __init__(self, message: str, *, source: str, retryable: bool = True) -> None:
        super().__init__(message, source=source)
        self.retryable = retryable


class CircuitOpen(ConnectorError):
    code = "CIRCUIT_OPEN"


class UnsupportedOperation(ConnectorError):
    code = "UNSUPPORTED_OPERATION"


class SchemaMismatch(ConnectorError):
    """A configured table or column does not exist in the source."""

    code = "SOURCE_SCHEMA_MISMATCH"

    def __init__(self, message: str, *, source: str, table: str, column: str | None = None) -> None:
        super().__init__(message, source=source)
        self.table = table
        self.column = column


class ReadOnlyViolation(ConnectorError):
    code = "READ_ONLY"


class PluginError(CustviewError):
    code = "PLUGIN_ERROR"


class QueryError(CustviewError):
    code = "BAD_REQUEST"
