"""Survivorship: the golden record of a customer, with per-field provenance.

Each golden field takes the value of one member record. The field's rules
(``source_priority`` by default; ``most_recent``, ``most_complete``,
``most_frequent``, ``min``, ``max``) are tried in order: each keeps the
candidates it likes best, and the first one after which the candidates left
agree on one value *decides*. Candidates still disagreeing after the last
rule are told apart by source priority, then recency, then member order.
The provenance names the record, the deciding rule and why, and keeps the
values it overruled.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from resolvers.coerce import coerce, converter
from resolvers.matching.normalize import fold
from resolvers.model import FieldRule, FieldSpec, FieldType, MemberSpec, RuleName, UnifiedModel
from resolvers.normalize import normalize_email, normalize_external_id, normalize_phone
from resolvers.records import Record, RecordRef

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Provenance:
    field: str
    value: Any
    ref: RecordRef
    rule: str
    """The rule that decided (``most_frequent``, ...), or ``tie_break`` when none did."""
    reason: str
    """Why, in words: ``2 of 3 records agree``, ``source priority crm > sales``, ..."""
    alternatives: tuple[tuple[Any, RecordRef], ...] = ()
    """Other distinct values the member records hold, with where they came from."""


class GoldenRecord:
    """Golden values and their provenance, by field.

    Built one field at a time on first use (:meth:`value`): a filter that
    reads one golden field of thousands of candidates pays for that field only.
    """

    __slots__ = ("_build", "_fields", "_provenance", "_values")

    def __init__(
        self,
        values: dict[str, Any],
        provenance: dict[str, Provenance],
        build: Callable[[str], tuple[Any, Provenance | None]] | None = None,
        fields: Sequence[str] = (),
    ) -> None:
        self._values = values
        self._provenance = provenance
        self._build = build
        self._fields = fields
        """Every field, in model order, while some are still to build."""

    def value(self, field: str) -> Any:
        """One golden value (None for an unknown field)."""
        values = self._values
        if field not in values and self._build is not None and field in self._fields:
            value, provenance = self._build(field)
            values[field] = value
            if provenance is not None:
                self._provenance[field] = provenance
            return value
        return values.get(field)

    def _complete(self) -> None:
        build = self._build
        if build is None:
            return
        values, provenance = self._values, self._provenance
        for field in self._fields:  # each built unless it is already (:meth:`value`)
            if field not in values:
                value, found = build(field)
                values[field] = value
                if found is not None:
                    provenance[field] = found
        self._values = {f: self._values[f] for f in self._fields}
        self._provenance = {f: self._provenance[f] for f in self._fields if f in self._provenance}
        self._build = None

    @property
    def values(self) -> dict[str, Any]:
        self._complete()
        return self._values

    @property
    def provenance(self) -> dict[str, Provenance]:
        self._complete()
        return self._provenance


def raw_value(member: MemberSpec, row: dict[str, Any], field: str) -> Any:
    """The member's value for a golden field: a column, or a filled-in template."""
    mapping = member.fields.get(field)
    return None if mapping is None else _raw_reader(mapping)(row)


Reader = Callable[[dict[str, Any]], Any]
"""A member row -> one golden field's candidate value (None when it has none)."""


def _none(_row: dict[str, Any]) -> Any:
    return None


def _raw_reader(mapping: str) -> Reader:
    """:func:`raw_value` for one mapping, with the template parsed once."""
    if "{" not in mapping:
        return lambda row: row.get(mapping)
    fill = filled_templates(mapping)
    return lambda row: fill((row,))[0]


def filled_templates(mapping: str) -> Callable[[Sequence[dict[str, Any]]], list[Any]]:
    """Rows -> each one's template ``mapping`` filled in: the values of its columns
    (none: empty) in place of the placeholders, runs of spaces made one, ``None``
    when that leaves nothing. Exports fill a whole column of rows in one call; a
    template of two columns (``{first_name} {last_name}``) is filled without a
    loop over its columns."""
    parts = _PLACEHOLDER.split(mapping)
    head, columns, tails = parts[0], parts[1::2], parts[2::2]
    if len(columns) == 2:
        (first, second), (middle, end) = columns, tails

        def filled_two(rows: Sequence[dict[str, Any]]) -> list[Any]:
            out = []
            for row in rows:
                text = head + str(row.get(first) or "") + middle + str(row.get(second) or "") + end
                out.append(" ".join(text.split()) or None)
            return out

        return filled_two
    pairs = list(zip(columns, tails, strict=True))

    def filled(rows: Sequence[dict[str, Any]]) -> list[Any]:
        out = []
        for row in rows:
            text = head
            for column, tail in pairs:
                text += str(row.get(column) or "") + tail
            out.append(" ".join(text.split()) or None)
        return out

    return filled


def reader(member: MemberSpec, field: str, spec: FieldSpec, default_region: str | None) -> Reader:
    """How ``member`` rows give ``field``: the raw value, coerced to the field's type
    and normalised as the field says (a value that does not normalise stays as is)."""
    mapping = member.fields.get(field)
    if mapping is None:
        return _none
    raw, type_, normalize = _raw_reader(mapping), spec.type, spec.normalize
    if normalize is None:
        return _typed(mapping, raw, type_)
    region_column = member.region
    plain, text = "{" not in mapping, type_ == "string"

    def read(row: dict[str, Any]) -> Any:
        value = row.get(mapping) if plain else raw(row)  # raw(row), one column's written out
        if value is None:
            return value
        if not (text and value.__class__ is str):  # coerce keeps text of a text field
            value = coerce(value, type_)
            if value is None:
                return value
        if normalize in ("email", "email_provider"):
            return normalize_email(value, normalize == "email_provider") or value
        if normalize == "external_id":
            return normalize_external_id(value) or value
        if normalize == "phone":
            region = row.get(region_column) if region_column else None
            return normalize_phone(value, region, default_region) or value
        return value

    return read


def _typed(mapping: str, raw: Reader, type_: FieldType) -> Reader:
    """``coerce(raw(row), type_)``; for a text field read from one column, a text
    value (what it mostly is) kept in one step (every record's every golden field
    is read through one of these)."""
    if "{" in mapping:
        return lambda row: coerce(raw(row), type_)
    if type_ != "string":
        convert = converter(type_)

        def read_typed(row: dict[str, Any]) -> Any:  # coerce(row.get(mapping), type_)
            value = row.get(mapping)
            return None if value is None else convert(value)

        return read_typed

    def read(row: dict[str, Any]) -> Any:
        value = row.get(mapping)
        if value is None or value.__class__ is str:
            return value  # what coerce answers for None and for text of a text field
        return coerce(value, type_)

    return read


Candidate = tuple[Any, Record]
T = TypeVar("T")


class Survivorship:
    """Builds golden records by the configured rules."""

    def __init__(self, model: UnifiedModel) -> None:
        self.fields = model.customer.fields
        self.spec = model.survivorship
        self.default_region = model.identity.default_region
        default = self.spec.default
        self._choices = {
            field: _Choice(self.spec.fields.get(field) or FieldRule(), default)
            for field in self.fields
        }
        self._readers: dict[int, tuple[MemberSpec, list[Reader]]] = {}
        self._readers_by_id: dict[str, list[Reader]] = {}
        self._at = {field: at for at, field in enumerate(self.fields)}

    def _readers_of(self, member: MemberSpec) -> list[Reader]:
        # by identity: ``member.id`` formats a string on every call
        found = self._readers.get(id(member))
        if found is None or found[0] is not member:
            readers = self._readers_by_id.get(member.id)
            if readers is None:
                readers = self._readers_by_id[member.id] = [
                    reader(member, name, spec, self.default_region)
                    for name, spec in self.fields.items()
                ]
            found = self._readers[id(member)] = (member, readers)
        return found[1]

    def _present(self, record: Record) -> list[Any]:
        """The record's candidate value for every field, in field order."""
        row = record.row
        return [read(row) for read in self._readers_of(record.member)]

    def _updated(self, record: Record) -> dt.datetime:
        column = record.member.updated_at
        value = coerce(record.row.get(column), "datetime") if column else None
        return value or _EPOCH

    def values(self, records: Sequence[Record]) -> dict[str, Any]:
        """The golden values :meth:`build` picks, without provenance (for exports)."""
        if len(records) == 1:  # every rule keeps the only candidate
            return dict(zip(self.fields, self._present(records[0]), strict=True))
        updated = {id(record): self._updated(record) for record in records}
        present = [(self._present(record), record) for record in records]
        values: dict[str, Any] = {}
        for at, field in enumerate(self.fields):
            candidates = [(found[at], record) for found, record in present if found[at] is not None]
            picked = self._choices[field].pick(candidates, updated) if candidates else None
            values[field] = picked[0] if picked else None
        return values

    def build(self, records: Sequence[Record]) -> GoldenRecord:
        """The golden record of ``records``; each field is decided when first read."""
        records = tuple(records)
        updated = _Updated(self._updated, records)
        # each record's row and field readers, looked up once for all its fields
        readers = [(r.row, self._readers_of(r.member), r) for r in records]
        # each record's reference, asked once (a property) for the provenance of all its fields
        refs = {id(r): r.ref for r in records}
        # a partial, not a closure: no Python frame of its own for each field built
        return GoldenRecord({}, {}, partial(self._field, readers, updated, refs), list(self.fields))

    def _field(
        self,
        readers: Sequence[tuple[dict[str, Any], list[Reader], Record]],
        updated: dict[int, dt.datetime],
        refs: dict[int, RecordRef],
        field: str,
    ) -> tuple[Any, Provenance | None]:
        at = self._at[field]
        # a member that does not map the field reads nothing (:func:`_none`): not called
        candidates = [
            (value, record)
            for row, read, record in readers
            if (field_reader := read[at]) is not _none and (value := field_reader(row)) is not None
        ]
        if not candidates:
            return None, None
        choice = self._choices[field]
        alone = len(candidates) == 1
        if alone and choice.alone is not None:
            # what :meth:`_Choice.pick` answers for one candidate, without its frames
            (value, winner), (rule, reason) = candidates[0], choice.alone
        else:
            value, winner, rule, reason = choice.pick(candidates, updated)
        ref = refs[id(winner)]
        if alone:  # the winner alone: no alternative
            return value, Provenance(field, value, ref, rule, reason)
        seen = {value.casefold() if value.__class__ is str else _shown(value)}  # _shown(value)
        alternatives = []
        for other, record in candidates:
            if other is value:
                continue  # shown as the winner's value is, seen already
            shown = other.casefold() if isinstance(other, str) else other  # _shown(other)
            if shown not in seen:
                seen.add(shown)
                alternatives.append((other, refs[id(record)]))
        return value, Provenance(field, value, ref, rule, reason, tuple(alternatives))


class _Updated(dict[int, dt.datetime]):
    """Records' update times by ``id(record)``, each read when a rule or a tie first
    asks (most fields are decided by source priority alone)."""

    def __init__(self, read: Callable[[Record], dt.datetime], records: Sequence[Record]) -> None:
        super().__init__()
        self._read = read
        self._records = {id(r): r for r in records}

    def __missing__(self, key: int) -> dt.datetime:
        value = self[key] = self._read(self._records[key])
        return value


class _Choice:
    """One field's rule chain."""

    def __init__(self, rule: FieldRule, default: list[str]) -> None:
        self.rule = rule
        self.updated: dict[int, dt.datetime] = {}
        self.priority = rule.sources if rule.sources is not None else default
        self.rank = {source: i for i, source in enumerate(self.priority)}
        self.chain = [(name, _RULES[name]) for name in rule.chain]
        """The rules in the order they are tried, each with its method (worked out
        once: every golden field of every customer is picked through them)."""
        self.order = " > ".join(self.priority) if self.priority else "member order"
        self._by_priority = f"source priority {self.order}"
        self.alone = (
            ("source_priority", self._by_priority)
            if self.chain and self.chain[0][0] == "source_priority"
            else None
        )
        """(rule, reason) that :meth:`pick` answers for one candidate, when its first
        rule is ``source_priority`` (which keeps a lone candidate with that reason)."""

    def pick(
        self, candidates: list[Candidate], updated: dict[int, dt.datetime]
    ) -> tuple[Any, Record, str, str]:
        self.updated = updated
        left = candidates
        for name, rule in self.chain:
            left, reason = rule(self, left, len(candidates))
            if len(left) == 1:
                value, record = left[0]
                return value, record, name, reason
            if len({_key(value) for value, _ in left}) == 1:
                value, record = min(left, key=self.tie_order)
                return value, record, name, reason
        value, record = min(left, key=self.tie_order)
        reason = f"no rule decided; source priority {self.order}, most recent"
        return value, record, "tie_break", reason

    def tie_order(self, item: Candidate) -> tuple[int, float, tuple[int, int, int | str]]:
        record = item[1]
        return (
            self.rank.get(record.member.source, len(self.rank)),
            -self.updated[id(record)].timestamp(),
            record.order(),
        )

    def source_priority(self, left: list[Candidate], _total: int) -> tuple[list[Candidate], str]:
        if len(left) == 1:
            return left, self._by_priority
        rank, last = self.rank, len(self.rank)
        ranks = [rank.get(r.member.source, last) for _, r in left]
        best = min(ranks)
        kept = [c for c, at in zip(left, ranks, strict=True) if at == best]
        return kept, self._by_priority

    def most_recent(self, left: list[Candidate], _total: int) -> tuple[list[Candidate], str]:
        updated = self.updated
        stamps = [updated[id(r)] for _, r in left]  # a list, not a generator: one frame
        best = max(stamps)
        kept = [c for c, at in zip(left, stamps, strict=True) if at == best]
        when = "never" if best == _EPOCH else best.isoformat()
        return kept, f"most recently updated record ({when})"

    def most_complete(self, left: list[Candidate], _total: int) -> tuple[list[Candidate], str]:
        best = max(_completeness(v) for v, _ in left)
        kept = [c for c in left if _completeness(c[0]) == best]
        return kept, f"most complete value ({best[0]} words, {best[1]} characters)"

    def most_frequent(self, left: list[Candidate], total: int) -> tuple[list[Candidate], str]:
        counts: dict[Any, int] = {}
        for value, _ in left:
            counts[_key(value)] = counts.get(_key(value), 0) + 1
        best = max(counts.values())
        kept = [c for c in left if counts[_key(c[0])] == best]
        return kept, f"{best} of {total} records agree"

    def minimum(self, left: list[Candidate], _total: int) -> tuple[list[Candidate], str]:
        return _extreme(left, min), "minimum value across sources"

    def maximum(self, left: list[Candidate], _total: int) -> tuple[list[Candidate], str]:
        return _extreme(left, max), "maximum value across sources"


_RULES: dict[RuleName, Callable[[_Choice, list[Candidate], int], tuple[list[Candidate], str]]] = {
    "source_priority": _Choice.source_priority,
    "most_recent": _Choice.most_recent,
    "most_complete": _Choice.most_complete,
    "most_frequent": _Choice.most_frequent,
    "min": _Choice.minimum,
    "max": _Choice.maximum,
}


def _extreme(left: list[tuple[Any, T]], pick: Callable[..., Any]) -> list[tuple[Any, T]]:
    try:
        best = pick([value for value, _ in left])  # a list, not a generator: one frame
    except (TypeError, ArithmeticError):  # mixed types, a decimal NaN: nothing decided
        return left
    # the best value is kept even when it equals nothing (a float NaN)
    return [c for c in left if c[0] is best or c[0] == best]


def _completeness(value: Any) -> tuple[int, int]:
    """How much a value says: words, then letters and digits (``12 Main Street,
    Apt 4`` over ``12 Main St``); a non-text value counts as one word."""
    if not isinstance(value, str):
        return (1, 1)
    folded = fold(value)
    return (len(folded.split()), sum(ch.isalnum() for ch in folded))


def _shown(value: Any) -> Any:
    """What makes a value another alternative: any difference but letter case."""
    return value.casefold() if isinstance(value, str) else value


_ASCII_FOLD = str.maketrans(
    {chr(c): " " for c in range(128) if not chr(c).isalnum() and chr(c) != "'"} | {"'": None}
)


def _key(value: Any) -> Any:
    """What two values must share to count as one: text folded (case, accents,
    punctuation, whitespace), other values as they are."""
    if not isinstance(value, str):
        return value
    if value.isascii():  # the common case, as ``fold`` would do it but without Unicode work
        return " ".join(value.lower().translate(_ASCII_FOLD).split()) or value.casefold()
    return fold(value) or value.casefold()
