"""A small REST API for the REST connector's tests, served for real on 127.0.0.1.

``/api/{auth}/{style}/surveys`` serves :data:`SURVEYS` behind one auth scheme
(``open``, ``bearer``, ``basic``, ``keyh``, ``keyq``, ``oauth``) in one
pagination style (``page``, ``offset``, ``cursor``, ``link``, ``plain``),
with filters (``type``, ``created_after``, ``created_before``), sorting
(``sort=-created_at,id``), batched lookups (``ids=1,2``, ``email=a,b``,
repeated ``respondent=a&respondent=b``), single lookups (``id=1``) and
``/surveys/{id}``. ``/api/x/{mode}/surveys`` misbehaves on command (see
:class:`State`); ``/oauth/token`` issues expiring tokens. Every request's
method, path and query is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.servers import serve_in_thread

TOKEN = "s3cret-bearer-token"
USER, PASSWORD = "reader", "s3cret-password"
API_KEY = "s3cret-api-key"
CLIENT_ID, CLIENT_SECRET = "custview", "s3cret-client-secret"
MAX_PAGE = 1000

_BASE = datetime(2024, 1, 1, tzinfo=UTC)
SURVEYS: list[dict[str, Any]] = [
    {
        "id": i,
        "type": "nps" if i % 3 else "csat",
        "score": i % 11,
        "respondent": {"email": f"user{i % 25}@example.com", "name": f"User {i % 25}"},
        # not in id order, so sorting is visible; unique, so it is total
        "created_at": (_BASE + timedelta(hours=(i * 37) % 60)).isoformat(),
        "comment": None if i % 7 == 0 else f"comment {i}",
    }
    for i in range(1, 61)
]


@dataclass
class State:
    """What the server saw and how it misbehaves; tests change it directly."""

    requests: list[tuple[str, str, str]] = field(default_factory=list)
    flaky_left: int = 0
    limited_left: int = 0
    retry_after: str = "0"
    slow_seconds: float = 1.0
    token_lifetime: float = 3600.0
    tokens: dict[str, float] = field(default_factory=dict)
    token_requests: int = 0
    in_flight: int = 0
    most_in_flight: int = 0

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def paths(self, method: str = "GET") -> list[str]:
        return [p for m, p, _ in self.requests if m == method]

    def queries(self) -> list[str]:
        return [q for _, _, q in self.requests]


STATE = State()


class Recorder:
    """Records every request before routing, whatever its method."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope["query_string"].decode()
            path = scope.get("raw_path", scope["path"].encode()).decode()  # as sent
            STATE.requests.append((scope["method"], path, query))
        await self.app(scope, receive, send)


def _authorised(request: Request, scheme: str) -> bool:
    header = request.headers.get("authorization", "")
    if scheme == "open":
        return True
    if scheme == "bearer":
        return header == f"Bearer {TOKEN}"
    if scheme == "basic":
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return header == f"Basic {expected}"
    if scheme == "keyh":
        return request.headers.get("x-api-key") == API_KEY
    if scheme == "keyq":
        return request.query_params.getlist("api_key") == [API_KEY]
    if scheme == "oauth":
        token = header.removeprefix("Bearer ")
        return STATE.tokens.get(token, 0) > time.monotonic()
    return False


def _matching(request: Request) -> list[dict[str, Any]]:
    q = request.query_params
    rows = SURVEYS
    if "ids" in q:
        wanted = set(q["ids"].split(","))
        rows = [r for r in rows if str(r["id"]) in wanted]
    if "id" in q:
        rows = [r for r in rows if str(r["id"]) == q["id"]]
    if "email" in q:
        emails = set(q["email"].split(","))
        rows = [r for r in rows if r["respondent"]["email"] in emails]
    if "respondent" in q:
        emails = set(q.getlist("respondent"))
        rows = [r for r in rows if r["respondent"]["email"] in emails]
    if "type" in q:
        rows = [r for r in rows if r["type"] == q["type"]]
    if "created_after" in q:
        rows = [r for r in rows if r["created_at"] >= q["created_after"]]
    if "created_before" in q:
        rows = [r for r in rows if r["created_at"] < q["created_before"]]
    for name in reversed(q.get("sort", "").split(",") if q.get("sort") else []):
        rows = _sorted(rows, name.lstrip("-"), descending=name.startswith("-"))
    return rows


def _sorted(rows: list[dict[str, Any]], column: str, descending: bool) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r[column], reverse=descending)


def _size(request: Request, name: str) -> int:
    return max(1, min(int(request.query_params.get(name, "10")), MAX_PAGE))


def _paged(request: Request, style: str, rows: list[dict[str, Any]]) -> Response:
    q = request.query_params
    if style == "plain":
        return JSONResponse(rows)
    if style == "page":
        size = _size(request, "per_page")
        start = (int(q.get("page", "1")) - 1) * size
        return JSONResponse({"data": rows[start : start + size]})
    if style == "offset":
        size, start = _size(request, "limit"), int(q.get("offset", "0"))
        return JSONResponse({"data": rows[start : start + size]})
    size = _size(request, "limit")
    if style == "cursor":
        start = int(base64.b64decode(q["cursor"]).decode()) if "cursor" in q else 0
        more = start + size < len(rows)
        cursor = base64.b64encode(str(start + size).encode()).decode() if more else None
        return JSONResponse({"data": rows[start : start + size], "next_cursor": cursor})
    start = int(q.get("after", "0"))  # link
    headers = {}
    if start + size < len(rows):
        following = request.url.include_query_params(after=start + size, limit=size)
        headers["Link"] = f'<{following}>; rel="next", <{request.url}>; rel="self"'
    return JSONResponse({"data": rows[start : start + size]}, headers=headers)


async def surveys(request: Request) -> Response:
    auth, style = request.path_params["auth"], request.path_params["style"]
    if not _authorised(request, auth):
        return JSONResponse({"error": "unauthorised"}, status_code=401)
    return _paged(request, style, _matching(request))


async def survey(request: Request) -> Response:
    if not _authorised(request, request.path_params["auth"]):
        return JSONResponse({"error": "unauthorised"}, status_code=401)
    found = [r for r in SURVEYS if str(r["id"]) == request.path_params["id"]]
    if not found:
        return JSONResponse({"error": "not found"}, status_code=404)
    return JSONResponse({"data": found[0]})


async def _trickle() -> AsyncIterator[bytes]:
    """A body that starts at once and then takes ``slow_seconds`` per piece."""
    yield b'{"data": ['
    for i, row in enumerate(SURVEYS[:20]):
        await asyncio.sleep(STATE.slow_seconds)
        yield (b"," if i else b"") + json.dumps(row).encode()
    yield b"]}"


async def misbehaving(request: Request) -> Response:
    mode = request.path_params["mode"]
    if mode == "flaky" and STATE.flaky_left > 0:
        STATE.flaky_left -= 1
        return JSONResponse({"error": "boom"}, status_code=500)
    if mode == "limited" and STATE.limited_left > 0:
        STATE.limited_left -= 1
        return JSONResponse({}, status_code=429, headers={"Retry-After": STATE.retry_after})
    if mode == "slow":
        await asyncio.sleep(STATE.slow_seconds)
    if mode == "trickle":
        return StreamingResponse(_trickle(), media_type="application/json")
    if mode == "slowish":
        STATE.in_flight += 1
        STATE.most_in_flight = max(STATE.most_in_flight, STATE.in_flight)
        await asyncio.sleep(0.05)
        STATE.in_flight -= 1
    if mode == "notjson":
        return Response("<html>oops</html>", media_type="text/html")
    if mode == "offsite":
        return JSONResponse(
            {"data": SURVEYS[:2]}, headers={"Link": '<http://example.invalid/p2>; rel="next"'}
        )
    if mode == "stuck":
        return JSONResponse({"data": SURVEYS[:2], "next_cursor": "same"})
    return _paged(request, "cursor", _matching(request))


async def token(request: Request) -> Response:
    STATE.token_requests += 1
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    by_header = request.headers.get("authorization") == f"Basic {expected}"
    by_body = form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
    if form.get("grant_type") != "client_credentials" or not (by_header or by_body):
        return JSONResponse({"error": "invalid_client"}, status_code=401)
    issued = f"tok-{STATE.token_requests}"
    STATE.tokens[issued] = time.monotonic() + STATE.token_lifetime
    return JSONResponse(
        {"access_token": issued, "token_type": "Bearer", "expires_in": STATE.token_lifetime}
    )


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app() -> ASGIApp:
    app = Starlette(
        routes=[
            Route("/api/health", health),
            Route("/api/x/{mode}/surveys", misbehaving),
            Route("/api/{auth}/{style}/surveys", surveys),
            Route("/api/{auth}/{style}/surveys/{id}", survey),
            Route("/oauth/token", token, methods=["POST"]),
        ]
    )
    return Recorder(app)


def retry_at(seconds: float) -> str:
    """An HTTP-date ``seconds`` from now, for ``Retry-After``."""
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve() -> Iterator[str]:
    """Run the app with uvicorn in a thread; yields its base URL."""
    with serve_in_thread(create_app()) as url:
        yield url
