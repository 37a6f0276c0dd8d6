"""The customer's interaction timeline: rows of several relations (tickets,
orders, opportunities, ...) merged newest first, cursor-paginated.

Rows come through the relations' per-request DataLoaders, so a timeline
costs no statement beyond the relations it shows, and its sources are read
concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from connectors import ConnectorError, QueryError
from resolvers.coerce import coerce

if TYPE_CHECKING:
    from resolvers.view import CustomerView, RequestView


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    at: dt.datetime
    title: str | None
    detail: str | None
    source: str
    ref: str

    def position(self) -> tuple[str, str, str]:
        return (self.at.isoformat(), self.kind, self.ref)


@dataclass(frozen=True, slots=True)
class TimelinePage:
    events: list[Event]
    has_next: bool
    end_cursor: str | None


def _encode(position: tuple[str, str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def _decode(cursor: str) -> tuple[str, str, str]:
    try:
        at, kind, ref = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return (str(at), str(kind), str(ref))
    except (ValueError, TypeError):
        raise QueryError(f"'{cursor}' is not a timeline cursor") from None


async def timeline(
    view: RequestView,
    customer: CustomerView,
    first: int,
    after: str | None,
    kinds: Sequence[str] | None,
) -> TimelinePage:
    """Events of the customer, newest first, after ``after``, at most ``first``."""
    model = view.model
    wanted = list(kinds) if kinds is not None else list(model.timeline)
    unknown = [k for k in wanted if k not in model.timeline]
    if unknown:
        raise QueryError(
            f"unknown timeline kind(s) {', '.join(unknown)}; known: {', '.join(model.timeline)}"
        )
    if first < 0:
        raise QueryError("'first' must not be negative")
    groups = await asyncio.gather(
        *(view.related_rows(customer, model.timeline[k].relation) for k in wanted),
        return_exceptions=True,
    )
    events: list[Event] = []
    for kind, rows in zip(wanted, groups, strict=True):
        if isinstance(rows, ConnectorError):
            # degrade: the other sources' events still answer; the response names
            # the failed source (extensions.custview) instead of nulling the customer
            if rows not in view.errors:
                view.errors.append(rows)
            continue
        if isinstance(rows, BaseException):
            raise rows
        spec = model.timeline[kind]
        rel = model.relations[spec.relation]
        for row in rows:
            at = coerce(row.get(spec.at), "datetime")
            if at is None:
                continue
            events.append(
                Event(
                    kind=kind,
                    at=at,
                    title=None if spec.title is None else coerce(row.get(spec.title), "string"),
                    detail=None if spec.detail is None else coerce(row.get(spec.detail), "string"),
                    source=rel.source,
                    ref=f"{rel.source}/{rel.table}/{row.get(rel.key)}",
                )
            )
    events.sort(key=Event.position, reverse=True)
    if after is not None:
        position = _decode(after)
        events = [e for e in events if e.position() < position]
    page = events[:first]
    end = _encode(page[-1].position()) if page else after
    return TimelinePage(page, len(events) > first, end)
