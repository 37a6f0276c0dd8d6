"""The one HTTP client of a REST source, and everything every request shares.

* **Read-only by construction**: a request hook refuses any method but GET
  (and POST to the OAuth2 token endpoint), and any origin other than the
  source's own, so neither a redirect nor a ``Link`` header can send the
  credentials elsewhere.
* **Politeness**: at most ``max_concurrency`` requests in flight; ``429``
  waits as ``Retry-After`` says; connection errors and 5xx are retried
  (GET only) with exponential backoff and full jitter. A small loop rather
  than ``stamina``: the wait depends on the *response* (``Retry-After``
  versus backoff) and must never outlast the caller's deadline, which a
  status-aware loop says more plainly than exception predicates.
* **Errors** become :mod:`connectors.errors` types naming the source, the
  resource and the status, never a URL's query (an API key may be there),
  a header or a secret.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connectors.deadline import time_left
from connectors.errors import ReadOnlyViolation, SourceTimeout, SourceUnavailable
from connectors.observe import sent
from connectors.redaction import describe_error
from connectors.request_id import HEADER as REQUEST_ID_HEADER
from connectors.request_id import current_request_id
from connectors.rest.auth import build_auth
from connectors.rest.options import OAuth2ClientCredentials, RESTOptions

Params = Mapping[str, str | Sequence[str]]

MAX_RATE_LIMITED = 10
"""429 answers one call sits out before giving up (each wait is bounded too)."""


class SourceClient:
    """GETs to one source under its limits; counts what it sends."""

    def __init__(self, source: str, options: RESTOptions) -> None:
        self.source = source
        self.options = options
        self.requests = 0
        """GET requests sent (retries and pages included; token requests not)."""
        self.token_requests = 0
        self._base = httpx.URL(options.base_url.rstrip("/") + "/")
        self._token_url: httpx.URL | None = None
        if isinstance(options.auth, OAuth2ClientCredentials):
            self._token_url = self._base.join(options.auth.token_url.lstrip("/"))
        self._origins = {_origin(self._base)}
        if self._token_url is not None:
            self._origins.add(_origin(self._token_url))
        self._auth = build_auth(options.auth, self._post_token, source)
        self._secrets = options.secrets()  # auth's and the secret headers' values
        self._slots = asyncio.Semaphore(options.max_concurrency)
        self.in_flight = 0
        """GETs holding one of the ``max_concurrency`` slots right now."""
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            n = self.options.max_concurrency
            self._client = httpx.AsyncClient(
                base_url=self._base,
                headers={
                    "Accept": "application/json",
                    "User-Agent": "custview",
                    **self.options.headers,
                },
                timeout=httpx.Timeout(self.options.timeout),
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                follow_redirects=True,
                max_redirects=5,
                event_hooks={"request": [self._guard]},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def url(self, path: str) -> httpx.URL:
        """``path`` relative to ``base_url`` (a leading ``/`` does not drop the base path)."""
        return self._base.join(path.lstrip("/"))

    @asynccontextmanager
    async def deadline(self, what: str) -> AsyncIterator[float]:
        """``options.timeout`` for the body, cut to the time left before the
        request's deadline; yields the loop time it ends at."""
        seconds, request_deadline = time_left(self.options.timeout)
        if request_deadline is not None and seconds <= 0:
            raise request_deadline.passed(self.source)
        try:
            async with asyncio.timeout(seconds) as scope:
                when = scope.when()
                assert when is not None
                yield when
        except TimeoutError:
            if request_deadline is not None:
                raise request_deadline.exceeded(self.source) from None
            raise SourceTimeout(
                f"{what}: no answer within {self.options.timeout:g} s", source=self.source
            ) from None

    async def get(
        self,
        url: httpx.URL,
        params: Params | None,
        *,
        what: str,
        deadline: float,
        missing_ok: bool = False,
        retry: bool = True,
    ) -> httpx.Response | None:
        """GET ``url``; ``None`` for a 404 when ``missing_ok``. Raises on any other failure."""
        where = f"{what}: GET {url.path}"
        sent(_request_line(url, params))
        failures = rate_limited = 0
        retries = self.options.retries if retry else 0
        while True:
            try:
                async with self._slots:
                    self.in_flight += 1
                    try:
                        # httpx drops a URL's own query when given empty params (next links
                        # carry one).
                        response = await self.client.get(
                            url, params=params or None, auth=self._auth
                        )
                    finally:
                        self.in_flight -= 1
            except httpx.TimeoutException:
                raise SourceTimeout(
                    f"{where}: no answer within {self.options.timeout:g} s", source=self.source
                ) from None
            except httpx.TransportError as exc:
                failures += 1
                if failures > retries:
                    raise self._unavailable(f"{where}: {self._describe(exc)}") from None
                await self._pause(self._backoff(failures), deadline, where)
                continue
            except httpx.HTTPError as exc:
                raise self._unavailable(f"{where}: {self._describe(exc)}") from None
            status = response.status_code
            if status == 429:
                rate_limited += 1
                wait = retry_after(response)
                if wait is None:
                    wait = self._backoff(rate_limited)
                if rate_limited > MAX_RATE_LIMITED:
                    raise self._unavailable(f"{where}: still rate limited (HTTP 429)")
                await self._pause(wait, deadline, f"{where}: rate limited (HTTP 429)")
                continue
            if status >= 500 and failures < retries:
                failures += 1
                await self._pause(self._backoff(failures), deadline, f"{where}: HTTP {status}")
                continue
            if status == 404 and missing_ok:
                return None
            if not 200 <= status < 300:
                tries = f" after {failures + 1} attempts" if failures else ""
                raise self._unavailable(f"{where}: HTTP {status}{tries}")
            return response

    def json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise self._unavailable(f"{what}: the answer is not JSON") from None

    async def _post_token(
        self, url: str, form: dict[str, str], client_auth: httpx.Auth | None
    ) -> httpx.Response:
        assert self._token_url is not None
        # Runs inside a GET's auth flow, which already holds a concurrency slot.
        auth = client_auth if client_auth is not None else httpx.USE_CLIENT_DEFAULT
        return await self.client.post(self._token_url, data=form, auth=auth)

    async def _guard(self, request: httpx.Request) -> None:
        """Every request passes here before it leaves, redirects and token requests too."""
        if request.method == "POST" and _same_resource(request.url, self._token_url):
            self.token_requests += 1
        elif request.method == "GET":
            self.requests += 1
        else:
            raise ReadOnlyViolation(
                f"refused to send {request.method}: the REST connector only reads",
                source=self.source,
            )
        if _origin(request.url) not in self._origins:
            raise self._unavailable(
                f"refused to follow the source to another origin ({request.url.host})"
            )
        request_id = current_request_id()
        if request_id is not None and REQUEST_ID_HEADER not in request.headers:
            request.headers[REQUEST_ID_HEADER] = request_id

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        o = self.options
        ceiling = min(o.retry_max_wait, o.retry_initial_wait * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    async def _pause(self, wait: float, deadline: float, why: str) -> None:
        """Sleep ``wait`` seconds, unless that outlasts the deadline: then fail now."""
        if asyncio.get_running_loop().time() + wait >= deadline:
            raise self._unavailable(
                f"{why}; waiting {wait:.2g} s more would exceed "
                f"the {self.options.timeout:g} s timeout"
            )
        await asyncio.sleep(wait)

    def _unavailable(self, message: str) -> SourceUnavailable:
        # the client retries its own requests (backoff, Retry-After): no second layer
        return SourceUnavailable(message, source=self.source, retryable=False)

    def _describe(self, exc: BaseException) -> str:
        return describe_error(exc, self._secrets)


def _request_line(url: httpx.URL, params: Params | None) -> str:
    """``GET /path (name: N values, ...)``: the request's shape, not its values."""
    merged = httpx.QueryParams(url.query).merge(params or {})
    names = list(dict.fromkeys(merged.keys()))
    shapes = []
    for name in names:
        values = [v for value in merged.get_list(name) for v in value.split(",")]
        shapes.append(name if len(values) == 1 else f"{name}: {len(values)} values")
    return f"GET {url.path}" + (f" ({', '.join(shapes)})" if shapes else "")


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default)


def _same_resource(url: httpx.URL, target: httpx.URL | None) -> bool:
    return target is not None and url.copy_with(query=None) == target.copy_with(query=None)
