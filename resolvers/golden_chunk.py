"""Golden values of a whole chunk of customers at once, for exports.

:meth:`Survivorship.values` builds one customer's values record by record and
field by field through generic readers; an export asks for every field of
hundreds of customers at a time. Here each field is read a column at a time
(every record of one member in one loop), each record's last update is read
once, and each customer's records are ordered once per source priority, so
that a rule chain of one rule picks its value by a scan of that order rather
than by comparing candidates through the rule's generic code. Chains of
several rules, and the rules that compare values (``most_complete``,
``most_frequent``), are left to :meth:`_Choice.pick`. The values are the ones
:meth:`Survivorship.build` gives (a hypothesis test holds them to it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from operator import is_not
from typing import Any

from resolvers.coerce import coerce, converter
from resolvers.golden import _EPOCH, Survivorship, _extreme, _raw_reader, reader
from resolvers.model import FieldSpec, MemberSpec
from resolvers.records import Record, customer_id_of

Column = Callable[[list[dict[str, Any]]], list[Any]]
"""Member rows -> one golden field's candidate value of each (None when it has none)."""

_is_value = partial(is_not, None)
_SHORTCUT = frozenset({"source_priority", "most_recent", "min", "max"})


def column_reader(
    member: MemberSpec, field: str, spec: FieldSpec, default_region: str | None
) -> Column:
    """:func:`resolvers.golden.reader` over many rows at once."""
    mapping = member.fields.get(field)
    if mapping is None:
        return lambda rows: [None] * len(rows)
    if spec.normalize is not None:
        read = reader(member, field, spec, default_region)
        return lambda rows: [read(row) for row in rows]
    type_ = spec.type
    if "{" in mapping:
        fill = _raw_reader(mapping)
        return lambda rows: [coerce(fill(row), type_) for row in rows]
    if type_ == "string":  # a text column needs nothing but text
        return lambda rows: [
            v if v is None or v.__class__ is str else coerce(v, type_)
            for v in [row.get(mapping) for row in rows]
        ]
    convert = converter(type_)
    return lambda rows: [
        None if v is None else convert(v) for v in [row.get(mapping) for row in rows]
    ]


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
        # per source priority, the fields it alone decides (a scan of the records in
        # its order); the other fields, in field order, with their rule
        self.by_priority: list[list[tuple[int, str]]] = [[] for _ in self.priorities]
        self.others: list[tuple[int, str, str | None, int]] = []
        for at, (field, rule) in enumerate(zip(self.fields, self.shortcut, strict=True)):
            if rule == "source_priority":
                self.by_priority[self.order_of[at]].append((at, field))
            else:
                self.others.append((at, field, rule, self.order_of[at]))

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

    @staticmethod
    def _seniority(
        record: Record, plan: _MemberPlan, found: tuple[Any, ...]
    ) -> tuple[int, float, tuple[int, int, int | str]]:
        """:meth:`Record.seniority`, from the record's golden fields when one of them
        reads its creation time's column."""
        at = plan.created
        if at is None:
            return record.seniority()
        created: dt.datetime | None = found[at]
        if created is None:
            return (1, 0.0, record.order())
        return (0, created.timestamp() or 0.0, record.order())

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
                found = present[at : at + size]
                those = plans[at : at + size]
                values = self._picked(group, found, those, updated)
                seniority = [
                    self._seniority(r, p, f) for r, p, f in zip(group, those, found, strict=True)
                ]
                canonical = group[seniority.index(min(seniority))]
            out.append((values, customer_id_of(canonical.ref_text())))
            at += size
        return out

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
    ) -> dict[str, Any]:
        # :meth:`Survivorship._updated`, from the record's golden fields when one of them
        # reads the same column
        times = []
        for record, plan, found in zip(group, plans, present, strict=True):
            at = plan.updated
            times.append(self.survivorship._updated(record) if at is None else found[at] or _EPOCH)
        if self.needs_updated:
            for record, time in zip(group, times, strict=True):
                updated[id(record)] = time
        # each source priority's tie-break order of the records (what ``_Choice.tie_order``
        # ranks): a candidate that comes first in it is the one ``min`` picks
        sources = [r.member.source for r in group]
        tails = [(-t.timestamp(), r.order()) for r, t in zip(group, times, strict=True)]
        span = range(len(group))
        orders = []
        for rank in self.ranks:
            n = len(rank)
            keys = [(rank.get(s, n), *tail) for s, tail in zip(sources, tails, strict=True)]
            orders.append(sorted(span, key=keys.__getitem__))
        values = dict.fromkeys(self.fields)
        for which, decided in enumerate(self.by_priority):
            if not decided:
                continue
            # the tie-break order ranks sources first: the first value in it wins
            rows = [present[i] for i in orders[which]]
            if len(decided) == 1:  # one field (a source order of its own): no transpose
                at, field = decided[0]
                for row in rows:
                    if (value := row[at]) is not None:
                        values[field] = value
                        break
                continue
            ordered = list(zip(*rows, strict=True))
            for at, field in decided:
                values[field] = next(filter(_is_value, ordered[at]), None)
        # (records holding a value, priority) -> the most recent one first in that order:
        # the fields of one address are most often held by the same records
        recent: dict[tuple[tuple[int, ...], int], int] = {}
        for at, field, rule, which in self.others:
            if rule == "most_recent":
                holders = tuple([i for i in span if present[i][at] is not None])
                if not holders:
                    continue
                first = recent.get((holders, which))
                if first is None:
                    best = max([times[i] for i in holders])
                    first = next(i for i in orders[which] if times[i] == best and i in holders)
                    recent[holders, which] = first
                values[field] = present[first][at]
                continue
            # in the records' order, as :meth:`Survivorship.values` offers them
            candidates = [(v, i) for i, found in enumerate(present) if (v := found[at]) is not None]
            if not candidates:
                continue
            if rule is None:
                choice = self.choices[at]
                values[field] = choice.pick([(v, group[i]) for v, i in candidates], updated)[0]
            else:
                kept = {i for _, i in _extreme(candidates, min if rule == "min" else max)}
                first = next(i for i in orders[which] if i in kept)
                values[field] = present[first][at]
        return values
