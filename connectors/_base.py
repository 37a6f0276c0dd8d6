"""The connector contract: what a source adapter must offer custview.

A connector knows one *kind* of source (SQL databases, REST APIs, ...) and
nothing about customers. It speaks in tables (or resources), columns and
rows. The resolvers map those onto the unified model.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from connectors.redaction import secret_values

Row = dict[str, Any]
"""One source record: column name to value, as the source returned it."""

FilterOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "startswith", "is_null"]
LookupTransform = Literal["exact", "casefold", "digits"]
"""How a lookup compares the source column with the given keys.

``exact``: ``column IN (keys)``. ``casefold``: ``lower(trim(column)) IN (keys)``,
keys are given already lower-cased and trimmed. ``digits``: the column with the
usual phone separators (space, ``-``, ``(``, ``)``, ``.``, ``/``, ``+``) removed,
compared with keys given as digit strings.
"""

AggregateFn = Literal["count", "sum", "min", "max"]


@dataclass(frozen=True, slots=True)
class Filter:
    """``column <op> value``; for ``in`` the value is a sequence, for ``is_null`` a bool."""

    column: str
    op: FilterOp
    value: Any = None


@dataclass(frozen=True, slots=True)
class KeyLookup:
    """One column's part of :meth:`Connector.lookup_many_columns`."""

    column: str
    keys: Sequence[Any]
    transform: LookupTransform = "exact"


@dataclass(frozen=True, slots=True)
class Sort:
    column: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """A filtered, sorted, limited read of one table.

    ``after`` holds the values of the ``order_by`` columns of the last row already
    seen (a keyset cursor): the scan continues strictly after that row.
    """

    table: str
    columns: Sequence[str]
    filters: Sequence[Filter] = ()
    order_by: Sequence[Sort] = ()
    limit: int | None = None
    after: Sequence[Any] | None = None


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``fn(column)`` over a group's rows; with ``where``, over those of its rows that
    pass every filter of it (a filter on a NULL is not passed, as in ``filters``).

    Aggregates with different ``where`` filters share one call, so a source reads the rows
    once: only with ``capabilities.supports_filtered_aggregates``. Over no passing
    rows ``count`` is 0 and the others are NULL, as they are over no rows; a group
    is there when any of its rows passes the call's ``filters``, whether or not any
    passes an aggregate's ``where``.
    """

    fn: AggregateFn
    column: str | None = None  # None only for count(*)
    alias: str = ""
    where: Sequence[Filter] = ()


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a connector can evaluate itself, for one table (or resource).

    The planner pushes down exactly what is declared here and does the rest
    in memory. ``None`` for a column set means "every column".
    """

    supports_batch_lookup: bool = True
    supports_sort: bool = True
    supports_keyset: bool = True
    supports_limit: bool = True
    supports_aggregates: bool = False
    supports_filtered_aggregates: bool = False
    """Aggregates with their own ``where`` (:attr:`Aggregate.where`) in one call;
    their filters are declared as the call's are (``filter_operators``)."""
    filter_operators: frozenset[str] = frozenset()
    """Operators accepted on every column (unless ``column_filter_operators`` says otherwise)."""
    column_filter_operators: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per-column operators; a column listed here accepts exactly these."""
    sortable_columns: frozenset[str] | None = None
    lookup_columns: frozenset[str] | None = None
    lookup_transforms: frozenset[str] = frozenset({"exact"})
    max_batch_size: int = 500
    max_sort_columns: int | None = None
    """How many ``order_by`` columns one read may have (``None``: no limit)."""

    def operators_for(self, column: str) -> frozenset[str]:
        return self.column_filter_operators.get(column, self.filter_operators)

    def can_filter(self, column: str, op: str) -> bool:
        return op in self.operators_for(column)

    def can_sort(self, column: str) -> bool:
        return self.supports_sort and (
            self.sortable_columns is None or column in self.sortable_columns
        )

    def can_lookup(self, column: str, transform: str = "exact") -> bool:
        return (
            self.supports_batch_lookup
            and transform in self.lookup_transforms
            and (self.lookup_columns is None or column in self.lookup_columns)
        )

    def summary(self) -> dict[str, Any]:
        """A plain, JSON-ready description, for listings such as ``custview connectors``."""
        return {
            "batch_lookup": self.supports_batch_lookup,
            "lookup_transforms": sorted(self.lookup_transforms),
            "filter_operators": sorted(self.filter_operators),
            "column_filter_operators": {
                c: sorted(ops) for c, ops in sorted(self.column_filter_operators.items())
            },
            "sort": self.supports_sort,
            "keyset": self.supports_keyset,
            "limit": self.supports_limit,
            "aggregates": self.supports_aggregates,
            "filtered_aggregates": self.supports_filtered_aggregates,
            "max_batch_size": self.max_batch_size,
            "max_sort_columns": self.max_sort_columns,
        }


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    latency_ms: float | None = None
    detail: str = ""
    tables: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WriteAccess:
    """Whether the credentials custview uses could write the source.

    custview never writes (no method does), but credentials that can are one
    bug or one leak away from it; ``custview check`` warns when ``can_write``.
    """

    can_write: bool | None
    """``None``: not known (not checked, or the check failed)."""
    detail: str = ""
    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Table → the write privileges the credentials hold on it (only writable tables)."""


class ConnectorOptions(BaseModel):
    """Base of every connector's options model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    timeout: float = 10.0
    """Seconds one call to the source may take."""

    def secrets(self) -> list[str]:
        """Every value of these options that an error text must not show: each
        :class:`~pydantic.SecretStr`; options holding others (a URL with a
        password, headers) add theirs."""
        return secret_values(self)


class Connector(abc.ABC):
    """A read-only adapter for one configured source.

    Subclasses set :attr:`kind` and :attr:`options_model`, and implement the
    abstract methods. There is deliberately no method that writes.
    """

    kind: ClassVar[str]
    options_model: ClassVar[type[ConnectorOptions]] = ConnectorOptions
    default_capabilities: ClassVar[Capabilities | None] = None
    """What instances typically declare, for listings; ``None`` when it depends on
    the options. The instance's :attr:`capabilities` is what the planner uses."""

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        self.name = name
        self.options = options

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this connector can do on any table."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What ``custview connectors`` shows for this class: a summary line and
        :attr:`default_capabilities`. Override only to say more."""
        doc = (cls.__doc__ or "").strip().splitlines()
        caps = cls.default_capabilities
        return {
            "description": doc[0] if doc else "",
            "capabilities": caps.summary() if caps is not None else None,
        }

    def capabilities_for(self, table: str) -> Capabilities:
        """What this connector can do on ``table``; by default the same everywhere."""
        return self.capabilities

    @property
    def source_kind(self) -> str:
        """The kind of source behind this connector (a wrapper reports its inner one)."""
        return self.kind

    @abc.abstractmethod
    async def lookup_many(
        self,
        table: str,
        column: str,
        keys: Sequence[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[list[Row]]:
        """Rows whose ``column`` matches each key, in one round trip per batch.

        Follows the DataLoader contract: one list per key, in key order (empty
        when nothing matches). Keys are compared after ``transform``, as the
        source itself compares them (its collation and type rules, not Python's
        ``==``), each key on its own: two keys the source finds equal both get
        the row.
        """

    async def lookup_many_columns(
        self, table: str, lookups: Sequence[KeyLookup], columns: Sequence[str]
    ) -> list[list[list[Row]]]:
        """:meth:`lookup_many` for several columns of one table: per lookup, one list
        per key. By default one ``lookup_many`` each, concurrently; a connector that
        can match them all in one round trip (``a IN (...) OR b IN (...)``) overrides it.
        """
        return list(
            await asyncio.gather(
                *(
                    self.lookup_many(table, lk.column, lk.keys, columns, lk.transform)
                    for lk in lookups
                )
            )
        )

    @abc.abstractmethod
    def scan(self, request: ScanRequest) -> AsyncIterator[Row]:
        """Stream the rows of a filtered, sorted, limited read in constant memory."""

    async def aggregate(
        self,
        table: str,
        group_by: Sequence[str],
        aggregates: Sequence[Aggregate],
        filters: Sequence[Filter] = (),
    ) -> list[Row]:
        """Grouped aggregates; only when ``capabilities.supports_aggregates`` (and an
        aggregate with a ``where`` only when ``supports_filtered_aggregates``)."""
        from connectors.errors import UnsupportedOperation

        raise UnsupportedOperation("aggregates are not supported", source=self.name)

    @abc.abstractmethod
    async def health(self, tables: Sequence[str] = ()) -> Health:
        """Reach the source; report latency and which of ``tables`` exist."""

    def pool_usage(self) -> tuple[int, int] | None:
        """``(in use, capacity)`` of the connection pool, for metrics; ``None`` when
        the connector keeps no pool it can count."""
        return None

    async def write_access(self, tables: Sequence[str]) -> WriteAccess:
        """Whether the credentials could write ``tables``; by default not known."""
        return WriteAccess(can_write=None, detail="this connector does not check its credentials")

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release pools and clients."""
