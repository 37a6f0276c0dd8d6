"""Data-subject rights: what custview can tell a person about themselves.

``customerDataReport(id | email)`` answers a subject-access request: every
source record custview can see about the person (where it lives and every
value custview reads from it), the records related to them (tickets,
orders, ...), the golden values with their provenance, and what the
identity registry holds about their records (steward decisions, batch
links). It is one JSON document, built from the same stitching as every
other answer, and read live from the sources.

A report shows everything, unmasked, so it needs the ``dpo`` (or
``admin``) role and a grant that allows every field: a role with masks or
row rules cannot ask for one. Each report is an audited read of the
customer (field ``customerDataReport``).

``requestErasure(customerId, reason)`` answers an erasure request. Sources
are read-only to custview, so it records a tombstone per member record in
the identity registry (ids only), answers the exact source records each
system must delete, and from then on the customer is in no answer (see
:meth:`resolvers.identity.Resolution.cluster`) and its records can be
named by no steward decision. It is refused while a source fails: the list
of records to delete would be incomplete. The reason goes to the audit
entry, not to the registry.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from connectors import ConnectorError, QueryError, SourceUnavailable
from resolvers.coerce import as_text, json_value
from resolvers.governance import ReadTrail, grant_of
from resolvers.policy import AccessDenied
from resolvers.records import RecordRef
from resolvers.view import CustomerView, RequestView

RIGHTS_ROLES = frozenset({"dpo", "admin"})
"""Roles that may answer data-subject requests."""


def authorise(info: Info[Any, Any], what: str) -> str:
    """The actor of a data-subject request, or :class:`AccessDenied`.

    The caller needs a rights role (when authentication is on) and a grant
    that shows every field of every customer (the report is unmasked)."""
    grant = grant_of(info)
    roles = info.context.get("roles")
    if roles is not None and RIGHTS_ROLES.isdisjoint(roles):
        raise AccessDenied(f"{what} needs the 'dpo' or 'admin' role")
    if not grant.full:
        raise AccessDenied(
            f"{what} shows every field unmasked: your roles' policy masks or hides some "
            "fields or customers (give the 'dpo' role `default: allow` and no row rules)"
        )
    return str(info.context.get("actor") or "local")


def note_read(info: Info[Any, Any], customer_id: str | None, name: str) -> None:
    """Puts the request in the audit trail as a read of ``customer_id``."""
    trail = info.context.get("trail")
    if isinstance(trail, ReadTrail):
        trail.touched = True
        trail.note(customer_id, name)


async def find(view: RequestView, id: str | None, email: str | None) -> CustomerView | None:
    if (id is None) == (email is None):
        raise QueryError("give exactly one of id or email")
    if id is not None:
        return await view.by_id(id)
    assert email is not None
    return await view.by_email(email)


def _record(source: str, table: str, key: Any, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": source,
        "table": table,
        "id": str(key),
        "ref": f"{source}/{table}/{key}",
        "values": {column: json_value(value) for column, value in row.items()},
    }


async def _related(view: RequestView, customer: CustomerView) -> list[dict[str, Any]]:
    """Every row of every relation the customer's records own."""
    found = []
    for name, rel in view.model.relations.items():
        try:
            rows = await view.related_rows(customer, name)
        except ConnectorError as exc:
            if view.failure(exc.source or "") is None:
                view.errors.append(exc)
            continue
        for row in rows:
            entry = _record(rel.source, rel.table, row.get(rel.key), row)
            found.append({"relation": name, "entity": rel.entity, **entry})
    return found


def _golden(customer: CustomerView) -> list[dict[str, Any]]:
    return [
        {
            "field": p.field,
            "value": json_value(customer.golden.values.get(p.field)),
            "ref": str(p.ref),
            "rule": p.rule,
            "reason": p.reason,
            "alternatives": [{"value": as_text(v), "ref": str(r)} for v, r in p.alternatives],
        }
        for p in customer.golden.provenance.values()
    ]


def _registry(view: RequestView, customer: CustomerView) -> dict[str, Any]:
    registry = view.federation.registry
    refs = [str(r.ref) for r in customer.records]
    decisions = [
        {
            "id": d.seq,
            "action": d.action.upper(),
            "actor": d.actor,
            "at": d.at.isoformat(),
            "refs": [r for r in (d.a, d.b) if r],
            "undoes": d.target,
            "undone": d.undone,
        }
        for d in view.decisions(customer)
    ]
    links = registry.links_of(refs) if registry is not None else []
    return {
        "decisions": decisions,
        "links": [{"refs": [a, b], "probability": score} for a, b, score in links],
    }


async def data_report(view: RequestView, customer: CustomerView) -> dict[str, Any]:
    """The subject-access report of one customer (see the module docstring)."""
    related = await _related(view, customer)
    failed = {e.source: e.code for e in view.errors if e.source}
    return {
        "customerId": customer.id,
        "generatedAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "complete": not failed,
        "failedSources": failed,
        "records": [
            {
                **_record(r.member.source, r.member.table, r.key, r.row),
                "label": r.member.label or r.member.table,
            }
            for r in customer.records
        ],
        "related": related,
        "golden": _golden(customer),
        "registry": _registry(view, customer),
    }


async def customer_data_report(
    info: Info[Any, Any], id: strawberry.ID | None = None, email: str | None = None
) -> Any:
    authorise(info, "a customer data report")
    view: RequestView = info.context["view"]
    customer = await find(view, None if id is None else str(id), email)
    note_read(info, customer.id if customer else None, "customerDataReport")
    if customer is None:
        return None
    return await data_report(view, customer)


def query_fields() -> dict[str, Any]:
    return {
        "customer_data_report": strawberry.field(
            resolver=customer_data_report,
            graphql_type=JSON | None,
            name="customerDataReport",
            description="Subject-access report (dpo or admin role): every source record, "
            "related row, golden value with provenance and registry entry about the "
            "customer with this id or email, as JSON; null when there is none.",
        )
    }


@strawberry.type(description="A source record its system must delete for an erasure.")
class RecordToDelete:
    source: str
    table: str
    id: strawberry.ID
    ref: str = strawberry.field(description="source/table/id")
    relation: str | None = strawberry.field(
        description="The relation (tickets, orders, ...) of a related row; null for one of "
        "the person's own records"
    )


@strawberry.type(description="An erasure request, as the identity registry recorded it.")
class Erasure:
    id: int = strawberry.field(description="Sequence number of its first tombstone")
    customer_id: strawberry.ID
    at: dt.datetime
    actor: str
    records: list[RecordToDelete] = strawberry.field(
        description="Every source record each system must delete, by source"
    )


_MAX_REASON = 200


async def request_erasure(info: Info[Any, Any], customer_id: strawberry.ID, reason: str) -> Erasure:
    actor = authorise(info, "an erasure request")
    view: RequestView = info.context["view"]
    registry = view.federation.registry
    if registry is None:
        raise QueryError("erasure needs the identity registry (see 'registry' in the config)")
    if not reason.strip():
        raise QueryError("give the reason for the erasure, e.g. the request's reference")
    await registry.refresh(force=True)
    registry.refuse_erased(str(RecordRef.from_customer_id(str(customer_id))))
    customer = await view.by_id(str(customer_id))
    if customer is None:
        raise QueryError(f"there is no customer '{customer_id}'")
    related = await _related(view, customer)
    if view.errors:
        failed = view.errors[0]
        raise SourceUnavailable(
            f"{failed.reason}; the records to delete would be incomplete, so nothing was "
            "erased: try again when the source answers",
            source=failed.source,
        )
    note_read(info, customer.id, "requestErasure")
    auditor = info.context.get("auditor")
    if auditor is not None:
        auditor.extra["reason"] = reason.strip()[:_MAX_REASON]
    rows = await registry.erase(actor, customer.id, [str(r.ref) for r in customer.records])
    records = [
        RecordToDelete(
            source=r.member.source,
            table=r.member.table,
            id=strawberry.ID(str(r.key)),
            ref=str(r.ref),
            relation=None,
        )
        for r in customer.records
    ] + [
        RecordToDelete(
            source=r["source"],
            table=r["table"],
            id=strawberry.ID(r["id"]),
            ref=r["ref"],
            relation=r["relation"],
        )
        for r in related
    ]
    records.sort(key=lambda r: (r.source, r.table, r.relation is not None, r.ref))
    return Erasure(
        id=rows[0].seq,
        customer_id=strawberry.ID(customer.id),
        at=rows[0].at,
        actor=actor,
        records=records,
    )


def mutation_fields() -> dict[str, Any]:
    return {
        "request_erasure": strawberry.mutation(
            resolver=request_erasure,
            graphql_type=Erasure,
            name="requestErasure",
            description="Erase a customer from custview (dpo or admin role): tombstones "
            "in the registry (ids only), the source records each system must delete, and "
            "from now on the customer is in no answer and cannot be re-linked.",
        )
    }
