"""The GraphQL schema, built from the configured unified model.

Customer gets one field per golden field, one per relation (tickets,
orders, ...), ``sourceRecords`` and ``provenance``. Types of related
entities are generated from their field maps. Resolvers only talk to the
:class:`~resolvers.view.RequestView` in the context, never to a source.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from resolvers import quality_fields
from resolvers.coerce import as_text, json_value
from resolvers.documents import DocumentCache
from resolvers.errors import SourceErrorsExtension, mask_unexpected_errors
from resolvers.explain import ExplainExtension
from resolvers.fuzzy import contributions_json
from resolvers.group_types import customer_fields, group_types, query_fields, resolve_lazy
from resolvers.inputs import CustomerInputs
from resolvers.lifecycle import Schema
from resolvers.model import FieldType, RelationSpec, UnifiedModel
from resolvers.planner import Planner
from resolvers.rights import mutation_fields as rights_mutations
from resolvers.rights import query_fields as rights_fields
from resolvers.segment_fields import customer_field as segments_of_customer
from resolvers.segment_fields import root_fields as segment_root_fields
from resolvers.segment_fields import segment_type
from resolvers.segments import compile_segments
from resolvers.selection import listed_metrics
from resolvers.steward import IdentityDecision, customer_decisions, decisions_field, mutation_type
from resolvers.view import CustomerView, RequestView, SourceStatus

_SCALARS: dict[FieldType, Any] = {
    "string": str,
    "id": strawberry.ID,
    "int": int,
    "float": float,
    "decimal": Decimal,
    "bool": bool,
    "date": dt.date,
    "datetime": dt.datetime,
}


def view_of(info: Info[Any, Any]) -> RequestView:
    view: RequestView = info.context["view"]
    return view


@strawberry.type(description="Where a golden value came from and why it won.")
class FieldProvenance:
    field: str
    value: str | None
    source: str
    table: str
    record_id: str
    ref: str
    rule: str = strawberry.field(
        description="The survivorship rule that decided (source_priority, most_recent, "
        "most_complete, most_frequent, min, max), or tie_break when none did"
    )
    reason: str = strawberry.field(description="Why that rule picked this value, in words")
    alternatives: Any = strawberry.field(
        graphql_type=JSON, description="Other values the member records hold: [{value, ref}]"
    )


@strawberry.type(description="One record of this customer in one source system.")
class SourceRecord:
    source: str
    table: str
    id: strawberry.ID
    ref: str = strawberry.field(description="source/table/id; resolves back to this customer")
    label: str
    data: Any = strawberry.field(graphql_type=JSON)


@strawberry.type(description="Why one source record belongs to this customer.")
class MatchReason:
    ref: str = strawberry.field(description="source/table/id of the member record")
    source: str
    table: str
    method: str = strawberry.field(
        description="KEY: shares identity keys with other records; MODEL: linked by the "
        "probabilistic model's score; SEED: the customer's only record"
    )
    keys: list[str] = strawberry.field(
        description="Identity keys (e.g. email, phone) it shares with other records"
    )
    matched_ref: str | None = strawberry.field(
        description="MODEL: the customer record it scored best against"
    )
    probability: float | None
    contributions: Any = strawberry.field(
        graphql_type=JSON | None,
        description="MODEL: [{comparison, level, weight}], prior first, then by |weight|",
    )


@strawberry.type(description="A record of another customer that may be this same person.")
class PossibleDuplicate:
    ref: str = strawberry.field(description="source/table/id of the candidate record")
    customer_id: strawberry.ID = strawberry.field(description="The candidate's customer")
    matched_ref: str = strawberry.field(description="The record of this customer it matched")
    probability: float
    contributions: Any = strawberry.field(
        graphql_type=JSON, description="[{comparison, level, weight}], prior first"
    )


async def _match_explanation(root: CustomerView, info: Info[Any, Any]) -> list[MatchReason]:
    return [
        MatchReason(
            ref=str(r.record.ref),
            source=r.record.member.source,
            table=r.record.member.table,
            method=r.method.upper(),
            keys=r.keys,
            matched_ref=str(r.link.matched) if r.link else None,
            probability=r.link.score.probability if r.link else None,
            contributions=contributions_json(r.link.score) if r.link else None,
        )
        for r in await view_of(info).explain(root)
    ]


def _possible_duplicates(
    root: CustomerView, min_score: float | None = None
) -> list[PossibleDuplicate]:
    return [
        PossibleDuplicate(
            ref=str(d.ref),
            customer_id=strawberry.ID(d.customer_id),
            matched_ref=str(d.matched),
            probability=d.score.probability,
            contributions=contributions_json(d.score),
        )
        for d in root.duplicates or ()
        if min_score is None or d.score.probability >= min_score
    ]


@strawberry.type(description="A configured source system and whether it answers.")
class Source:
    name: str
    kind: str
    status: str = strawberry.field(
        description="UP, DOWN (its health check fails) or CIRCUIT_OPEN (it answers, but "
        "calls are skipped until the circuit breaker's next probe succeeds)"
    )
    circuit: str = strawberry.field(
        description="The circuit breaker: closed, half-opened or opened"
    )
    latency_ms: float | None
    detail: str
    tables: Any = strawberry.field(graphql_type=JSON)


@strawberry.type(description="One dated interaction from any source.")
class TimelineEvent:
    kind: str
    at: dt.datetime
    title: str | None
    detail: str | None
    source: str
    ref: str = strawberry.field(description="source/table/id of the row")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def _golden(name: str) -> Callable[..., Any]:
    def resolve(root: CustomerView) -> Any:
        return root.golden.value(name)

    return resolve


def _related(name: str) -> Callable[..., Any]:
    async def resolve(
        root: CustomerView,
        info: Info[Any, Any],
        first: int | None = None,
    ) -> Any:
        return await view_of(info).related(root, name, first)

    return resolve


def _metric(name: str) -> Callable[..., Any]:
    async def resolve(root: CustomerView, info: Info[Any, Any]) -> Any:
        return await view_of(info).metric(root, name)

    return resolve


@strawberry.type(description="A page of the customer's timeline, newest first.")
class TimelineConnection:
    nodes: list[TimelineEvent]
    page_info: PageInfo


async def _timeline(
    root: CustomerView,
    info: Info[Any, Any],
    first: int = 20,
    after: str | None = None,
    kinds: list[str] | None = None,
) -> TimelineConnection:
    from resolvers.timeline import timeline

    page = await timeline(view_of(info), root, first, after, kinds)
    return TimelineConnection(
        nodes=[
            TimelineEvent(
                kind=e.kind, at=e.at, title=e.title, detail=e.detail, source=e.source, ref=e.ref
            )
            for e in page.events
        ],
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
    )


def _item(name: str) -> Callable[..., Any]:
    def resolve(root: dict[str, Any]) -> Any:
        return root.get(name)

    return resolve


def _entity_type(rel: RelationSpec) -> type:
    namespace: dict[str, Any] = {
        "source": strawberry.field(resolver=_item("__source"), graphql_type=str, name="source")
    }
    for fname, spec in rel.fields.items():
        namespace[fname] = strawberry.field(
            resolver=_item(fname),
            graphql_type=_SCALARS[spec.type] | None,
            name=fname,
            description=spec.description or None,
        )
    return strawberry.type(type(rel.entity, (), namespace), description=rel.description or None)


def _source_records(root: CustomerView) -> list[SourceRecord]:
    return source_records(root, True)


def source_records(root: CustomerView, data: bool) -> list[SourceRecord]:
    """The customer's member records; without ``data`` (an empty dict) for a
    selection that does not show it."""
    return [
        SourceRecord(
            source=r.member.source,
            table=r.member.table,
            id=strawberry.ID(str(r.key)),
            ref=r.ref.text,
            label=r.member.label or r.member.table,
            data={k: json_value(v) for k, v in r.row.items()} if data else {},
        )
        for r in root.records
    ]


def _provenance(root: CustomerView) -> list[FieldProvenance]:
    return provenance(root, True, True)


def provenance(root: CustomerView, values: bool, alternatives: bool) -> list[FieldProvenance]:
    """The golden fields' provenance; without ``values`` (None) or ``alternatives``
    (empty) for a selection that shows neither (``provenance { field ref }``)."""
    return [
        FieldProvenance(
            field=p.field,
            value=as_text(p.value) if values else None,
            source=p.ref.source,
            table=p.ref.table,
            record_id=p.ref.key,
            ref=p.ref.text,
            rule=p.rule,
            reason=p.reason,
            alternatives=[{"value": as_text(v), "ref": ref.text} for v, ref in p.alternatives]
            if alternatives
            else [],
        )
        for p in root.golden.provenance.values()
    ]


async def customer_by(
    view: RequestView,
    id: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    ref: str | None = None,
) -> CustomerView | None:
    """``customer(...)``'s answer: the customer its one argument names (the fast
    path calls it with the field's arguments as graphql-core coerced them)."""
    from connectors import QueryError
    from resolvers.records import RecordRef

    given = [a for a in (id, email, phone, ref) if a is not None]
    if len(given) != 1:
        raise QueryError("give exactly one of id, email, phone or ref")
    if id is not None:
        return await view.by_id(str(id))
    if email is not None:
        return await view.by_email(email)
    if phone is not None:
        return await view.by_phone(phone)
    assert ref is not None
    return await view.by_ref(RecordRef.parse(ref))


def _customer_type(model: UnifiedModel, groups: dict[str, Any]) -> type:
    namespace: dict[str, Any] = {
        **groups,
        "id": strawberry.field(
            resolver=lambda root: strawberry.ID(root.id),
            graphql_type=strawberry.ID,
            description="Stable, opaque; every member record resolves to it.",
        ),
        "source_records": strawberry.field(
            resolver=_source_records, graphql_type=list[SourceRecord], name="sourceRecords"
        ),
        "provenance": strawberry.field(
            resolver=_provenance, graphql_type=list[FieldProvenance], name="provenance"
        ),
        "match_explanation": strawberry.field(
            resolver=_match_explanation,
            graphql_type=list[MatchReason],
            name="matchExplanation",
            description="Why each member record belongs to this customer.",
        ),
        "possible_duplicates": strawberry.field(
            resolver=_possible_duplicates,
            graphql_type=list[PossibleDuplicate],
            name="possibleDuplicates",
            description="Records of other customers that scored between the candidate and "
            "link thresholds (single-customer lookups with identity.probabilistic only), "
            "best first.",
        ),
        "identity_decisions": strawberry.field(
            resolver=customer_decisions,
            # nullable: a role the policy denies it nulls this field, not the customer
            graphql_type=list[IdentityDecision] | None,
            name="identityDecisions",
            description="Steward decisions about this customer's records, newest first.",
        ),
    }
    for fname, spec in model.customer.fields.items():
        namespace[fname] = strawberry.field(
            resolver=_golden(fname),
            graphql_type=_SCALARS[spec.type] | None,
            name=fname,
            description=spec.description or None,
        )
    if model.timeline:
        namespace["timeline"] = strawberry.field(
            resolver=_timeline,
            description="Tickets, orders, opportunities, ... from every source, newest first.",
        )
    if model.segments:
        namespace["segments"] = segments_of_customer()
    namespace["quality"] = quality_fields.customer_field()
    for name, metric in model.metrics.items():
        namespace[name] = strawberry.field(
            resolver=_metric(name),
            graphql_type=_SCALARS[metric.type] | None,
            name=name,
            description=metric.description or None,
        )
    for name, rel in model.relations.items():
        entity = _entity_type(rel)
        namespace[name] = strawberry.field(
            resolver=_related(name),
            graphql_type=list[entity] | None,  # type: ignore[valid-type]
            name=name,
            description=rel.description or None,
        )
    return strawberry.type(
        type("Customer", (), namespace),
        description="One customer, stitched from every source that knows them.",
    )


def build_schema(model: UnifiedModel) -> strawberry.Schema:
    """A strawberry schema for ``model``; caches parsing and validation."""
    lazy: dict[str, Any] = {}
    business, household, businesses = group_types(lazy, PageInfo)
    customer = _customer_type(model, customer_fields(model, business, household))
    lazy["Customer"] = customer
    resolve_lazy(lazy, business, household)

    edge = strawberry.type(
        type(
            "CustomerEdge",
            (),
            {
                "cursor": strawberry.field(resolver=lambda root: root[0], graphql_type=str),
                "node": strawberry.field(resolver=lambda root: root[1], graphql_type=customer),
            },
        )
    )
    connection = strawberry.type(
        type(
            "CustomerConnection",
            (),
            {
                "edges": strawberry.field(
                    resolver=lambda root: root.customers,
                    graphql_type=list[edge],  # type: ignore[valid-type]
                ),
                "nodes": strawberry.field(
                    resolver=lambda root: [c for _, c in root.customers],
                    graphql_type=list[customer],  # type: ignore[valid-type]
                ),
                "page_info": strawberry.field(
                    resolver=lambda root: PageInfo(
                        has_next_page=root.has_next, end_cursor=root.end_cursor
                    ),
                    graphql_type=PageInfo,
                    name="pageInfo",
                ),
            },
        )
    )

    async def customer_field(
        info: Info[Any, Any],
        id: strawberry.ID | None = None,
        email: str | None = None,
        phone: str | None = None,
        ref: str | None = None,
    ) -> Any:
        return await customer_by(view_of(info), id, email, phone, ref)

    inputs = CustomerInputs(model, compile_segments(model))
    segment = segment_type(connection, inputs.order, inputs.parse_order)

    async def customers_field(
        info: Info[Any, Any],
        first: int = 20,
        after: str | None = None,
        filter: Any = None,
        order_by: Any = None,
    ) -> Any:
        from connectors import QueryError

        if first > 500:
            raise QueryError("'first' may be at most 500")
        view = view_of(info)
        if filter is None and not order_by:
            return await view.page(first, after)
        expr = inputs.parse(filter) if filter is not None else None
        listed = listed_metrics(info, model.metrics) if expr is not None else ()
        order = inputs.parse_order(order_by)
        return await Planner(view).search(expr, order, first, after, listed=listed)

    # the argument types are generated from the model, so they are set here
    customers_field.__annotations__["filter"] = inputs.filter | None
    customers_field.__annotations__["order_by"] = list[inputs.order] | None  # type: ignore[name-defined]

    async def sources_field(info: Info[Any, Any]) -> list[Source]:
        statuses: list[SourceStatus] = await view_of(info).federation.sources()
        return [
            Source(
                name=s.name,
                kind=s.kind,
                status=s.status,
                circuit=s.circuit,
                latency_ms=s.health.latency_ms,
                detail=s.health.detail,
                tables=dict(s.health.tables),
            )
            for s in statuses
        ]

    query = strawberry.type(
        type(
            "Query",
            (),
            {
                "customer": strawberry.field(
                    resolver=customer_field,
                    graphql_type=customer | None,
                    description="One customer by id, email, phone or a member record ref.",
                ),
                "customers": strawberry.field(
                    resolver=customers_field,
                    graphql_type=connection,
                    description="Every customer once, in a stable order, cursor-paginated.",
                ),
                "sources": strawberry.field(resolver=sources_field, graphql_type=list[Source]),
                **segment_root_fields(model, segment),
                "identity_decisions": strawberry.field(
                    resolver=decisions_field,
                    graphql_type=list[IdentityDecision],
                    name="identityDecisions",
                    description="The identity registry's decision log, newest first.",
                ),
                "quality_report": quality_fields.report_field(),
                **rights_fields(),
                **query_fields(model, business, household, businesses),
            },
        )
    )
    documents = DocumentCache()
    return Schema(
        query=query,
        mutation=mutation_type(customer, rights_mutations()),
        extensions=[
            documents.extension,
            SourceErrorsExtension,
            ExplainExtension,
            mask_unexpected_errors,
        ],
    )
