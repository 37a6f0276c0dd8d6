"""GraphQL fields for data quality: ``Customer.quality`` and ``qualityReport``
(the checks themselves are in :mod:`resolvers.quality`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from strawberry.types import Info

from connectors import QueryError
from resolvers import quality
from resolvers.governance import grant_of
from resolvers.policy import ForbiddenField
from resolvers.view import CustomerView, RequestView


@strawberry.type(description="One data-quality finding.")
class QualityIssue:
    kind: str = strawberry.field(
        description="INVALID (fails the field's check), MISSING (empty in every record that "
        "could hold it), STALE (record not updated for stale_after_days), CONFLICT (the "
        "systems hold different values)"
    )
    field: str | None = strawberry.field(description="The golden field; null for a record")
    ref: str | None = strawberry.field(description="source/table/id of the record at fault")
    value: str | None
    message: str


@strawberry.type(description="Quality of one golden field of this customer.")
class FieldQuality:
    field: str
    complete: bool = strawberry.field(description="The golden record has a value")
    valid: bool | None = strawberry.field(
        description="Every record's value passes the field's check; null: no check or no value"
    )
    conflicting: bool = strawberry.field(description="The records disagree (after normalising)")
    stale: bool = strawberry.field(description="The golden value's record is stale")
    issues: list[QualityIssue]


@strawberry.type(description="When a member record was last updated.")
class RecordFreshness:
    ref: str
    updated_at: dt.datetime | None
    stale: bool


@strawberry.type(description="Data quality of one customer, from the records already read.")
class CustomerQuality:
    score: float = strawberry.field(description="Share of checks passed, 0..1")
    fields: list[FieldQuality]
    records: list[RecordFreshness]
    issues: list[QualityIssue]


@strawberry.type(description="One source table's values for one golden field, over the sample.")
class QualityReportEntry:
    source: str
    table: str
    field: str
    records: int
    filled: int
    completeness: float = strawberry.field(description="filled / records")
    invalid: int
    stale: int = strawberry.field(description="Filled values in records not updated recently")
    conflicting: int = strawberry.field(description="Values that differ from the golden value")
    examples: list[str] = strawberry.field(description="Up to three refs of invalid records")


@strawberry.type(description="Data quality per source and field over a bounded sample.")
class QualityReport:
    customers: int = strawberry.field(description="Customers in the sample")
    records: int = strawberry.field(description="Their member records")
    full_scan: bool = strawberry.field(description="The sample covered every customer")
    stale_after_days: int
    checks: Any = strawberry.field(
        graphql_type=strawberry.scalars.JSON, description="Golden field -> validity check"
    )
    entries: list[QualityReportEntry]


def _issue(i: quality.Issue) -> QualityIssue:
    return QualityIssue(kind=i.kind, field=i.field, ref=i.ref, value=i.value, message=i.message)


def _view(info: Info[Any, Any]) -> RequestView:
    view: RequestView = info.context["view"]
    return view


def customer_quality(root: CustomerView, info: Info[Any, Any]) -> CustomerQuality:
    found = quality.QualityChecker(_view(info).model).customer(root)
    return CustomerQuality(
        score=round(found.score, 4),
        fields=[
            FieldQuality(
                field=f.field,
                complete=f.complete,
                valid=f.valid,
                conflicting=f.conflicting,
                stale=f.stale,
                issues=[_issue(i) for i in f.issues],
            )
            for f in found.fields
        ],
        records=[
            RecordFreshness(ref=r.ref, updated_at=r.updated_at, stale=r.stale)
            for r in found.records
        ],
        issues=[_issue(i) for i in found.issues],
    )


async def quality_report(info: Info[Any, Any], sample: int = 500) -> QualityReport:
    if not grant_of(info).full:
        # it aggregates every customer's values: no row rule or mask could hold
        raise ForbiddenField(
            "qualityReport needs a role with an unrestricted policy (no masked or denied "
            "field, no row rule)"
        )
    view = _view(info)
    limit = view.model.quality.max_sample
    if not 1 <= sample <= limit:
        raise QueryError(
            f"'sample' must be between 1 and {limit} (model.quality.max_sample); "
            "export the customers for a larger scan"
        )
    customers: list[CustomerView] = []
    after: str | None = None
    has_next = True
    while has_next and len(customers) < sample:
        page = await view.page(min(sample - len(customers), 500), after)
        customers.extend(c for _, c in page.customers)
        has_next, after = page.has_next, page.end_cursor
    checker = quality.QualityChecker(view.model)
    return QualityReport(
        customers=len(customers),
        records=sum(len(c.records) for c in customers),
        full_scan=not has_next,
        stale_after_days=checker.stale_after.days,
        checks=checker.checks,
        entries=[
            QualityReportEntry(
                source=e.source,
                table=e.table,
                field=e.field,
                records=e.records,
                filled=e.filled,
                completeness=round(e.filled / e.records, 4) if e.records else 0.0,
                invalid=e.invalid,
                stale=e.stale,
                conflicting=e.conflicting,
                examples=e.examples,
            )
            for e in checker.report(customers)
        ],
    )


def customer_field() -> Any:
    return strawberry.field(
        resolver=customer_quality,
        graphql_type=CustomerQuality,
        name="quality",
        description="Validity, completeness, staleness and conflicts of this customer's data.",
    )


def report_field() -> Any:
    return strawberry.field(
        resolver=quality_report,
        graphql_type=QualityReport,
        name="qualityReport",
        description="Data quality per source table and golden field over the first `sample` "
        "customers in the stable customers order (fullScan when that is all of them).",
    )
