"""The SQL endpoint: PostgreSQL clients (psql, psycopg, SQLAlchemy, BI tools)
log in with an API key as the password and query the curated catalog.

Off by default (``sql.enabled``); when on, the app's lifespan serves it on
its own port next to HTTP, sharing the federation, the authenticator, the
policy and the audit log, so a SQL read is authenticated, governed and
audited exactly as a GraphQL read or an export is (channel ``sql``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from connectors import ConnectorError, CustviewError
from connectors.cache import cache_scope
from connectors.deadline import deadline_scope
from gateway.audit import AuditStore
from gateway.auth import Authenticator, AuthError
from gateway.pgwire import Column, PgError, PgServer, Prepared
from gateway.sql_settings import SqlSettings, tls_context
from resolvers.audit import Auditor, AuditUnavailable, Caller
from resolvers.policy import AccessDenied, ForbiddenField, Policy
from resolvers.sqlview import SETTINGS, SqlError, SqlSession, build_catalog
from resolvers.view import Federation


def pg_error(exc: Exception) -> PgError:
    """A custview error as the SQLSTATE a SQL client understands."""
    if isinstance(exc, SqlError):
        return PgError(exc.sqlstate, exc.message)
    if isinstance(exc, ForbiddenField | AccessDenied):
        return PgError("42501", exc.message)
    if isinstance(exc, ConnectorError):
        return PgError("58000", f"source '{exc.source}' failed: {exc.reason}")
    if isinstance(exc, AuditUnavailable):
        return PgError("58000", exc.message)
    if isinstance(exc, CustviewError):
        return PgError("22023", exc.message)
    raise exc


async def _governed(
    chunks: AsyncIterator[list[tuple[Any, ...]]], deadline: float | None
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The rows, custview errors as SQL errors. Like an export, a statement may
    stream for as long as it has rows; each chunk gets the request deadline."""
    try:
        while True:
            with deadline_scope(deadline):
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            yield chunk
    except CustviewError as exc:
        raise pg_error(exc) from None
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


class _Session:
    def __init__(self, sql: SqlSession, deadline: float | None) -> None:
        self.sql = sql
        self.deadline = deadline

    def transaction_status(self) -> bytes:
        return b"T" if self.sql.in_transaction else b"I"

    async def prepare(self, sql: str, params: Sequence[Any] | None) -> Prepared:
        try:
            answer = await self.sql.execute(sql, params)
        except CustviewError as exc:
            raise pg_error(exc) from None
        columns = None if answer.columns is None else [Column(n, t) for n, t in answer.columns]
        chunks = None if answer.chunks is None else _governed(answer.chunks, self.deadline)
        return Prepared(columns, answer.tag, chunks)

    async def aclose(self) -> None:
        return None


class CustviewBackend:
    """Logins checked like HTTP requests; sessions over the app's federation."""

    def __init__(
        self,
        federation: Federation,
        authenticator: Authenticator,
        policy: Policy,
        audit: AuditStore,
        deadline: float | None,
    ) -> None:
        self.federation = federation
        self.authenticator = authenticator
        self.policy = policy
        self.audit = audit
        self.deadline = deadline
        self.catalog = build_catalog(federation.model)
        self.needs_password = authenticator.settings.mode != "disabled"

    def parameters(self) -> dict[str, str]:
        names = ("server_version", "server_encoding", "client_encoding", "DateStyle",
                 "IntervalStyle", "TimeZone", "integer_datetimes", "standard_conforming_strings",
                 "is_superuser", "default_transaction_read_only")  # fmt: skip
        return {n: SETTINGS[n] for n in names}

    async def start(
        self, user: str, password: str | None, options: dict[str, str], client: str | None
    ) -> _Session:
        if not self.needs_password:
            principal = self.authenticator.anonymous()
        elif not password:
            raise PgError("28P01", "send an API key as the password")
        else:
            try:
                principal = self.authenticator.authenticate({"x-api-key": password})
            except AuthError:
                # the same words whatever was wrong: no hint for someone guessing keys
                raise PgError(
                    "28P01", f'password authentication failed for user "{user}"'
                ) from None
        try:
            grant = self.policy.grant(principal.roles, principal.attributes)
        except AccessDenied as exc:
            raise PgError("28000", exc.message) from None
        # the connection's task keeps this scope: its cached source answers are its role's
        cache_scope.set(principal.cache_scope())
        caller = Caller(principal.name, principal.method, tuple(sorted(principal.roles)), client)
        auditor = Auditor(self.audit, caller, "sql")
        session = SqlSession(
            self.federation,
            grant,
            auditor,
            user=user or principal.name,
            database=options.get("database") or "custview",
            catalog=self.catalog,
        )
        return _Session(session, self.deadline)


def create_sql_server(
    settings: SqlSettings,
    federation: Federation,
    authenticator: Authenticator,
    policy: Policy,
    audit: AuditStore,
    deadline: float | None,
) -> PgServer:
    backend = CustviewBackend(federation, authenticator, policy, audit, deadline)
    return PgServer(
        backend,
        settings.host,
        settings.port,
        tls=tls_context(settings),
        require_tls=settings.require_tls,
    )
