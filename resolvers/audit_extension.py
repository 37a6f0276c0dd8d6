"""The audit trail's GraphQL side: one entry per operation that read customer data.

Apart from :mod:`resolvers.audit` so that the export path, which records its
chunks through the same :class:`~resolvers.audit.Auditor`, does not load
strawberry and graphql-core (~20 MB).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from resolvers.audit import Auditor, AuditUnavailable, outcome_of
from resolvers.governance import ReadTrail


class AuditExtension(SchemaExtension):
    """Writes one entry per GraphQL operation that read customer data; fails closed."""

    async def on_execute(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        if not isinstance(context, dict):
            return
        trail = context.get("trail")
        auditor = context.get("auditor")
        if not isinstance(trail, ReadTrail) or not trail.touched:
            return
        result = self.execution_context.result
        errors = list(result.errors or []) if result is not None else []
        codes = [str((e.extensions or {}).get("code", "INTERNAL")) for e in errors]
        denied = set(trail.denied)
        try:
            if not isinstance(auditor, Auditor):
                raise AuditUnavailable("this request has no audit log; it is refused")
            auditor.extra["operation"] = self.execution_context.operation_name
            await auditor.record(trail.customers, trail.fields, outcome_of(codes), denied, codes)
        except AuditUnavailable as exc:
            if result is not None:
                result.data = None
                result.errors = [
                    GraphQLError(exc.message, original_error=exc, extensions={"code": exc.code})
                ]
