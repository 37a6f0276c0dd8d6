"""Steward decisions over GraphQL: link, unlink, not-a-duplicate, undo.

Mutations touch only custview's own identity registry, never a source. Each
returns the recorded decision and the customers as they are now, so a
steward sees the effect at once. With authentication on, deciding needs the
``steward`` or ``admin`` role.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from strawberry.types import Info

from resolvers.policy import AccessDenied
from resolvers.records import RecordRef
from resolvers.registry import Decision
from resolvers.view import CustomerView, RequestView

STEWARD_ROLES = frozenset({"steward", "admin"})


@strawberry.type(description="A steward's identity decision, as the registry recorded it.")
class IdentityDecision:
    id: int = strawberry.field(description="Sequence number; pass it to undoDecision")
    action: str = strawberry.field(description="LINK, UNLINK, NOT_DUPLICATE or UNDO")
    actor: str = strawberry.field(description="Who decided (authentication method:name)")
    at: dt.datetime
    refs: list[str] = strawberry.field(description="The source record references it is about")
    undoes: int | None = strawberry.field(description="UNDO: the decision it cancels")
    undone: bool = strawberry.field(description="Whether a later UNDO cancelled it")


def decision_type(decision: Decision) -> IdentityDecision:
    return IdentityDecision(
        id=decision.seq,
        action=decision.action.upper(),
        actor=decision.actor,
        at=decision.at,
        refs=[r for r in (decision.a, decision.b) if r],
        undoes=decision.target,
        undone=decision.undone,
    )


def customer_decisions(root: CustomerView, info: Info[Any, Any]) -> list[IdentityDecision]:
    view: RequestView = info.context["view"]
    return [decision_type(d) for d in view.decisions(root)]


def _actor(info: Info[Any, Any]) -> str:
    roles = info.context.get("roles")
    if roles is not None and STEWARD_ROLES.isdisjoint(roles):
        raise AccessDenied("identity decisions need the 'steward' or 'admin' role")
    return str(info.context.get("actor") or "local")


def mutation_type(customer: type, extra: dict[str, Any] | None = None) -> type:
    """The Mutation root; ``customer`` is the model's generated Customer type,
    ``extra`` more mutation fields (data-subject rights)."""

    result_type = strawberry.type(
        type(
            "IdentityDecisionResult",
            (),
            {
                "decision": strawberry.field(graphql_type=IdentityDecision),
                "customers": strawberry.field(
                    graphql_type=list[customer],  # type: ignore[valid-type]
                    description="The customers now holding the records the decision is about",
                ),
            },
        ),
        description="A decision and the customers as they are after it.",
    )

    async def _result(view: RequestView, decision: Decision, *refs: RecordRef) -> Any:
        found: dict[str, CustomerView] = {}
        for ref in refs:
            customer_view = await view.by_ref(ref)
            if customer_view is not None:
                found.setdefault(customer_view.id, customer_view)
        return result_type(decision=decision_type(decision), customers=list(found.values()))

    async def link_records(info: Info[Any, Any], a: str, b: str) -> Any:
        view: RequestView = info.context["view"]
        left, right = RecordRef.parse(a), RecordRef.parse(b)
        decision = await view.link(_actor(info), left, right)
        return await _result(view, decision, left, right)

    async def unlink_record(info: Info[Any, Any], ref: str) -> Any:
        view: RequestView = info.context["view"]
        record = RecordRef.parse(ref)
        decision, mate = await view.unlink(_actor(info), record)
        return await _result(view, decision, record, *([mate] if mate else []))

    async def mark_not_duplicates(info: Info[Any, Any], a: str, b: str) -> Any:
        view: RequestView = info.context["view"]
        decision = await view.not_duplicate(_actor(info), str(a), str(b))
        return await _result(
            view, decision, RecordRef.parse(decision.a), RecordRef.parse(decision.b or "")
        )

    async def undo_decision(info: Info[Any, Any], id: int) -> Any:
        view: RequestView = info.context["view"]
        decision = await view.undo(_actor(info), id)
        refs = [RecordRef.parse(r) for r in (decision.a, decision.b) if r]
        return await _result(view, decision, *refs)

    fields = {
        "link_records": strawberry.mutation(
            resolver=link_records,
            graphql_type=result_type,
            name="linkRecords",
            description="Records a and b (source/table/id) are the same customer.",
        ),
        "unlink_record": strawberry.mutation(
            resolver=unlink_record,
            graphql_type=result_type,
            name="unlinkRecord",
            description="Take a record out of its customer: it follows no identity key or "
            "batch link any more (steward links still apply).",
        ),
        "mark_not_duplicates": strawberry.mutation(
            resolver=mark_not_duplicates,
            graphql_type=result_type,
            name="markNotDuplicates",
            description="a and b (customer ids or source/table/id refs) are different "
            "people: the model never links them and never lists one as the other's "
            "possible duplicate (records sharing an identity key stay joined).",
        ),
        "undo_decision": strawberry.mutation(
            resolver=undo_decision,
            graphql_type=result_type,
            name="undoDecision",
            description="Cancel an earlier decision (undo an UNDO to restore it).",
        ),
    }
    return strawberry.type(type("Mutation", (), {**fields, **(extra or {})}))


async def decisions_field(info: Info[Any, Any], first: int = 50) -> list[IdentityDecision]:
    view: RequestView = info.context["view"]
    registry = view.federation.registry
    if registry is not None:
        await registry.refresh()
    return [decision_type(d) for d in view.decisions()[: max(first, 0)]]
