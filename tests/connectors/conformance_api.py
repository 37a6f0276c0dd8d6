"""A small JSON API serving the conformance dataset, for the REST connector's suite run.

Served for real on 127.0.0.1 (:func:`tests.support.servers.serve_in_thread`).
The server evaluates every query parameter itself, the way a real API
would, and refuses what it does not know with ``400`` rather than ignoring
it, so a connector that sends the wrong thing fails loudly:

``GET /api/people``
    :data:`~connectors.conformance.DATASET` as ``{"data": [...], "meta":
    {"next_cursor": ...}}``; a record nests ``email`` and ``phone`` under
    ``contact``, ``score`` is a JSON number and ``created_at`` ISO 8601 in
    UTC (``...Z``). Cursor pagination (``cursor``, ``limit`` up to
    :data:`MAX_LIMIT`). Selection: ``ids=1,2`` (id in), ``email=a,b``
    (email in, exact), ``email_null=true|false``, ``country=US``,
    ``country_in=US,GB``, ``score_gte``, ``score_lt``, ``name_contains``,
    ``name_prefix`` (both case-insensitive), ``created_after`` (``>=``),
    ``created_before`` (``<``); ``sort=-score,id`` (``id``, ``score``,
    ``created_at``; NULLs last ascending, first descending; stable).
``GET /api/numbers``
    ``large_rows(LARGE_ROWS)`` as a bare JSON list, page pagination
    (``page`` from 1, ``per_page`` up to 1000), generated page by page.
``GET /api/slow``
    Answers only after :data:`SLOW_SECONDS` (or when the client goes away).
``GET /api/health``
    ``{"ok": true}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.conformance import DATASET
from tests.support.servers import serve_in_thread

LARGE_ROWS = 50_000
MAX_LIMIT = 100
MAX_PER_PAGE = 1000
SLOW_SECONDS = 30.0

Record = dict[str, Any]
Row = dict[str, Any]


class BadRequest(Exception):
    """A query the API refuses (``400``)."""


def _record(row: Row) -> Record:
    """How the API shows one dataset row: nested contact, number score, UTC time."""
    score = row["score"]
    return {
        "id": row["id"],
        "name": row["name"],
        "contact": {"email": row["email"], "phone": row["phone"]},
        "country": row["country"],
        "score": None if score is None else float(score),
        "created_at": row["created_at"].isoformat() + "Z",
    }


# --- parsing parameters ------------------------------------------------------------------


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"not an integer: {text!r}") from None


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadRequest(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise BadRequest(f"not a finite number: {text!r}")
    return value


def _datetime(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"not an ISO 8601 datetime: {text!r}") from None
    if parsed.tzinfo is not None:  # naive means UTC, like the stored values
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise BadRequest(f"not true or false: {text!r}")
    return text == "true"


def _list(text: str) -> list[str]:
    return text.split(",") if text else []


# --- selection -------------------------------------------------------------------------

Test = Callable[[Row], bool]


def _present(column: str, test: Callable[[Any], bool]) -> Test:
    """NULL matches no comparison (as in SQL)."""
    return lambda row: row[column] is not None and test(row[column])


def _where(name: str, text: str) -> Test:
    """The row test one query parameter stands for."""
    if name == "ids":
        ids = {_int(t) for t in _list(text)}
        return lambda row: row["id"] in ids
    if name == "email":
        emails = set(_list(text))
        return _present("email", lambda v: v in emails)
    if name == "email_null":
        wanted = _bool(text)
        return lambda row: (row["email"] is None) is wanted
    if name == "country":
        return _present("country", lambda v: v == text)
    if name == "country_in":
        countries = set(_list(text))
        return _present("country", lambda v: v in countries)
    if name == "score_gte":
        low = _decimal(text)
        return _present("score", lambda v: v >= low)
    if name == "score_lt":
        high = _decimal(text)
        return _present("score", lambda v: v < high)
    if name == "name_contains":
        part = text.casefold()
        return _present("name", lambda v: part in v.casefold())
    if name == "name_prefix":
        prefix = text.casefold()
        return _present("name", lambda v: v.casefold().startswith(prefix))
    if name == "created_after":
        since = _datetime(text)
        return lambda row: row["created_at"] >= since
    if name == "created_before":
        until = _datetime(text)
        return lambda row: row["created_at"] < until
    raise BadRequest(f"unknown parameter {name!r}")


SORTABLE = ("id", "score", "created_at")


def _sorted(rows: list[Row], spec: str) -> list[Row]:
    fields = _list(spec)
    if len(fields) > 2:
        raise BadRequest("at most two sort fields")
    for field in reversed(fields):  # stable sorts, last field first
        descending = field.startswith("-")
        column = field.removeprefix("-")
        if column not in SORTABLE:
            raise BadRequest(f"cannot sort by {column!r}")
        present = [r for r in rows if r[column] is not None]
        nulls = [r for r in rows if r[column] is None]
        present.sort(key=lambda r, c=column: r[c], reverse=descending)
        rows = nulls + present if descending else present + nulls
    return rows


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _offset(cursor: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"]
    except (ValueError, KeyError, TypeError):
        raise BadRequest("bad cursor") from None
    if not isinstance(offset, int) or offset < 0:
        raise BadRequest("bad cursor")
    return offset


def _size(text: str | None, default: int, most: int) -> int:
    size = default if text is None else _int(text)
    if not 1 <= size <= most:
        raise BadRequest(f"page size must be 1 to {most}")
    return size


REPEATABLE = frozenset({"ids", "email"})
"""Parameters that may repeat (``?email=a&email=b`` is ``?email=a,b``)."""


def _single(request: Request) -> dict[str, str]:
    """The query as one value per name; only :data:`REPEATABLE` ones may repeat."""
    params = request.query_params
    found: dict[str, str] = {}
    for name in params:
        values = params.getlist(name)
        if len(values) > 1 and name not in REPEATABLE:
            raise BadRequest(f"repeated parameter {name!r}")
        found[name] = ",".join(values)
    return found


# --- endpoints -------------------------------------------------------------------------


def _bad(exc: BadRequest) -> Response:
    return JSONResponse({"error": "bad_request", "detail": str(exc)}, status_code=400)


async def people(request: Request) -> Response:
    try:
        params = _single(request)
        if "page" in params or "per_page" in params:  # page style
            if "cursor" in params or "limit" in params:
                raise BadRequest("page and cursor parameters do not mix")
            size = _size(params.pop("per_page", None), 10, MAX_LIMIT)
            start = (_int(params.pop("page", "1")) - 1) * size
            if start < 0:
                raise BadRequest("pages start at 1")
        else:  # cursor style
            size = _size(params.pop("limit", None), 10, MAX_LIMIT)
            start = _offset(params.pop("cursor")) if "cursor" in params else 0
        order = params.pop("sort", "")
        tests = [_where(name, text) for name, text in params.items()]
        rows = [r for r in DATASET.rows if all(t(r) for t in tests)]
        rows = _sorted(rows, order)
    except BadRequest as exc:
        return _bad(exc)
    page = rows[start : start + size]
    following = _cursor(start + size) if start + size < len(rows) else None
    return JSONResponse({"data": [_record(r) for r in page], "meta": {"next_cursor": following}})


async def person(request: Request) -> Response:
    """One record by id: ``{"data": {...}}``, or ``404``."""
    for row in DATASET.rows:
        if str(row["id"]) == request.path_params["id"]:
            return JSONResponse({"data": _record(row)})
    return JSONResponse({"error": "not_found"}, status_code=404)


async def numbers(request: Request) -> Response:
    try:
        params = _single(request)
        size = _size(params.pop("per_page", None), 100, MAX_PER_PAGE)
        page = _int(params.pop("page", "1"))
        if page < 1:
            raise BadRequest("pages start at 1")
        if params:
            raise BadRequest(f"unknown parameter(s) {sorted(params)}")
    except BadRequest as exc:
        return _bad(exc)
    first = (page - 1) * size + 1
    last = min(first + size - 1, LARGE_ROWS)
    return JSONResponse([{"id": n, "label": f"row {n}"} for n in range(first, last + 1)])


async def slow(request: Request) -> Response:
    loop = asyncio.get_running_loop()
    until = loop.time() + SLOW_SECONDS
    while loop.time() < until:
        if await request.is_disconnected():
            break
        await asyncio.sleep(0.05)
    return JSONResponse({"data": [{"x": 1}]})


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/health", health),
            Route("/api/people", people),
            Route("/api/people/{id}", person),
            Route("/api/numbers", numbers),
            Route("/api/slow", slow),
        ]
    )


@contextmanager
def serve() -> Iterator[str]:
    """Run the API with uvicorn in a thread; yields its base URL."""
    with serve_in_thread(create_app()) as url:
        yield url
