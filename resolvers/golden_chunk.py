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
from operator import itemgetter
from typing import Any

from resolvers.coerce import coerce, converter
from resolvers.golden import _EPOCH, Survivorship, _raw_reader, reader
from resolvers.model import FieldSpec, FieldType, MemberSpec
from resolvers.normalize import normalize_email, normalize_external_id, normalize_phone
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
        fill = _raw_reader(mapping)
        if type_ == "string":  # a filled-in template is text already, or None
            return lambda rows: [fill(row) for row in rows]
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
            out = []
            for row in rows:
                value = row.get(column)
                if value is not None and (value := convert(value)) is not None:
                    region = row.get(region_column) if region_column else None
                    value = normalize_phone(value, region, default_region) or value
                out.append(value)
            return out

        return phones
    one: Callable[[Any], str | None] = (
        partial(normalize_email, provider_rules=normalize == "email_provider")
        if normalize != "external_id"
        else normalize_external_id
    )
    return lambda rows: [
        None if (v := None if raw is None else convert(raw)) is None else one(v) or v
        for raw in [row.get(column) for row in rows]
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
        # its order) and the ``most_recent`` fields (a scan in order of recency, that
        # order breaking ties); the other fields, in field order, with their rule
        self.by_priority = [_Scan() for _ in self.priorities]
        self.recent_by_priority = [_Scan() for _ in self.priorities]
        self.others: list[tuple[int, str, str | None, int]] = []
        self._orders: dict[tuple[tuple[str, ...], tuple[int, ...]], list[list[int]]] = {}
        """(records' sources, their order by recency then order) -> :meth:`_tie_orders`."""
        for at, (field, rule) in enumerate(zip(self.fields, self.shortcut, strict=True)):
            if rule == "source_priority":
                self.by_priority[self.order_of[at]].add(at, field)
            elif rule == "most_recent":
                self.recent_by_priority[self.order_of[at]].add(at, field)
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

    def _tie_orders(self, sources: tuple[str, ...], by_tail: tuple[int, ...]) -> list[list[int]]:
        """Each source priority's tie-break order of records from ``sources`` that
        ``by_tail`` orders by recency, then order: sorted (stably) by source rank."""
        orders = []
        for rank in self.ranks:
            n = len(rank)
            ranked = [rank.get(s, n) for s in sources]
            orders.append(sorted(by_tail, key=ranked.__getitem__))
        return orders

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
        # :meth:`Survivorship._updated`, from the record's golden fields when one of them
        # reads the same column
        times = []
        for record, plan, found in zip(group, plans, present, strict=True):
            at = plan.updated
            times.append(self.survivorship._updated(record) if at is None else found[at] or _EPOCH)
        if self.needs_updated:
            for record, time in zip(group, times, strict=True):
                updated[id(record)] = time
        order = [r.order() for r in group]
        # :meth:`Record.seniority`, from the record's golden fields when one of them
        # reads its creation time's column
        seniority = []
        for record, plan, found, place in zip(group, plans, present, order, strict=True):
            created = plan.created
            if created is None:
                seniority.append(record.seniority())
            elif (when := found[created]) is None:
                seniority.append((1, 0.0, place))
            else:
                seniority.append((0, when.timestamp() or 0.0, place))
        canonical = group[seniority.index(min(seniority))]
        # each source priority's tie-break order of the records (what ``_Choice.tie_order``
        # ranks: source, then most recent, then order): a candidate that comes first in
        # it is the one ``min`` picks. Sorted once by the tail, then (stable) by source.
        tails = [(-t.timestamp(), place) for t, place in zip(times, order, strict=True)]
        by_tail = tuple(sorted(range(len(group)), key=tails.__getitem__))
        # which depend on the records' sources and that order alone: the shapes of small
        # groups recur through a whole export (s**n * n! for n records of s sources),
        # larger groups are sorted each time
        shape = (tuple([r.member.source for r in group]), by_tail)
        known = self._orders.get(shape) if len(group) <= _SHAPED else None
        orders = known if known is not None else self._tie_orders(*shape)
        if known is None and len(group) <= _SHAPED:
            self._orders[shape] = orders
        values = dict.fromkeys(self.fields)
        for which, scan in enumerate(self.by_priority):
            if scan.fields:
                # the tie-break order ranks sources first: the first value in it wins
                scan.first(values, present, orders[which])
        for which, scan in enumerate(self.recent_by_priority):
            if scan.fields:
                # the most recent holder of a value, the first in the tie-break order
                # among equally recent ones (a stable sort keeps that order)
                scan.first(
                    values, present, sorted(orders[which], key=times.__getitem__, reverse=True)
                )
        for at, field, rule, which in self.others:
            if rule is None:
                # in the records' order, as :meth:`Survivorship.values` offers them
                candidates = [
                    (v, group[i]) for i, found in enumerate(present) if (v := found[at]) is not None
                ]
                if candidates:
                    values[field] = self.choices[at].pick(candidates, updated)[0]
                continue
            # :func:`resolvers.golden._extreme` over the values in the records' order,
            # then the first holder of the extreme in the tie-break order
            column = [found[at] for found in present]
            held = [v for v in column if v is not None]
            if not held:
                continue
            try:
                best = (min if rule == "min" else max)(held)
            except (TypeError, ArithmeticError):  # mixed types, a decimal NaN: nothing decided
                first = next(i for i in orders[which] if column[i] is not None)
            else:
                first = next(
                    i
                    for i in orders[which]
                    if (v := column[i]) is not None and (v is best or v == best)
                )
            values[field] = column[first]
        return values, canonical


class _Scan:
    """Fields decided by the first record holding a value in some order of the
    records (a source priority's, or recency's): most often the first record holds
    them all, read in one step."""

    __slots__ = ("ats", "fields", "get")

    def __init__(self) -> None:
        self.ats: list[int] = []
        self.fields: list[str] = []
        self.get: Callable[[tuple[Any, ...]], tuple[Any, ...]] = lambda row: ()

    def add(self, at: int, field: str) -> None:
        self.ats.append(at)
        self.fields.append(field)
        ats = tuple(self.ats)
        # ``itemgetter`` of one index gives the value, not a tuple of it
        self.get = itemgetter(*ats) if len(ats) > 1 else lambda row: (row[ats[0]],)

    def first(self, values: dict[str, Any], rows: list[tuple[Any, ...]], order: list[int]) -> None:
        """Each field's first value (not None) in ``rows`` taken in ``order``, into
        ``values``."""
        found = self.get(rows[order[0]])
        values.update(zip(self.fields, found, strict=True))
        if None not in found:
            return
        for at, field, value in zip(self.ats, self.fields, found, strict=True):
            if value is None:
                for i in order:
                    if (value := rows[i][at]) is not None:
                        values[field] = value
                        break
