"""Golden values of a whole chunk of customers at once, for exports.

:meth:`Survivorship.values` builds one customer's values record by record and
field by field through generic readers; an export asks for every field of
hundreds of customers at a time. Here each field is read a column at a time
(every record of one member in one loop), each record's last update is read
once, and each customer's records are ordered once per source priority, so
that a rule chain of one rule picks its value by a scan of that order rather
than by comparing candidates through the rule's generic code: the records are
merged once per distinct order (each field's first value in it), and every
field decided by such a scan takes its value from its order's merge. Chains of
several rules, and the rules that compare values (``most_complete``,
``most_frequent``), are left to :meth:`_Choice.pick`. The values are the ones
:meth:`Survivorship.build` gives (a hypothesis test holds them to it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Any

from resolvers.coerce import coerce, converter
from resolvers.golden import _EPOCH, Survivorship, filled_templates, reader
from resolvers.model import FieldSpec, FieldType, MemberSpec
from resolvers.normalize import normalize_email, normalize_external_id, normalize_phones
from resolvers.records import Record, customer_id_of

Column = Callable[[list[dict[str, Any]]], list[Any]]
"""Member rows -> one golden field's candidate value of each (None when it has none)."""

_SHORTCUT = frozenset({"source_priority", "most_recent", "min", "max"})


def column_reader(
    member: MemberSpec, field: str, spec: FieldSpec, default_region: str | None
) -> Column:
    """:func:`resolvers.golden.reader` over many rows at once."""
    mapping = member.fields.get(field)
    if mapping is None:
        return lambda rows: [None] * len(rows)
    type_ = spec.type
    if spec.normalize is not None:
        if "{" not in mapping and spec.normalize in _NORMALIZED:
            return _normalized_column(mapping, type_, spec.normalize, member, default_region)
        read = reader(member, field, spec, default_region)
        return lambda rows: [read(row) for row in rows]
    if "{" in mapping:
        filled = filled_templates(mapping)
        if type_ == "string":  # a filled-in template is text already, or None
            return filled
        return lambda rows: [coerce(v, type_) for v in filled(rows)]
    if type_ == "string":  # a text column needs nothing but text
        return lambda rows: [
            v if v is None or v.__class__ is str else coerce(v, type_)
            for v in [row.get(mapping) for row in rows]
        ]
    convert = converter(type_)
    return lambda rows: [
        None if v is None else convert(v) for v in [row.get(mapping) for row in rows]
    ]


_SHAPED = 4
"""Groups of up to this many records keep their tie-break orders by shape."""
_NORMALIZED = frozenset({"email", "email_provider", "external_id", "phone"})


def _normalized_column(
    column: str, type_: FieldType, normalize: str, member: MemberSpec, default_region: str | None
) -> Column:
    """:func:`resolvers.golden.reader` of a column that a key normaliser reads (a value
    that does not normalise stays as it is), over many rows at once."""
    convert = converter(type_)
    if normalize == "phone":
        region_column = member.region

        def phones(rows: list[dict[str, Any]]) -> list[Any]:
            values = [
                None if v is None else convert(v) for v in map(dict.get, rows, repeat(column))
            ]
            regions = map(dict.get, rows, repeat(region_column)) if region_column else repeat(None)
            phones = normalize_phones(values, regions, default_region)
            return [phone or value for phone, value in zip(phones, values, strict=True)]

        return phones
    if normalize == "email" and type_ == "string":
        return partial(_emails, column)
    one: Callable[[Any], str | None] = (
        partial(normalize_email, provider_rules=normalize == "email_provider")
        if normalize != "external_id"
        else normalize_external_id
    )
    return lambda rows: [
        None if (v := None if raw is None else convert(raw)) is None else one(v) or v
        for raw in [row.get(column) for row in rows]
    ]


def _emails(column: str, rows: list[dict[str, Any]]) -> list[Any]:
    """A text column of emails as :func:`_normalized_column` reads it, with
    :func:`resolvers.normalize.normalize_email` (without provider rules) inlined:
    trimmed and lower-case when that holds an ``@``, else as it is."""
    out = []
    for row in rows:
        value = row.get(column)
        if value is not None:
            if value.__class__ is not str:
                value = value if isinstance(value, str) else str(value)
            email = value.strip().lower()
            if "@" in email:
                value = email
        out.append(value)
    return out


@dataclass(slots=True)
class _MemberPlan:
    """How one member's records are read: its field columns, and which of them hold
    its update and creation times (as :meth:`Survivorship._updated` and
    :meth:`Record.created` read them), if any."""

    member: MemberSpec
    columns: list[Column]
    updated: int | None
    created: int | None


class ChunkSurvivorship:
    """:meth:`Survivorship.values` for many customers, a column at a time."""

    def __init__(self, survivorship: Survivorship) -> None:
        self.survivorship = survivorship
        self.fields = list(survivorship.fields)
        self.choices = [survivorship._choices[f] for f in self.fields]
        self._plans: dict[int, _MemberPlan] = {}
        # fields sharing a source priority share their records' tie-break order
        self.priorities = list(dict.fromkeys(tuple(c.priority) for c in self.choices))
        self.order_of = [self.priorities.index(tuple(c.priority)) for c in self.choices]
        self.ranks = [{source: i for i, source in enumerate(p)} for p in self.priorities]
        self.shortcut = [
            c.rule.chain[0] if len(c.rule.chain) == 1 and c.rule.chain[0] in _SHORTCUT else None
            for c in self.choices
        ]
        # only the rules left to :meth:`_Choice.pick` read the records' update times by id
        self.needs_updated = None in self.shortcut
        # per source priority, the fields it alone decides (the first value in the
        # records' tie-break order) and the ``most_recent`` fields (the first in order
        # of recency, that order breaking ties); the other fields, in field order,
        # with their rule
        self.by_priority: list[list[int]] = [[] for _ in self.priorities]
        self.recent_by_priority: list[list[int]] = [[] for _ in self.priorities]
        self.others: list[tuple[int, str, str | None, int]] = []
        self._shapes: dict[tuple[tuple[str, ...], tuple[int, ...]], _Shape] = {}
        """(records' sources, their order by recency then order) -> :meth:`_shape`."""
        for at, rule in enumerate(self.shortcut):
            if rule == "source_priority":
                self.by_priority[self.order_of[at]].append(at)
            elif rule == "most_recent":
                self.recent_by_priority[self.order_of[at]].append(at)
            else:
                self.others.append((at, self.fields[at], rule, self.order_of[at]))
        self.recent = [(which, ats) for which, ats in enumerate(self.recent_by_priority) if ats]

    def _plan(self, member: MemberSpec) -> _MemberPlan:
        # by identity: ``member.id`` formats a string on every call
        plan = self._plans.get(id(member))
        if plan is None or plan.member is not member:
            s = self.survivorship
            columns = [
                column_reader(member, name, spec, s.default_region)
                for name, spec in s.fields.items()
            ]
            plan = self._plans[id(member)] = _MemberPlan(
                member,
                columns,
                self._field_at(member, member.updated_at),
                self._field_at(member, member.created_column),
            )
        return plan

    def _field_at(self, member: MemberSpec, column: str | None) -> int | None:
        """The golden field that reads ``column`` of ``member`` as a datetime, as
        :meth:`Survivorship._updated` and :meth:`Record.created` read it, if any."""
        return next(
            (
                at
                for at, (name, spec) in enumerate(self.survivorship.fields.items())
                if column is not None
                and member.fields.get(name) == column
                and spec.type == "datetime"
                and spec.normalize is None
            ),
            None,
        )

    def values(self, groups: Sequence[Sequence[Record]]) -> list[dict[str, Any]]:
        """The golden values of each group of records (one customer's)."""
        return [values for values, _ in self.customers(groups)]

    def customers(self, groups: Sequence[Sequence[Record]]) -> list[tuple[dict[str, Any], str]]:
        """The golden values and the customer id of each group of records."""
        records = [r for group in groups for r in group]
        present, plans = self._present(records)
        updated: dict[int, dt.datetime] = {}
        fields = self.fields
        out: list[tuple[dict[str, Any], str]] = []
        at = 0
        for group in groups:
            size = len(group)
            if size == 1:  # every rule keeps the only candidate
                values = dict(zip(fields, present[at], strict=True))
                canonical = group[0]
            else:
                values, canonical = self._picked(
                    group, present[at : at + size], plans[at : at + size], updated
                )
            out.append((values, customer_id_of(canonical.ref_text())))
            at += size
        return out

    def _shape(self, sources: tuple[str, ...], by_tail: tuple[int, ...]) -> _Shape:
        """How the records of a group from ``sources``, that ``by_tail`` orders by
        recency then order, are scanned: each source priority's tie-break order
        (sorted stably by source rank), and the distinct orders that some field is
        taken in (``by_tail`` among them: the order of recency when no two records
        are equally recent), each with the fields taken in it."""
        orders = []
        for rank in self.ranks:
            n = len(rank)
            ranked = [rank.get(s, n) for s in sources]
            orders.append(tuple(sorted(by_tail, key=ranked.__getitem__)))
        # each distinct order that some field is taken in, with those fields
        scans: dict[tuple[int, ...], list[int]] = {}
        for which, ats in enumerate(self.by_priority):
            if ats:
                scans.setdefault(orders[which], []).extend(ats)
        for ats in self.recent_by_priority:
            if ats:
                scans.setdefault(by_tail, []).extend(ats)
        firsts = list(scans.items())
        return _Shape(orders, firsts)

    def _present(self, records: list[Record]) -> tuple[list[tuple[Any, ...]], list[_MemberPlan]]:
        """Every record's candidate value of every field, in field order, and the plan
        of its member."""
        by_member: dict[int, tuple[_MemberPlan, list[int]]] = {}
        plans: list[_MemberPlan] = []
        for i, record in enumerate(records):
            member = record.member
            found = by_member.get(id(member))
            if found is None:
                found = by_member[id(member)] = (self._plan(member), [])
            found[1].append(i)
            plans.append(found[0])
        present: list[tuple[Any, ...]] = [()] * len(records)
        for plan, numbers in by_member.values():
            rows = [records[i].row for i in numbers]
            columns = [read(rows) for read in plan.columns]
            if not columns:  # a model without fields
                continue
            for i, values in zip(numbers, zip(*columns, strict=True), strict=True):
                present[i] = values
        return present, plans

    def _picked(
        self,
        group: Sequence[Record],
        present: list[tuple[Any, ...]],
        plans: list[_MemberPlan],
        updated: dict[int, dt.datetime],
    ) -> tuple[dict[str, Any], Record]:
        """The golden values of a group of several records, and its canonical record
        (:func:`resolvers.records.canonical`: the oldest, then the first in order)."""
        # one pass over the records for what ordering them needs: each one's update time
        # (:meth:`Survivorship._updated`, from its golden fields when one of them reads
        # the same column) and source
        times = []
        stamps = []
        sources = []
        for record, plan, found in zip(group, plans, present, strict=True):
            at = plan.updated
            time = self.survivorship._updated(record) if at is None else found[at] or _EPOCH
            times.append(time)
            stamps.append(-time.timestamp())
            sources.append(record.member.source)
        if self.needs_updated:
            for record, time in zip(group, times, strict=True):
                updated[id(record)] = time
        size = len(group)
        distinct = len(set(stamps)) == size
        canonical = group[_senior(group, plans, present)]
        # each source priority's tie-break order of the records (what ``_Choice.tie_order``
        # ranks: source, then most recent, then order): a candidate that comes first in
        # it is the one ``min`` picks. Sorted once by the tail, then (stable) by source;
        # the records' places decide only between equally recent ones.
        if distinct:
            by_tail = tuple(sorted(range(size), key=stamps.__getitem__))
        else:
            tails = [(stamp, _place(r)) for stamp, r in zip(stamps, group, strict=True)]
            by_tail = tuple(sorted(range(size), key=tails.__getitem__))
        # which depend on the records' sources and that order alone: the shapes of small
        # groups recur through a whole export (s**n * n! for n records of s sources),
        # larger groups are worked out each time
        shape_key = (tuple(sources), by_tail)
        shape = self._shapes.get(shape_key) if size <= _SHAPED else None
        if shape is None:
            shape = self._shape(*shape_key)
            if size <= _SHAPED:
                self._shapes[shape_key] = shape
        orders = shape.orders
        # a field decided by the first value in an order takes the first of its values
        # (not None) in that order; the others' are set below
        row = _firsts(present, shape.firsts, len(self.fields))
        if self.recent and not distinct:
            # equally recent records: the most recent in each priority's tie-break
            # order (a stable sort keeps that order among them)
            for which, ats in self.recent:
                first = _merged(present, sorted(orders[which], key=times.__getitem__, reverse=True))
                for at in ats:
                    row[at] = first[at]
        for at, _field, rule, which in self.others:
            if rule is None:
                # in the records' order, as :meth:`Survivorship.values` offers them
                candidates = [
                    (v, group[i]) for i, found in enumerate(present) if (v := found[at]) is not None
                ]
                row[at] = self.choices[at].pick(candidates, updated)[0] if candidates else None
                continue
            # :func:`resolvers.golden._extreme` over the values in the records' order,
            # then the first holder of the extreme in the tie-break order
            column = [found[at] for found in present]
            held = [v for v in column if v is not None]
            if not held:
                row[at] = None
                continue
            try:
                best = (min if rule == "min" else max)(held)
            except (TypeError, ArithmeticError):  # mixed types, a decimal NaN: nothing decided
                row[at] = column[next(i for i in orders[which] if column[i] is not None)]
                continue
            for i in orders[which]:
                if (value := column[i]) is not None and (value is best or value == best):
                    row[at] = value
                    break
        return dict(zip(self.fields, row, strict=True)), canonical


def _place(record: Record) -> tuple[int, int, Any]:
    """:meth:`Record.order`."""
    key = record.row[record.member.key]
    return (record.rank, 0, key) if key.__class__ is int else record.order()


def _senior(
    group: Sequence[Record], plans: list[_MemberPlan], present: list[tuple[Any, ...]]
) -> int:
    """Where the canonical record of a group is (:func:`resolvers.records.canonical`:
    the least :meth:`Record.seniority`), its creation time read from its golden fields
    when one of them reads the same column; places are compared only between the
    records created first at the same time."""
    whens: list[tuple[int, float]] = []
    for record, plan, found in zip(group, plans, present, strict=True):
        created = plan.created
        if created is None:
            flag, when, _ = record.seniority()
            whens.append((flag, when))
        elif (value := found[created]) is None:
            whens.append((1, 0.0))
        else:
            whens.append((0, value.timestamp() or 0.0))
    first = min(whens)
    if whens.count(first) == 1:
        return whens.index(first)
    return min((i for i, when in enumerate(whens) if when == first), key=lambda i: _place(group[i]))


@dataclass(slots=True)
class _Shape:
    """:meth:`ChunkSurvivorship._shape`: the orders a group's records are taken in."""

    orders: list[tuple[int, ...]]
    """Each source priority's tie-break order."""
    firsts: list[tuple[tuple[int, ...], list[int]]]
    """The distinct orders that fields decided by a first value are taken in (scans),
    each with those fields."""


def _firsts(
    rows: list[tuple[Any, ...]], firsts: list[tuple[tuple[int, ...], list[int]]], width: int
) -> list[Any]:
    """Each field's first value (not None) in ``rows`` taken in its scan's order, for the
    fields of ``firsts`` (:meth:`_merged` of each scan, read for its own fields only);
    None for the other fields and where no row holds a value."""
    row: list[Any] = [None] * width
    for order, ats in firsts:
        first = rows[order[0]]
        if len(order) == 2:
            second = rows[order[1]]
            for at in ats:
                value = first[at]
                row[at] = second[at] if value is None else value
            continue
        for at in ats:
            value = first[at]
            if value is None:
                for i in order[1:]:
                    if (value := rows[i][at]) is not None:
                        break
            row[at] = value
    return row


def _merged(rows: list[tuple[Any, ...]], order: Sequence[int]) -> Sequence[Any]:
    """Each field's first value (not None) in ``rows`` taken in ``order``: most often
    the first row holds them all."""
    first = rows[order[0]]
    if None not in first:
        return first
    if len(order) == 2:
        return [a if a is not None else b for a, b in zip(first, rows[order[1]], strict=True)]
    merged = list(first)
    missing = [at for at, value in enumerate(first) if value is None]
    for i in order[1:]:
        row = rows[i]
        still = []
        for at in missing:
            if (value := row[at]) is None:
                still.append(at)
            else:
                merged[at] = value
        if not still:
            break
        missing = still
    return merged
