"""Signing requests: bearer, basic, API key and OAuth2 client credentials.

Each scheme is an :class:`httpx.Auth`, applied per request by
:class:`~connectors.rest.client.SourceClient`. The OAuth2 token is fetched
once (one request however many calls wait for it), cached until shortly
before it expires, and fetched again when the API answers 401.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any

import httpx

from connectors.errors import SourceUnavailable
from connectors.rest.options import (
    APIKeyAuth,
    AuthOptions,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
)

TokenPost = Callable[[str, dict[str, str], httpx.Auth | None], Awaitable[httpx.Response]]
"""Sends the token request: ``(url, form fields, client auth) -> response``."""

_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")


class HeaderAuth(httpx.Auth):
    """A fixed header (bearer token, API key)."""

    def __init__(self, name: str, value: str) -> None:
        self._name = name
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._name] = self._value
        yield request


class QueryAuth(httpx.Auth):
    """A fixed query parameter (API key); set, not appended, so links that echo it stay valid."""

    def __init__(self, name: str, value: str) -> None:
        self._name = name
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_set_param(self._name, self._value)
        yield request


class OAuth2Auth(httpx.Auth):
    """Client credentials grant with a cached, shared token."""

    def __init__(self, options: OAuth2ClientCredentials, post: TokenPost, source: str) -> None:
        self._options = options
        self._post = post
        self._source = source
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("OAuth2Auth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # Revoked or expired early: one fresh token, one more try.
            self._forget(token)
            request.headers["Authorization"] = f"Bearer {await self.token()}"
            yield request

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._token, lifetime = await self._fetch()
                margin = min(self._options.expiry_margin, lifetime / 2)
                self._refresh_at = time.monotonic() + lifetime - margin
            return self._token

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        o = self._options
        form = {"grant_type": "client_credentials"}
        if o.scope:
            form["scope"] = o.scope
        client_auth: httpx.Auth | None = None
        if o.client_auth == "basic":
            client_auth = httpx.BasicAuth(o.client_id, o.client_secret.get_secret_value())
        else:
            form |= {"client_id": o.client_id, "client_secret": o.client_secret.get_secret_value()}
        response = await self._post(o.token_url, form, client_auth)
        body = _json(response)
        if response.status_code != 200:
            code = body.get("error") if isinstance(body, dict) else None
            why = f" ({code})" if isinstance(code, str) and _ERROR_CODE.match(code) else ""
            raise self._failure(f"HTTP {response.status_code}{why}")
        token = body.get("access_token") if isinstance(body, dict) else None
        kind = body.get("token_type", "bearer") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or str(kind).lower() != "bearer":
            raise self._failure("the answer holds no bearer access_token")
        return token, _lifetime(body.get("expires_in"))

    def _failure(self, why: str) -> SourceUnavailable:
        return SourceUnavailable(f"oauth2 token request failed: {why}", source=self._source)


def _lifetime(expires_in: Any) -> float:
    """Seconds the token lives; no (or no usable) ``expires_in`` means until a 401."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return float("inf")
    return max(seconds, 0.0)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def build_auth(options: AuthOptions | None, post: TokenPost, source: str) -> httpx.Auth | None:
    """The :class:`httpx.Auth` for ``options`` (``None``: anonymous)."""
    if options is None:
        return None
    if isinstance(options, BearerAuth):
        return HeaderAuth("Authorization", f"Bearer {options.token.get_secret_value()}")
    if isinstance(options, BasicAuth):
        return httpx.BasicAuth(options.username, options.password.get_secret_value())
    if isinstance(options, APIKeyAuth):
        value = options.value.get_secret_value()
        if options.header is not None:
            return HeaderAuth(options.header, value)
        assert options.query is not None
        return QueryAuth(options.query, value)
    return OAuth2Auth(options, post, source)
