"""A read-only custview connector over a folder of CSV files.

Each ``<table>.csv`` in ``directory`` is one table; the header row names the
columns. An empty cell is NULL. Column types are inferred from the values
(``int``, then ``decimal``, then ISO ``datetime``, else ``str``) unless the
``types`` option names them. Files are read with :mod:`csv` in chunks on a
worker thread, so the event loop never waits on the disk.

Semantics: text compares exactly (binary order); ``contains`` and
``startswith`` ignore case; NULL matches only ``is_null``; NULLs sort first.
Unsorted scans stream in constant memory; a sorted scan holds the filtered
rows of one table while it sorts them. The connector never opens a file for
writing.
"""

from __future__ import annotations

import asyncio
import csv
import operator
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import Field

from connectors import (
    Aggregate,
    Capabilities,
    Connector,
    ConnectorOptions,
    Filter,
    Health,
    LookupTransform,
    QueryError,
    Row,
    ScanRequest,
    SchemaMismatch,
    SourceTimeout,
    SourceUnavailable,
    UnsupportedOperation,
)

ColumnType = Literal["int", "decimal", "datetime", "str"]
CHUNK = 1000
"""Rows read from a file per trip to the worker thread."""

CAPABILITIES = Capabilities(
    supports_batch_lookup=True,
    supports_sort=True,
    supports_keyset=True,
    supports_limit=True,
    supports_aggregates=True,
    filter_operators=frozenset(
        {"eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "startswith", "is_null"}
    ),
    lookup_transforms=frozenset({"exact", "casefold"}),
    max_batch_size=10_000,
)


class CSVOptions(ConnectorOptions):
    """Where the files are and how to read them."""

    directory: str
    """Folder holding one ``<table>.csv`` per table."""
    encoding: str = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    types: dict[str, dict[str, ColumnType]] = Field(default_factory=dict)
    """Table -> column -> type; columns not named here are inferred."""


_PARSE: dict[str, Callable[[str], Any]] = {
    "int": int,
    "decimal": Decimal,
    "datetime": datetime.fromisoformat,
    "str": str,
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
_TABLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class CSVConnector(Connector):
    """Read-only tables from a folder of CSV files (an example third-party connector)."""

    kind = "csv"
    options_model = CSVOptions
    default_capabilities = CAPABILITIES
    options: CSVOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        if not isinstance(options, CSVOptions):
            raise TypeError("the csv connector needs CSVOptions")
        super().__init__(name, options)
        self._types: dict[tuple[str, float], dict[str, ColumnType]] = {}

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    # --- reading -----------------------------------------------------------------------

    def _path(self, table: str) -> Path:
        path = Path(self.options.directory) / f"{table}.csv"
        if not _TABLE.match(table) or not path.is_file():
            raise SchemaMismatch(f"no file '{table}.csv'", source=self.name, table=table)
        return path

    async def _rows(self, table: str, columns: Sequence[str]) -> AsyncGenerator[Row, None]:
        """Typed rows of ``table``, read in chunks off the event loop."""
        path = self._path(table)
        types = await self._call(self._column_types, path, table)
        for column in columns:
            if column not in types:
                raise SchemaMismatch(
                    f"column '{table}.{column}' does not exist",
                    source=self.name,
                    table=table,
                    column=column,
                )
        # Opened here, not on the thread: a cancelled open would leak the handle.
        handle = path.open(encoding=self.options.encoding, newline="")
        try:
            reader = csv.DictReader(handle, delimiter=self.options.delimiter)
            while chunk := await self._call(_take, reader, CHUNK):
                for raw in chunk:
                    yield {c: _parse(raw.get(c), types[c]) for c in types}
        finally:
            handle.close()

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self.options.timeout):
                return await asyncio.to_thread(fn, *args, **kwargs)
        except TimeoutError:
            raise SourceTimeout(
                f"no answer within {self.options.timeout:g} s", source=self.name
            ) from None
        except OSError as exc:
            raise SourceUnavailable(f"cannot read: {exc.strerror}", source=self.name) from None

    def _column_types(self, path: Path, table: str) -> dict[str, ColumnType]:
        stamp = path.stat().st_mtime
        cached = self._types.get((table, stamp))
        if cached is not None:
            return cached
        declared = self.options.types.get(table, {})
        with path.open(encoding=self.options.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=self.options.delimiter)
            header = next(reader, [])
            candidates: dict[str, list[ColumnType]] = {
                c: ["int", "decimal", "datetime"] for c in header if c not in declared
            }
            for record in reader:
                for column, value in zip(header, record, strict=False):
                    if value != "" and column in candidates:
                        candidates[column] = [t for t in candidates[column] if _fits(value, t)]
        types: dict[str, ColumnType] = {}
        for column in header:
            inferred = candidates.get(column)
            types[column] = declared.get(column) or _first(inferred or ["str"])
        self._types[(table, stamp)] = types
        return types

    # --- the contract ------------------------------------------------------------------

    async def lookup_many(
        self,
        table: str,
        column: str,
        keys: Sequence[Any],
        columns: Sequence[str],
        transform: LookupTransform = "exact",
    ) -> list[list[Row]]:
        if transform not in CAPABILITIES.lookup_transforms:
            raise UnsupportedOperation(f"no '{transform}' lookups", source=self.name)
        fold = _casefold if transform == "casefold" else _same
        wanted = {fold(k) for k in keys if k is not None}
        found: dict[Any, list[Row]] = {}
        if wanted:
            async for row in self._rows(table, [column, *columns]):
                value = row[column]
                if value is not None and fold(value) in wanted:
                    found.setdefault(fold(value), []).append({c: row[c] for c in columns})
        return [[] if k is None else list(found.get(fold(k), ())) for k in keys]

    async def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        if request.limit is not None and request.limit < 0:
            raise QueryError("limit must not be negative")
        tests = [_predicate(f) for f in request.filters]
        if request.after is not None:
            tests.append(_after(request))
        used = [*request.columns, *(f.column for f in request.filters)]
        used += [s.column for s in request.order_by]
        rows = self._rows(request.table, used)
        try:
            if request.order_by:
                kept = [row async for row in rows if all(t(row) for t in tests)]
                for sort in reversed(request.order_by):
                    kept.sort(key=_sort_key(sort.column), reverse=sort.descending)
                source: Any = _aiter(kept)
            else:
                source = (row async for row in rows if all(t(row) for t in tests))
            sent = 0
            async for row in source:
                if request.limit is not None and sent >= request.limit:
                    break
                yield {c: row[c] for c in request.columns}
                sent += 1
        finally:
            await rows.aclose()

    async def aggregate(
        self,
        table: str,
        group_by: Sequence[str],
        aggregates: Sequence[Aggregate],
        filters: Sequence[Filter] = (),
    ) -> list[Row]:
        tests = [_predicate(f) for f in filters]
        used = [
            *group_by,
            *(a.column for a in aggregates if a.column),
            *(f.column for f in filters),
        ]
        groups: dict[tuple[Any, ...], list[Any]] = {}
        if not group_by:
            groups[()] = [_start(a) for a in aggregates]
        async for row in self._rows(table, used):
            if all(t(row) for t in tests):
                state = groups.setdefault(
                    tuple(row[g] for g in group_by), [_start(a) for a in aggregates]
                )
                for i, agg in enumerate(aggregates):
                    state[i] = _step(agg, state[i], row)
        names = [a.alias or (f"{a.fn}_{a.column}" if a.column else a.fn) for a in aggregates]
        return [
            {**dict(zip(group_by, key, strict=True)), **dict(zip(names, state, strict=True))}
            for key, state in groups.items()
        ]

    async def health(self, tables: Sequence[str] = ()) -> Health:
        started = time.perf_counter()
        try:
            found = await self._call(self._find_tables, list(tables))
        except (SourceTimeout, SourceUnavailable) as exc:
            return Health(ok=False, detail=exc.reason)
        missing = [t for t, ok in found.items() if not ok]
        return Health(
            ok=True,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=f"missing tables: {', '.join(missing)}" if missing else "",
            tables=found,
        )

    def _find_tables(self, tables: list[str]) -> dict[str, bool]:
        folder = Path(self.options.directory)
        if not folder.is_dir():
            raise SourceUnavailable("the directory does not exist", source=self.name)
        return {t: bool(_TABLE.match(t)) and (folder / f"{t}.csv").is_file() for t in tables}

    async def aclose(self) -> None:
        """Nothing stays open between calls; closing twice is fine."""


# --- evaluation ----------------------------------------------------------------------------


def _take(reader: Iterator[dict[str, str]], count: int) -> list[dict[str, str]]:
    return [row for _, row in zip(range(count), reader, strict=False)]


def _first(kinds: list[ColumnType]) -> ColumnType:
    return kinds[0]


def _fits(value: str, kind: str) -> bool:
    try:
        _PARSE[kind](value)
    except (ValueError, InvalidOperation):
        return False
    return True


def _parse(value: str | None, kind: ColumnType) -> Any:
    return None if value is None or value == "" else _PARSE[kind](value)


def _same(value: Any) -> Any:
    return value


def _casefold(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _sort_key(column: str) -> Callable[[Row], tuple[bool, Any]]:
    """NULLs first, then the values' own order."""
    return lambda row: (row[column] is not None, row[column])


def _predicate(f: Filter) -> Callable[[Row], bool]:
    if f.op == "is_null":
        wanted = f.value in (True, None)
        return lambda row: (row[f.column] is None) is wanted
    if f.op == "in":
        if isinstance(f.value, str) or not isinstance(f.value, Sequence | set | frozenset):
            raise QueryError(f"filter 'in' on '{f.column}' needs a list of values")
        return lambda row: row[f.column] is not None and row[f.column] in f.value
    if f.value is None:
        raise QueryError(f"filter '{f.op}' on '{f.column}' needs a value")
    if f.op in ("contains", "startswith"):
        needle = str(f.value).casefold()
        if f.op == "contains":
            return lambda row: row[f.column] is not None and needle in str(row[f.column]).casefold()
        return lambda row: (
            row[f.column] is not None and str(row[f.column]).casefold().startswith(needle)
        )
    compare = _COMPARE.get(f.op)
    if compare is None:
        raise UnsupportedOperation(f"unknown filter operator '{f.op}'", source="csv")

    def test(row: Row) -> bool:
        value = row[f.column]
        try:
            return value is not None and compare(value, f.value)
        except TypeError:
            raise QueryError(f"cannot compare '{f.column}' with {f.value!r}") from None

    return test


def _after(request: ScanRequest) -> Callable[[Row], bool]:
    """Rows strictly after the cursor in ``order_by`` order (each column its direction)."""
    after = list(request.after or ())
    if not request.order_by or len(after) != len(request.order_by):
        raise QueryError("a keyset cursor needs one value per order_by column")
    if any(v is None for v in after):
        raise QueryError("keyset cursor values must not be null")

    def test(row: Row) -> bool:
        for sort, cursor in zip(request.order_by, after, strict=True):
            value = row[sort.column]
            if value is None or value == cursor:
                if value is None:
                    return False
                continue
            return bool(value < cursor) if sort.descending else bool(value > cursor)
        return False

    return test


async def _aiter(rows: list[Row]) -> AsyncGenerator[Row, None]:
    for row in rows:
        yield row


def _start(agg: Aggregate) -> Any:
    return 0 if agg.fn == "count" else None


def _step(agg: Aggregate, state: Any, row: Row) -> Any:
    if agg.fn == "count":
        return state + (1 if agg.column is None or row[agg.column] is not None else 0)
    value = row[agg.column] if agg.column else None
    if value is None:
        return state
    if state is None:
        return value
    if agg.fn == "sum":
        return state + value
    return min(state, value) if agg.fn == "min" else max(state, value)


def _open_for_reading(path: Path, encoding: str) -> IO[str]:
    return path.open("r", encoding=encoding, newline="")
