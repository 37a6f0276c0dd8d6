"""The unified model as configured: Customer, its member tables, related
entities, identity keys and survivorship.

These are the config sections the resolvers own; the gateway composes them
into the whole settings file. Validation here checks the model's internal
references; the gateway checks references to configured sources.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FieldType = Literal["string", "int", "float", "decimal", "bool", "date", "datetime", "id"]
Normalizer = Literal["email", "email_provider", "phone", "external_id", "exact"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """A golden field of Customer."""

    type: FieldType = "string"
    description: str = ""
    normalize: Normalizer | None = None
    """Present the golden value normalised (e.g. phones in E.164)."""


class MemberSpec(_Strict):
    """A source table whose rows are records of customers (contacts, users, ...)."""

    source: str
    table: str
    key: str = "id"
    key_type: Literal["int", "string"] = "int"
    label: str = ""
    """What one record is called in that system (``contact``, ``user``)."""
    fields: dict[str, str] = Field(default_factory=dict)
    """Golden field -> column, or a template such as ``"{first_name} {last_name}"``."""
    identity: dict[str, list[str]] = Field(default_factory=dict)
    """Identity key -> the columns that hold it."""
    updated_at: str | None = None
    created_at: str | None = None
    """Column with the record's creation time; default: the ``createdAt`` field's column.
    The oldest record of a customer names it (its id)."""
    region: str | None = None
    """Column with the record's ISO country, used to read national phone numbers."""

    @functools.cached_property
    def id(self) -> str:
        """``source.table``, made once (a customer 360 asks ~24 times)."""
        return f"{self.source}.{self.table}"

    @functools.cached_property
    def ref_prefix(self) -> str:
        """Its records' reference (``source/table/key``) up to the key, made once:
        exports write one per record."""
        return f"{self.source}/{self.table}/"

    @property
    def created_column(self) -> str | None:
        if self.created_at:
            return self.created_at
        mapping = self.fields.get("createdAt")
        return mapping if mapping and "{" not in mapping else None

    def columns(self) -> list[str]:
        """Every column this member reads, key first."""
        return list(self.read_columns)

    @functools.cached_property
    def read_columns(self) -> tuple[str, ...]:
        """:meth:`columns`, worked out once (every identity lookup asks for them)."""
        cols = [self.key]
        for mapping in self.fields.values():
            cols.extend(template_columns(mapping))
        for columns in self.identity.values():
            cols.extend(columns)
        cols.extend(c for c in (self.updated_at, self.created_column, self.region) if c)
        return tuple(dict.fromkeys(cols))


class EntityFieldSpec(_Strict):
    column: str
    type: FieldType = "string"
    description: str = ""


class ParentSpec(_Strict):
    member: str
    """The member (``source.table``) whose records own these rows."""
    column: str
    """The column of this table holding the member record's key."""


class RelationSpec(_Strict):
    """A related entity reached from Customer, e.g. ``tickets: [Ticket]``."""

    entity: str
    source: str
    table: str
    key: str = "id"
    parent: ParentSpec
    fields: dict[str, EntityFieldSpec]
    order_by: list[str] = Field(default_factory=list)
    """Columns, ``-column`` for descending."""
    description: str = ""

    @field_validator("entity")
    @classmethod
    def _entity_name(cls, value: str) -> str:
        if not _NAME.match(value) or not value[0].isupper():
            raise ValueError("entity names are GraphQL type names such as 'Ticket'")
        return value

    def columns(self) -> list[str]:
        cols = [self.key, self.parent.column, *(f.column for f in self.fields.values())]
        cols.extend(c.lstrip("-") for c in self.order_by)
        return list(dict.fromkeys(cols))


class FilterSpec(_Strict):
    """``column op value`` on a source table's column, e.g. status in [open, new]."""

    column: str
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "startswith", "is_null"]
    value: Any = None


class MetricSpec(_Strict):
    """A computed field of Customer: an aggregate over one of its relations."""

    relation: str
    fn: Literal["count", "sum", "min", "max", "avg"]
    column: str | None = None
    """The relation table's column (not needed for count)."""
    type: FieldType = "int"
    where: list[FilterSpec] = Field(default_factory=list)
    description: str = ""

    @model_validator(mode="after")
    def _column(self) -> MetricSpec:
        if self.fn != "count" and not self.column:
            raise ValueError(f"'{self.fn}' needs a column")
        return self


class TimelineSpec(_Strict):
    """How rows of one relation appear in ``Customer.timeline``."""

    relation: str
    at: str
    """The column with the event's time."""
    title: str | None = None
    detail: str | None = None

    def columns(self) -> list[str]:
        return [c for c in (self.at, self.title, self.detail) if c]


class CustomerSpec(_Strict):
    fields: dict[str, FieldSpec]
    members: list[MemberSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> CustomerSpec:
        reserved = {"id", "sourceRecords", "provenance", "matchExplanation", "possibleDuplicates"}
        reserved |= {"segments", "segment"}
        for name in self.fields:
            if not _NAME.match(name) or name in reserved:
                raise ValueError(f"'{name}' cannot be a Customer field name")
        seen: set[str] = set()
        for i, member in enumerate(self.members):
            if member.id in seen:
                raise ValueError(f"members[{i}]: '{member.id}' is listed twice")
            seen.add(member.id)
            for field in member.fields:
                if field not in self.fields:
                    raise ValueError(
                        f"members[{i}] ({member.id}) maps '{field}', which is not a "
                        f"Customer field; declare it under customer.fields"
                    )
        return self


class IdentityKeySpec(_Strict):
    normalize: Normalizer
    default_region: str | None = None
    """ISO country for phone numbers written without an international prefix."""


MATCH_ARGUMENTS = frozenset(
    {
        "first_name",
        "surname",
        "name",
        "email",
        "phone",
        "street",
        "postcode",
        "city",
        "birth_date",
        "country",
        "locale",
        "company",
        "company_domain",
    }
)
"""The raw inputs of a match record (``resolvers.matching.match_record``)."""


class ProbabilisticSpec(_Strict):
    """Scored (Fellegi-Sunter) matching of a single customer's candidates at read time."""

    model: str
    """The trained model JSON; absolute, or relative to the working directory, else
    to the project folder, else to its ``config/`` folder."""
    link: float = Field(default=0.99, gt=0, le=1)
    """At or above this probability a candidate is the same customer."""
    candidate: float = Field(default=0.5, gt=0, le=1)
    """From this probability up (below ``link``) a candidate is a possible duplicate."""
    max_block_fanout: int = Field(default=50, ge=1)
    """A blocking value matching more records than this in one table is skipped."""
    fields: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Member id (``source.table``) or ``default`` -> match input -> column or template;
    overrides what is derived from the member's golden field mapping."""

    @model_validator(mode="after")
    def _check(self) -> ProbabilisticSpec:
        if self.candidate > self.link:
            raise ValueError("candidate must not be above link (0 < candidate <= link <= 1)")
        for member, mapping in self.fields.items():
            unknown = set(mapping) - MATCH_ARGUMENTS
            if unknown:
                raise ValueError(
                    f"fields.{member}: {', '.join(sorted(unknown))} not a match input "
                    f"(known: {', '.join(sorted(MATCH_ARGUMENTS))})"
                )
        return self


class IdentitySpec(_Strict):
    keys: dict[str, IdentityKeySpec]
    max_rounds: int = Field(default=5, ge=1, le=20)
    """How many hops a transitive lookup follows at most."""
    max_key_fanout: int = Field(default=25, ge=1)
    """A key value shared by more records than this in one table is not followed."""
    probabilistic: ProbabilisticSpec | None = None
    """Scored matching for single-customer lookups; absent: deterministic keys only."""

    @property
    def default_region(self) -> str | None:
        """Where phones without an international prefix are read: the phone key's
        ``default_region``, else any key's."""
        regions = [k.default_region for k in self.keys.values() if k.normalize == "phone"]
        regions += [k.default_region for k in self.keys.values()]
        return next((r for r in regions if r), None)


RuleName = Literal["source_priority", "most_recent", "most_complete", "most_frequent", "min", "max"]


class FieldRule(_Strict):
    """How one golden field is chosen: ``rule``, then each of ``fallbacks`` in turn
    while the records left still disagree."""

    rule: RuleName = "source_priority"
    fallbacks: list[RuleName] = Field(default_factory=list)
    sources: list[str] | None = None
    """Source priority for this field (``source_priority``, and the last tie-break)."""

    @model_validator(mode="after")
    def _chain(self) -> FieldRule:
        chain = self.chain
        for i, name in enumerate(self.fallbacks):
            if name in chain[: i + 1]:
                raise ValueError(
                    f"fallbacks[{i}]: '{name}' is already earlier in the chain "
                    f"({' -> '.join(chain[: i + 1])}); list each rule once"
                )
        return self

    @property
    def chain(self) -> list[RuleName]:
        """The rules in the order they are tried."""
        return [self.rule, *self.fallbacks]


class SurvivorshipSpec(_Strict):
    default: list[str] = Field(default_factory=list)
    """Source priority for every field without its own rule."""
    fields: dict[str, FieldRule] = Field(default_factory=dict)


NOT_COMPANIES = (
    "self-employed",
    "freelance",
    "freelancer",
    "private",
    "individual",
    "none",
    "n/a",
    "retired",
    "student",
)
"""Company names that name no business (the default of ``business.not_companies``)."""


class BusinessAccountSpec(_Strict):
    """A source table whose rows are businesses (CRM accounts, support organizations)."""

    source: str
    table: str
    key: str = "id"
    key_type: Literal["int", "string"] = "int"
    name: str | None = None
    """Column with the business's name."""
    domain: str | None = None
    """Column with its web or email domain (``acme.com``)."""
    updated_at: str | None = None
    """Column with the row's last change: an incremental ``custview resolve`` re-scores
    the records of an account changed since its last run (without it, only a full run
    notices a renamed account)."""

    @functools.cached_property
    def id(self) -> str:
        """``source.table``, made once (a customer 360 asks ~24 times)."""
        return f"{self.source}.{self.table}"

    def columns(self) -> list[str]:
        return list(dict.fromkeys(c for c in (self.key, self.name, self.domain) if c))


class BusinessMemberSpec(_Strict):
    """How one customer member table tells the business its records work for."""

    account: str | None = None
    """The account table (``source.table``, under ``business.accounts``) ``column`` points at."""
    column: str | None = None
    """Column holding the key of that account row (``account_id``)."""
    company: str | None = None
    """Column with a company name as typed (``ACME, Inc.``), matched after normalisation."""
    email: str | None = None
    """Column with an email; its domain, unless a personal mailbox's, is the business's."""

    @model_validator(mode="after")
    def _check(self) -> BusinessMemberSpec:
        if (self.account is None) != (self.column is None):
            raise ValueError(
                "give 'account' and 'column' together (the account table and the "
                "column holding its key)"
            )
        if not (self.account or self.company or self.email):
            raise ValueError(
                "say how its records name a business: account+column, company or email"
            )
        return self


class BusinessSpec(_Strict):
    """Customers grouped into the business account they work for."""

    accounts: list[BusinessAccountSpec] = Field(default_factory=list)
    """Tables whose rows are businesses; the first one that has a row gives its id."""
    members: dict[str, BusinessMemberSpec] = Field(min_length=1)
    """Customer member id (``source.table``) -> how its records name their business."""
    free_mail_domains: list[str] = Field(default_factory=list)
    """Personal mailbox providers besides the built-in list (gmail.com, outlook.com, ...)."""
    not_companies: list[str] = Field(default_factory=lambda: list(NOT_COMPANIES))
    """Company names that name no business (compared after normalisation)."""
    max_members: int = Field(default=500, ge=1)
    """Most member records read per business (and per key, when finding a business)."""


class HouseholdMemberSpec(_Strict):
    """The columns of one customer member table that place a person in a home."""

    street: str
    postcode: str
    surname: str
    given_name: str | None = None
    """Column with the given name: two customers at one home with the same given name
    are one person recorded twice, not two members."""
    country: str | None = None
    """Column with the record's ISO country, for the country's postcode and street forms."""


class HouseholdSpec(_Strict):
    """Customers sharing a normalised address and surname."""

    members: dict[str, HouseholdMemberSpec] = Field(min_length=1)
    """Customer member id (``source.table``) -> its address and surname columns."""
    min_customers: int = Field(default=2, ge=1)
    """A household has at least this many customers; fewer gives no household."""
    max_members: int = Field(default=50, ge=1)
    """A postcode shared by more records than this in one table is not read (a block of flats)."""


class PlannerSpec(_Strict):
    max_candidates: int = Field(default=20000, ge=1)
    """Most customers (or source records) a filtered or ordered query may consider
    before it fails with a hint to narrow it at the sources."""


_SEGMENT_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


class SegmentSpec(_Strict):
    """A named customer filter (``segments``, ``segment(name)``, ``Customer.segments``)."""

    description: str = ""
    filter: dict[str, Any]
    """The same language as ``customers(filter:)``, written as YAML."""
    purpose: Literal["marketing"] | None = None
    """``marketing``: using the segment to contact people needs their consent."""


class ConsentSpec(_Strict):
    """Marketing consent: segments with ``purpose: marketing`` keep only customers whose
    golden consent field lets them be contacted."""

    field: str
    """A bool golden field mapped from any source, e.g. ``acceptsMarketing``."""
    meaning: Literal["opt_in", "opt_out"] = "opt_in"
    """``opt_in``: true means the person consents; ``opt_out``: true means they refused."""
    unknown: Literal["exclude", "include"] = "exclude"
    """Customers no source records consent for: left out (the default) or kept."""


class QualitySpec(_Strict):
    """Data-quality checks: ``Customer.quality`` and ``qualityReport`` (resolvers.quality)."""

    checks: dict[str, Literal["email", "phone", "postcode"]] | None = None
    """Golden field -> validity check; unset: inferred (normalize email/phone, postcode)."""
    country_field: str | None = None
    """Golden field whose per-record value picks the postcode format; unset: ``country``."""
    stale_after_days: int = Field(default=730, ge=1)
    max_sample: int = Field(default=5000, ge=1)


class UnifiedModel(_Strict):
    customer: CustomerSpec
    relations: dict[str, RelationSpec] = Field(default_factory=dict)
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    timeline: dict[str, TimelineSpec] = Field(default_factory=dict)
    """Event kind -> the relation whose rows are those events."""
    identity: IdentitySpec
    survivorship: SurvivorshipSpec = SurvivorshipSpec()
    planner: PlannerSpec = PlannerSpec()
    segments: dict[str, SegmentSpec] = Field(default_factory=dict)
    """Segment name -> its filter."""
    consent: ConsentSpec | None = None
    """Marketing consent, respected by segments with ``purpose: marketing``."""
    quality: QualitySpec = QualitySpec()
    business: BusinessSpec | None = None
    """Customers grouped into business accounts; absent: no ``Customer.business``."""
    household: HouseholdSpec | None = None
    """Customers grouped into households; absent: no ``Customer.household``."""

    @model_validator(mode="after")
    def _check(self) -> UnifiedModel:
        members = {m.id for m in self.customer.members}
        for name, rel in self.relations.items():
            if not _NAME.match(name) or name in self.customer.fields:
                raise ValueError(f"relations.{name}: not usable as a Customer field name")
            if rel.parent.member not in members:
                raise ValueError(
                    f"relations.{name}.parent.member: '{rel.parent.member}' is not a customer "
                    f"member (known: {', '.join(sorted(members))})"
                )
        for name, metric in self.metrics.items():
            if not _NAME.match(name) or name in self.customer.fields or name in self.relations:
                raise ValueError(f"metrics.{name}: not usable as a Customer field name")
            if metric.relation not in self.relations:
                raise ValueError(
                    f"metrics.{name}.relation: '{metric.relation}' is not a relation "
                    f"(known: {', '.join(sorted(self.relations)) or 'none'})"
                )
        for kind, event in self.timeline.items():
            if event.relation not in self.relations:
                raise ValueError(
                    f"timeline.{kind}.relation: '{event.relation}' is not a relation "
                    f"(known: {', '.join(sorted(self.relations)) or 'none'})"
                )
        for i, member in enumerate(self.customer.members):
            for key in member.identity:
                if key not in self.identity.keys:
                    raise ValueError(
                        f"customer.members[{i}].identity: '{key}' is not declared under "
                        f"identity.keys"
                    )
        fuzzy = self.identity.probabilistic
        members_ids = {m.id for m in self.customer.members}
        for member_id in fuzzy.fields if fuzzy else ():
            if member_id != "default" and member_id not in members_ids:
                raise ValueError(
                    f"identity.probabilistic.fields: '{member_id}' is not a customer member "
                    f"(known: default, {', '.join(sorted(members_ids))})"
                )
        for field in self.survivorship.fields:
            if field not in self.customer.fields:
                raise ValueError(f"survivorship.fields: '{field}' is not a Customer field")
        for field in [*(self.quality.checks or ()), self.quality.country_field]:
            if field is not None and field not in self.customer.fields:
                raise ValueError(f"quality: '{field}' is not a Customer field")
        from resolvers.segments import FilterSyntaxError, compile_segments

        consent = self.consent
        if consent is not None:
            found = self.customer.fields.get(consent.field)
            if found is None or found.type != "bool":
                flags = [n for n, f in self.customer.fields.items() if f.type == "bool"]
                raise FilterSyntaxError(
                    ("consent", "field"),
                    f"'{consent.field}' is not a bool Customer field "
                    f"(bool fields: {', '.join(flags) or 'none'})",
                )

        for name in self.segments:
            if not _SEGMENT_NAME.match(name):
                raise FilterSyntaxError(
                    ("segments", name),
                    "segment names are lower case words joined by - or _, e.g. high-value-at-risk",
                )
        compile_segments(self)
        self._check_groups(members)
        return self

    def _check_groups(self, members: set[str]) -> None:
        known = ", ".join(sorted(members))
        groups = {"business": self.business, "household": self.household}
        for section, spec in groups.items():
            for member_id in spec.members if spec else ():
                if member_id not in members:
                    raise ValueError(
                        f"{section}.members: '{member_id}' is not a customer member "
                        f"(known: {known})"
                    )
        accounts = {a.id for a in self.business.accounts} if self.business else set()
        for member_id, link in self.business.members.items() if self.business else ():
            if link.account is not None and link.account not in accounts:
                raise ValueError(
                    f"business.members.{member_id}.account: '{link.account}' is not listed "
                    f"under business.accounts (known: {', '.join(sorted(accounts)) or 'none'})"
                )
        reserved = {"business", "household"} & set(self.customer.fields)
        for name in sorted(reserved):
            if groups[name] is not None:
                raise ValueError(f"customer.fields.{name}: the name is taken by {name} grouping")

    def relation_columns(self, name: str) -> list[str]:
        """Every column read from relation ``name``: its fields and its timeline's."""
        columns = self.relations[name].columns()
        for event in self.timeline.values():
            if event.relation == name:
                columns.extend(event.columns())
        return list(dict.fromkeys(columns))

    def sources(self) -> set[str]:
        """Every source name the model refers to."""
        names = {m.source for m in self.customer.members}
        names |= {r.source for r in self.relations.values()}
        names |= set(self.survivorship.default)
        for rule in self.survivorship.fields.values():
            names |= set(rule.sources or ())
        names |= {a.source for a in self.business.accounts} if self.business else set()
        return names


def template_columns(mapping: str) -> list[str]:
    """Columns a field mapping reads: the column itself or a template's names."""
    found = _TEMPLATE.findall(mapping)
    return found if found else [mapping]
