"""The audit trail's GraphQL side: one entry per operation that read customer data.

Apart from :mod:`resolvers.audit` so that the export path, which records its
chunks through the same :class:`~resolvers.audit.Auditor`, does not load
strawberry and graphql-core (~20 MB).
"""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.types import ExecutionContext

from resolvers.audit import Auditor, AuditUnavailable, outcome_of
from resolvers.governance import ReadTrail
from resolvers.hot import HotExtension


class AuditExtension(HotExtension):
    """Writes one entry per GraphQL operation that read customer data; fails closed."""

    async def executed(
        self, context: ExecutionContext, state: None, raised: BaseException | None
    ) -> None:
        if raised is not None:
            return
        request = context.context
        if not isinstance(request, dict):
            return
        trail = request.get("trail")
        auditor = request.get("auditor")
        if not isinstance(trail, ReadTrail) or not trail.touched:
            return
        result = context.result
        errors = list(result.errors or []) if result is not None else []
        codes = [str((e.extensions or {}).get("code", "INTERNAL")) for e in errors]
        denied = set(trail.denied)
        try:
            if not isinstance(auditor, Auditor):
                raise AuditUnavailable("this request has no audit log; it is refused")
            auditor.extra["operation"] = context.operation_name
            await auditor.record(trail.customers, trail.fields, outcome_of(codes), denied, codes)
        except AuditUnavailable as exc:
            if result is not None:
                result.data = None
                result.errors = [
                    GraphQLError(exc.message, original_error=exc, extensions={"code": exc.code})
                ]
