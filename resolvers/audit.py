"""The audit trail: every read of customer data, as one entry.

An entry says who read (principal, roles), when, from where (client
address), why (the ``X-Purpose`` header), through which path (``graphql``
or ``export``), which customers and which fields — names, never values —
and the outcome. The gateway supplies where entries go (an
:class:`AuditLog`) and who the caller is (a :class:`Caller`); this module
decides what an entry holds and when it is written: after a GraphQL
operation that touched ``customer``/``customers``, and before each chunk of
an export leaves.

Audit failure fails closed: a GraphQL answer whose entry could not be
written is replaced by an ``AUDIT_UNAVAILABLE`` error, and an export stops.
The GraphQL side is :mod:`resolvers.audit_extension`, kept apart so that an
export does not load strawberry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors import CustviewError


class AuditUnavailable(CustviewError):
    """The audit log could not be written; the read is refused."""

    code = "AUDIT_UNAVAILABLE"


class AuditLog(Protocol):
    async def append(self, entry: dict[str, Any]) -> None:
        """Store one entry durably, or raise."""


@dataclass(frozen=True, slots=True)
class Caller:
    principal: str
    method: str
    roles: tuple[str, ...] = ()
    client: str | None = None
    purpose: str | None = None


@dataclass(slots=True)
class Auditor:
    """Writes the entries of one caller's reads to one log."""

    log: AuditLog
    caller: Caller
    channel: str = "graphql"
    extra: dict[str, Any] = field(default_factory=dict)

    async def record(
        self,
        customers: Iterable[str],
        fields: Iterable[str],
        outcome: str,
        denied: Iterable[str] = (),
        errors: Iterable[str] = (),
    ) -> None:
        entry = {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "principal": self.caller.principal,
            "method": self.caller.method,
            "roles": list(self.caller.roles),
            "client": self.caller.client,
            "purpose": self.caller.purpose,
            "channel": self.channel,
            **self.extra,
            "customers": sorted(customers),
            "fields": sorted(fields),
            "denied": sorted(denied),
            "outcome": outcome,
            "errors": sorted(set(errors)),
        }
        try:
            await self.log.append(entry)
        except Exception as exc:  # any failure to store is a refusal, whatever its kind
            raise AuditUnavailable(
                "the audit log could not be written, so nothing is answered; "
                "tell the operator (the gateway log has the cause)"
            ) from exc


def outcome_of(codes: Iterable[str]) -> str:
    found = set(codes)
    if not found:
        return "ok"
    if found & {"FORBIDDEN_FIELD", "FORBIDDEN"}:
        return "denied"
    if found <= {"SOURCE_TIMEOUT", "SOURCE_UNAVAILABLE", "CIRCUIT_OPEN"}:
        return "partial"
    return "error"
