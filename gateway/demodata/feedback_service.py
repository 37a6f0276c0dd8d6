"""The demo's customer-feedback service: a small REST API over feedback.db.

It plays a SaaS survey tool that custview reaches only over HTTP through
the REST connector: bearer-token auth, batched lookups
(``?email=a,b`` / ``?respondent_id=1,2``), filters, sorting and cursor
pagination (``{"data": [...], "next_cursor": ...}``). Records always come
in id order (``sort=id`` is accepted and changes nothing), and
``after_id`` continues after a given respondent. ``custview demo``
serves it on loopback next to the gateway.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN_ENV = "CUSTVIEW_FEEDBACK_TOKEN"
DEMO_TOKEN = "demo-feedback-token"
MAX_LIMIT = 500


class _Store:
    """Read-only queries against feedback.db; a connection per thread call."""

    def __init__(self, path: Path) -> None:
        self.uri = f"file:{path}?mode=ro"

    def query(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        con = sqlite3.connect(self.uri, uri=True)
        con.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in con.execute(sql, params)]
        finally:
            con.close()


def _cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode()


def _after(request: Request) -> int:
    raw = request.query_params.get("cursor")
    if not raw:
        return 0
    return int(base64.urlsafe_b64decode(raw.encode()).decode())


def _limit(request: Request) -> int:
    return max(1, min(int(request.query_params.get("limit", "100")), MAX_LIMIT))


def _listed(request: Request, name: str) -> list[str]:
    raw = request.query_params.get(name)
    return [v.strip() for v in raw.split(",") if v.strip()] if raw else []


def _page(rows: list[dict[str, Any]], limit: int) -> Response:
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _cursor(rows[-1]["id"]) if more and rows else None
    return JSONResponse({"data": rows, "next_cursor": next_cursor})


def create_feedback_app(data_dir: Path, token: str | None = None) -> Starlette:
    """The feedback API over ``data_dir/feedback.db``."""
    store = _Store(data_dir / "feedback.db")
    secret = token or os.environ.get(TOKEN_ENV, DEMO_TOKEN)

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {secret}"

    async def respondents(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        where: list[str] = ["id > ?"]
        params: list[object] = [_after(request)]
        emails = _listed(request, "email")
        if emails:
            where.append(f"email IN ({','.join('?' * len(emails))})")
            params.extend(e.lower() for e in emails)
        ids = _listed(request, "ids")
        if ids:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            params.extend(int(i) for i in ids)
        if request.query_params.get("after_id"):
            where.append("id > ?")
            params.append(int(request.query_params["after_id"]))
        limit = _limit(request)
        sql = f"SELECT * FROM respondents WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        return _page(await run_in_threadpool(store.query, sql, [*params, limit + 1]), limit)

    async def responses(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        where: list[str] = ["id > ?"]
        params: list[object] = [_after(request)]
        owners = _listed(request, "respondent_id")
        if owners:
            where.append(f"respondent_id IN ({','.join('?' * len(owners))})")
            params.extend(int(i) for i in owners)
        for param, clause in (
            ("survey", "survey = ?"),
            ("created_after", "created_at >= ?"),
            ("created_before", "created_at < ?"),
            ("min_score", "score >= ?"),
        ):
            if request.query_params.get(param):
                where.append(clause)
                params.append(request.query_params[param])
        limit = _limit(request)
        sql = f"SELECT * FROM responses WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        return _page(await run_in_threadpool(store.query, sql, [*params, limit + 1]), limit)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/api/health", health),
            Route("/api/respondents", respondents),
            Route("/api/responses", responses),
        ]
    )
