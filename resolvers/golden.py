"""Survivorship: the golden record of a customer, with per-field provenance.

Each golden field takes the value of one member record, chosen by the
field's rule (source priority by default, then the most recently updated
record); the provenance says which record and which rule.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resolvers.coerce import coerce
from resolvers.model import FieldRule, FieldSpec, MemberSpec, UnifiedModel
from resolvers.normalize import normalize_email, normalize_phone
from resolvers.records import Record, RecordRef

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Provenance:
    field: str
    value: Any
    ref: RecordRef
    rule: str
    alternatives: tuple[tuple[Any, RecordRef], ...] = ()
    """Other distinct values the member records hold, with where they came from."""


@dataclass(frozen=True, slots=True)
class GoldenRecord:
    values: dict[str, Any]
    provenance: dict[str, Provenance]


def raw_value(member: MemberSpec, row: dict[str, Any], field: str) -> Any:
    """The member's value for a golden field: a column, or a filled-in template."""
    mapping = member.fields.get(field)
    if mapping is None:
        return None
    if "{" not in mapping:
        return row.get(mapping)
    text = _PLACEHOLDER.sub(lambda m: str(row.get(m.group(1)) or ""), mapping)
    return " ".join(text.split()) or None


def _present(spec: FieldSpec, record: Record, field: str, default_region: str | None) -> Any:
    value = coerce(raw_value(record.member, record.row, field), spec.type)
    if value is None or spec.normalize is None:
        return value
    if spec.normalize == "email":
        return normalize_email(value) or value
    if spec.normalize == "phone":
        region = record.row.get(record.member.region) if record.member.region else None
        return normalize_phone(value, region, default_region) or value
    return value


class Survivorship:
    """Builds golden records by the configured rules."""

    def __init__(self, model: UnifiedModel) -> None:
        self.fields = model.customer.fields
        self.spec = model.survivorship
        self.default_region = model.identity.default_region

    def _rule(self, field: str) -> FieldRule:
        return self.spec.fields.get(field) or FieldRule()

    def _updated(self, record: Record) -> dt.datetime:
        column = record.member.updated_at
        value = coerce(record.row.get(column), "datetime") if column else None
        return value or _EPOCH

    def build(self, records: Sequence[Record]) -> GoldenRecord:
        values: dict[str, Any] = {}
        provenance: dict[str, Provenance] = {}
        recency = {id(record): -self._updated(record).timestamp() for record in records}
        for field, spec in self.fields.items():
            candidates = [
                (value, record)
                for record in records
                if (value := _present(spec, record, field, self.default_region)) is not None
            ]
            if not candidates:
                values[field] = None
                continue
            rule = self._rule(field)
            value, winner, text = self._choose(rule, candidates, recency)
            values[field] = value
            seen = {_key(value)}
            alternatives = []
            for other, record in candidates:
                if _key(other) not in seen:
                    seen.add(_key(other))
                    alternatives.append((other, record.ref))
            provenance[field] = Provenance(field, value, winner.ref, text, tuple(alternatives))
        return GoldenRecord(values, provenance)

    def _choose(
        self, rule: FieldRule, candidates: list[tuple[Any, Record]], recency: dict[int, float]
    ) -> tuple[Any, Record, str]:
        priority = rule.sources if rule.sources is not None else self.spec.default
        rank = {source: i for i, source in enumerate(priority)}

        def by_priority(item: tuple[Any, Record]) -> tuple[int, float, tuple[int, int, int | str]]:
            record = item[1]
            return (
                rank.get(record.member.source, len(rank)),
                recency[id(record)],
                record.order(),
            )

        order = " > ".join(priority) if priority else "member order"
        if rule.rule == "most_recent":
            value, record = min(
                candidates,
                key=lambda item: (recency[id(item[1])], by_priority(item)),
            )
            return value, record, f"most recently updated record (ties: {order})"
        if rule.rule in ("min", "max"):
            ordered = sorted(candidates, key=by_priority)
            pick = min if rule.rule == "min" else max
            value, record = pick(ordered, key=lambda item: item[0])
            return value, record, f"{rule.rule}imum value across sources"
        value, record = min(candidates, key=by_priority)
        return value, record, f"source priority {order}, then most recently updated"


def _key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value
