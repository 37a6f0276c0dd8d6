"""Watching what connectors send to their sources, for explain plans.

While an :class:`Observer` is active (:func:`observing`, a context
variable, so concurrent requests never mix), every call through an
:class:`ObservedConnector` is recorded as a :class:`SourceCall`: the
operation, the table, what was asked, the rows returned, the time spent in
the source, and the statements or requests it sent. A connector reports
what it sends with :func:`sent` (the SQL connector's statement hook, the
REST client's GET); nothing is recorded, and almost nothing costs, when no
one observes. Callers above the connectors add their own steps with
:func:`note` (what they did in memory).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connectors._base import Connector, Filter, Row, ScanRequest
from connectors._wrapping import (
    AggregateCall,
    Call,
    ColumnsLookup,
    ConnectorWrapper,
    Lookup,
    relay,
)


@dataclass(slots=True)
class SourceCall:
    """One call to one source."""

    source: str
    operation: str
    """``lookup_many``, ``scan`` or ``aggregate``."""
    table: str
    detail: str
    rows: int = 0
    ms: float = 0.0
    sent: list[str] = field(default_factory=list)
    """Statements (SQL) or requests (HTTP) sent for this call."""
    error: str | None = None


@dataclass(slots=True)
class Observer:
    """What one request did: source calls in the order they started, and notes."""

    calls: list[SourceCall] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def note(self, step: str) -> None:
        self.steps.append(step)

    def report(self) -> dict[str, Any]:
        """A JSON-ready plan: totals and calls per source, then the in-memory steps."""
        sources: dict[str, dict[str, Any]] = {}
        for call in self.calls:
            entry = sources.setdefault(
                call.source, {"source": call.source, "calls": [], "rows": 0, "ms": 0.0, "sent": 0}
            )
            entry["rows"] += call.rows
            entry["ms"] += call.ms
            entry["sent"] += len(call.sent)
            entry["calls"].append(
                {
                    "operation": call.operation,
                    "table": call.table,
                    "detail": call.detail,
                    "rows": call.rows,
                    "ms": round(call.ms, 2),
                    "sent": call.sent,
                    **({"error": call.error} if call.error else {}),
                }
            )
        for entry in sources.values():
            entry["ms"] = round(entry["ms"], 2)
        return {
            "totalMs": round((time.perf_counter() - self.started) * 1000, 2),
            "sources": list(sources.values()),
            "memory": list(self.steps),
        }


T = TypeVar("T")

_observer: ContextVar[Observer | None] = ContextVar("custview_observer", default=None)
_call: ContextVar[SourceCall | None] = ContextVar("custview_source_call", default=None)
observed_call: Callable[[], SourceCall | None] = _call.get
"""The observed call under way, if any (the statement hook asks before :func:`sent`,
which has work only then: one call fewer for every statement nobody observes)."""


@contextmanager
def observing() -> Iterator[Observer]:
    """Record every observed source call made inside the block (and its tasks)."""
    observer = Observer()
    token = _observer.set(observer)
    try:
        yield observer
    finally:
        _observer.reset(token)


def active() -> Observer | None:
    return _observer.get()


def note(step: str) -> None:
    """Add an in-memory step to the active plan, if anyone is observing."""
    observer = _observer.get()
    if observer is not None:
        observer.note(step)


_PLACEHOLDERS = re.compile(
    r"(?:\?|%s|\$\d+|:[A-Za-z_]\w*)(?:\s*,\s*(?:\?|%s|\$\d+|:[A-Za-z_]\w*)){3,}"
)


def _compact(text: str) -> str:
    """On one line; long IN lists of placeholders shown as ``N params``."""

    def shorten(match: re.Match[str]) -> str:
        return f"{match.group(0).count(',') + 1} params"

    flat = re.sub(r"\s*\n\s*", " ", text).replace("\t", "\\t").replace("\r", "\\r")
    return _PLACEHOLDERS.sub(shorten, flat)


def sent(text: str) -> None:
    """Report a statement or request the current observed call sends (no values)."""
    call = _call.get()
    if call is not None:
        call.sent.append(_compact(text))


def _describe(filters: Sequence[Filter]) -> str:
    parts = []
    for f in filters:
        value = f.value
        if isinstance(value, list | tuple | set | frozenset):
            shown = f"[{len(value)} values]" if len(value) > 5 else repr(list(value))
        else:
            shown = repr(value)
        parts.append(f"{f.column} {f.op} {shown}")
    return " and ".join(parts)


class ObservedConnector(ConnectorWrapper):
    """Records each call while an :class:`Observer` is active; passes through otherwise."""

    def _start(self, operation: str, table: str, detail: str) -> SourceCall | None:
        observer = _observer.get()
        if observer is None:
            return None
        call = SourceCall(self.name, operation, table, detail)
        observer.calls.append(call)
        return call

    def around(self, call: Call[T]) -> Awaitable[T]:
        if _observer.get() is None:  # nobody observes: the call itself, no frame of ours
            around = self._inner_around  # :meth:`run`, written out
            return call.run(self.inner) if around is None else around(call)
        return self._observed(call)

    async def _observed(self, call: Call[T]) -> T:
        record = self._start(call.method, call.table, _detail(call))
        assert record is not None
        token = _call.set(record)
        started = time.perf_counter()
        try:
            result = await self.run(call)
        except Exception as exc:
            record.error = type(exc).__name__
            raise
        finally:
            record.ms += (time.perf_counter() - started) * 1000
            _call.reset(token)
        record.rows = _rows(call, result)
        return result

    def scan(self, request: ScanRequest) -> AsyncGenerator[Row, None]:
        parts = [_describe(request.filters)]
        if request.order_by:
            order = ", ".join(
                f"{s.column}{' desc' if s.descending else ''}" for s in request.order_by
            )
            parts.append(f"order by {order}")
        if request.after is not None:
            parts.append("after cursor")
        if request.limit is not None:
            parts.append(f"limit {request.limit}")
        call = self._start("scan", request.table, "; ".join(p for p in parts if p))
        if call is None:
            return relay(self.inner.scan(request))
        return self._observed_scan(request, call)

    async def _observed_scan(
        self, request: ScanRequest, call: SourceCall
    ) -> AsyncGenerator[Row, None]:
        stream = self.inner.scan(request)
        try:
            while True:
                token = _call.set(call)
                started = time.perf_counter()
                try:
                    row = await anext(stream)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    call.error = type(exc).__name__
                    raise
                finally:
                    call.ms += (time.perf_counter() - started) * 1000
                    _call.reset(token)
                call.rows += 1
                yield row
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


def _detail(call: Call[Any]) -> str:
    """What a lookup or aggregate asked, for the plan (no values but filters')."""
    if isinstance(call, Lookup):
        return _looked_up(call.column, call.transform, call.keys)
    if isinstance(call, ColumnsLookup):
        return " or ".join(_looked_up(lk.column, lk.transform, lk.keys) for lk in call.lookups)
    assert isinstance(call, AggregateCall)
    what = ", ".join(
        f"{a.fn}({a.column or '*'})" + (f" filter (where {_describe(a.where)})" if a.where else "")
        for a in call.aggregates
    )
    detail = f"{what} group by {', '.join(call.group_by) or '()'}"
    if call.filters:
        detail += f" where {_describe(call.filters)}"
    return detail


def _looked_up(column: str, transform: str, keys: Sequence[Any]) -> str:
    how = "" if transform == "exact" else f" ({transform})"
    return f"{column}{how} in [{len(keys)} keys]"


def _rows(call: Call[Any], result: Any) -> int:
    """Rows a lookup (groups of rows) or an aggregate (rows) returned; a row that
    several lookups of one statement matched was read once."""
    if isinstance(call, ColumnsLookup):
        return len({id(row) for groups in result for group in groups for row in group})
    return sum(len(g) if isinstance(g, list) else 1 for g in result)


def observed(connector: Connector) -> Connector:
    """``connector`` behind an :class:`ObservedConnector`."""
    return ObservedConnector(connector)
