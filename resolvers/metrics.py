"""Computed metrics of a customer: aggregates over its related entities.

Metrics over one relation with the same ``where`` are computed together, per
request, once one of them is asked for: one grouped aggregate (``GROUP BY
parent_key`` with the keys of every customer in the response), pushed down when the source
declares aggregates and can evaluate the filters; otherwise the relation's
rows are fetched in one batched lookup and aggregated in memory. When the source
also declares filtered aggregates, the relation's pushed metrics with different
``where`` filters are one grouped aggregate, each metric with its own ``where``, so the
rows are read once. Per-record results are then combined over the customer's
member records.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

from connectors import Aggregate, Connector, Filter, Row
from connectors.observe import note
from resolvers.coerce import coerce
from resolvers.filtering import matches_all, pushable, to_filters
from resolvers.model import MetricSpec, RelationSpec

Partial = dict[str, Any]
"""Metric name -> value for the rows of one member record."""


def where_key(metric: MetricSpec) -> tuple[tuple[str, str, str], ...]:
    """What metrics computed by one grouped aggregate share: their ``where``."""
    return tuple((w.column, w.op, repr(w.value)) for w in metric.where)


@dataclass(frozen=True, slots=True)
class _Batch:
    """Metrics of one relation computed by one read."""

    metrics: dict[str, MetricSpec]
    pushed: bool
    """A grouped aggregate the source computes (else its rows are folded in memory)."""
    filtered: bool = False
    """Each aggregate carries its metric's ``where`` (several ``where`` filters, one read)."""


def computed_with(
    connector: Connector, relation: RelationSpec, metrics: Mapping[str, MetricSpec], name: str
) -> dict[str, MetricSpec]:
    """The metrics of ``metrics`` (those over ``relation``) that the read computing
    metric ``name`` computes too: a loader of ``name`` loads them all."""
    mine = {n: m for n, m in metrics.items() if m.relation == metrics[name].relation}
    for batch in _batches(connector, relation, mine):
        if name in batch.metrics:
            return batch.metrics
    raise KeyError(name)  # pragma: no cover - every metric is in a batch


async def compute(
    connector: Connector,
    relation: RelationSpec,
    metrics: Mapping[str, MetricSpec],
    keys: Sequence[Any],
) -> list[Partial]:
    """Per parent key (DataLoader order), every metric of ``relation``. A key may
    lack a metric whose read found no rows for it (or, in a filtered read, have that
    metric's value over no rows): :func:`combine` gives the same for either."""
    results = await asyncio.gather(
        *(
            _pushed(connector, relation, batch, keys)
            if batch.pushed
            else _in_memory(connector, relation, batch.metrics, keys)
            for batch in _batches(connector, relation, metrics)
        )
    )
    merged: dict[Any, Partial] = defaultdict(dict)
    for by_key in results:
        for key, values in by_key.items():
            merged[key].update(values)
    return [merged.get(key, {}) for key in keys]


async def compute_columns(
    connector: Connector,
    relation: RelationSpec,
    metrics: Mapping[str, MetricSpec],
    keys: Sequence[Any],
) -> dict[str, dict[Any, Any]]:
    """:func:`compute` a metric at a time: metric -> its value by parent key, for the
    keys that have one (a pushed aggregate leaves out the keys without rows, as
    :func:`compute` leaves their values out). An export's chunk reads it without a
    dict per key."""
    results = await asyncio.gather(
        *(
            _pushed_columns(connector, relation, batch, keys)
            if batch.pushed
            else _in_memory_columns(connector, relation, batch.metrics, keys)
            for batch in _batches(connector, relation, metrics)
        )
    )
    found: dict[str, dict[Any, Any]] = {}
    for by_metric in results:
        found.update(by_metric)
    return found


def _batches(
    connector: Connector, relation: RelationSpec, metrics: Mapping[str, MetricSpec]
) -> list[_Batch]:
    """The reads computing ``metrics``: a grouped aggregate per ``where`` the source
    can evaluate (one for all of them when it declares filtered aggregates), a
    lookup folded in memory per other ``where``."""
    groups: dict[tuple[tuple[str, str, str], ...], dict[str, MetricSpec]] = defaultdict(dict)
    for name, metric in metrics.items():
        groups[where_key(metric)][name] = metric
    capabilities = connector.capabilities_for(relation.table)
    aggregates = capabilities.supports_aggregates and capabilities.can_filter(
        relation.parent.column, "in"
    )
    pushed: list[dict[str, MetricSpec]] = []
    batches: list[_Batch] = []
    for group in groups.values():
        if aggregates and pushable(capabilities, to_filters(next(iter(group.values())).where)):
            pushed.append(group)
        else:
            batches.append(_Batch(group, pushed=False))
    if len(pushed) > 1 and capabilities.supports_filtered_aggregates:
        merged = {name: metric for group in pushed for name, metric in group.items()}
        return [_Batch(merged, pushed=True, filtered=True), *batches]
    return [*(_Batch(group, pushed=True) for group in pushed), *batches]


async def _pushed(
    connector: Connector,
    relation: RelationSpec,
    batch: _Batch,
    keys: Sequence[Any],
) -> dict[Any, Partial]:
    parent = relation.parent.column
    metrics = batch.metrics
    rows = await _aggregated(connector, relation, batch, keys)
    out: dict[Any, Partial] = {}
    names = list(metrics)
    if any(m.fn == "avg" for m in metrics.values()):
        for row in rows:
            out[row[parent]] = {
                name: (row[f"m_{i}"], row[f"n_{i}"]) if m.fn == "avg" else row[f"m_{i}"]
                for i, (name, m) in enumerate(metrics.items())
            }
        return out
    # each row's values by alias, in the metrics' order, in one step
    values = itemgetter(*[f"m_{i}" for i in range(len(names))])
    if len(names) == 1:
        for row in rows:
            out[row[parent]] = {names[0]: values(row)}
        return out
    for row in rows:
        out[row[parent]] = dict(zip(names, values(row), strict=True))
    return out


async def _aggregated(
    connector: Connector,
    relation: RelationSpec,
    batch: _Batch,
    keys: Sequence[Any],
) -> list[Row]:
    """The grouped aggregate of ``batch`` over the rows of ``keys``: per parent key
    with rows (with rows passing the ``where`` unless the batch is filtered), metric
    ``i``'s value as ``m_i`` (an average's sum, and its count as ``n_i``). Filtered,
    each aggregate has its metric's ``where``: a key whose rows pass none of a
    metric's has that metric's value over no rows (a count 0, else NULL)."""
    parent = relation.parent.column
    metrics = batch.metrics
    shared = [] if batch.filtered else to_filters(next(iter(metrics.values())).where)
    aggregates: list[Aggregate] = []
    for i, m in enumerate(metrics.values()):
        own: Sequence[Filter] = to_filters(m.where) if batch.filtered else ()
        if m.fn == "avg":
            # an average over several member records needs their sums and counts
            aggregates.append(Aggregate("sum", m.column, alias=f"m_{i}", where=own))
            aggregates.append(Aggregate("count", m.column, alias=f"n_{i}", where=own))
        else:
            aggregates.append(Aggregate(m.fn, m.column, alias=f"m_{i}", where=own))
    return await connector.aggregate(
        relation.table, [parent], aggregates, [Filter(parent, "in", list(keys)), *shared]
    )


async def _pushed_columns(
    connector: Connector,
    relation: RelationSpec,
    batch: _Batch,
    keys: Sequence[Any],
) -> dict[str, dict[Any, Any]]:
    metrics = batch.metrics
    rows = await _aggregated(connector, relation, batch, keys)
    # each column read out of the rows in C (itemgetter over map), no loop per row
    parents = list(map(itemgetter(relation.parent.column), rows))
    out: dict[str, dict[Any, Any]] = {}
    for i, (name, m) in enumerate(metrics.items()):
        values: Iterable[Any] = map(itemgetter(f"m_{i}"), rows)
        if m.fn == "avg":
            values = zip(values, map(itemgetter(f"n_{i}"), rows), strict=True)
        out[name] = dict(zip(parents, values, strict=True))
    return out


async def _in_memory_columns(
    connector: Connector,
    relation: RelationSpec,
    metrics: Mapping[str, MetricSpec],
    keys: Sequence[Any],
) -> dict[str, dict[Any, Any]]:
    by_key = await _in_memory(connector, relation, metrics, keys)
    return {name: {key: values[name] for key, values in by_key.items()} for name in metrics}


async def _in_memory(
    connector: Connector,
    relation: RelationSpec,
    metrics: Mapping[str, MetricSpec],
    keys: Sequence[Any],
) -> dict[Any, Partial]:
    where = to_filters(next(iter(metrics.values())).where)
    columns = list(
        dict.fromkeys(
            [relation.parent.column, *(w.column for w in where)]
            + [m.column for m in metrics.values() if m.column]
        )
    )
    groups = await connector.lookup_many(relation.table, relation.parent.column, keys, columns)
    note(
        f"{relation.table}: aggregated {sum(len(g) for g in groups)} rows in memory "
        f"({', '.join(metrics)}), the source cannot"
    )
    out: dict[Any, Partial] = {}
    for key, rows in zip(keys, groups, strict=True):
        kept = [row for row in rows if matches_all(row, where)]
        out[key] = {name: _fold(metric, kept) for name, metric in metrics.items()}
    return out


def _fold(metric: MetricSpec, rows: list[Row]) -> Any:
    if metric.fn == "count":
        return len(rows)
    assert metric.column is not None
    values = [coerce(r.get(metric.column), metric.type) for r in rows]
    present = [v for v in values if v is not None]
    if metric.fn == "avg":
        return (sum(present), len(present)) if present else None
    if not present:
        return None
    if metric.fn == "sum":
        return sum(present)
    return min(present) if metric.fn == "min" else max(present)


def combine(metric: MetricSpec, partials: Sequence[Any]) -> Any:
    """One customer's value from its member records' values."""
    if metric.fn == "avg":
        pairs = [p for p in partials if p is not None]
        total = sum((float(s) for s, _ in pairs if s is not None), start=0.0)
        count = sum(int(n or 0) for _, n in pairs)
        return coerce(total / count, metric.type) if count else None
    values = [coerce(v, metric.type) for v in partials if v is not None]
    if metric.fn in ("count", "sum"):
        return coerce(sum(values, start=0), metric.type)
    if not values:
        return None
    return min(values) if metric.fn == "min" else max(values)


NO_KEY: Any = object()
"""In :attr:`Owners.sole`, a customer without exactly one key."""


@dataclass(slots=True)
class Owners:
    """Each customer's keys of one member, the way an export's chunk holds them: most
    customers have one key, so ``sole`` holds each customer's key when it has exactly
    one (:data:`NO_KEY` otherwise) and ``more`` the keys, in order, of the customers
    (by position) with several."""

    sole: list[Any]
    more: dict[int, list[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, owned: Sequence[Sequence[Any]]) -> Owners:
        """From each customer's list of keys."""
        return cls(
            [keys[0] if len(keys) == 1 else NO_KEY for keys in owned],
            {at: list(keys) for at, keys in enumerate(owned) if len(keys) > 1},
        )

    def keys(self) -> list[Any]:
        """Every key once: the sole keys in order, then the others in order."""
        found = dict.fromkeys(self.sole)
        for keys in self.more.values():
            found.update(dict.fromkeys(keys))
        found.pop(NO_KEY, None)
        return list(found)


def combine_column(metric: MetricSpec, owners: Owners, values: Mapping[Any, Any]) -> list[Any]:
    """:func:`combine` for many customers: ``owners`` holds each customer's member keys,
    ``values`` the metric's value by key (a key without rows may be missing)."""
    one = _combine_one(metric)
    no_rows = one(None)  # ``combine(metric, [])``: the metric of no rows
    try:
        # a customer with one key (most) gets ``one`` of its key's value: worked out
        # once per key that has a value, then looked up in C with ``no_rows`` for
        # every other customer
        by_key: Mapping[Any, Any] = dict(zip(values.keys(), map(one, values.values()), strict=True))
    except Exception:
        # a value ``one`` fails on: worked out again customer by customer, so that it
        # fails only when a customer with that sole key asks for it, as it did
        out = list(map(one, map(values.get, owners.sole)))
    else:
        out = list(map(by_key.get, owners.sole, repeat(no_rows)))
    for at, keys in owners.more.items():
        out[at] = combine(metric, [values.get(k) for k in keys])
    return out


def _combine_one(metric: MetricSpec) -> Callable[[Any], Any]:
    """``combine(metric, [value])``, without the lists."""
    type_ = metric.type
    fn = metric.fn
    if fn == "avg":

        def average(pair: Any) -> Any:
            if pair is None:
                return None
            total, count = pair
            count = int(count or 0)
            if not count:
                return None
            return coerce((0.0 if total is None else 0.0 + float(total)) / count, type_)

        return average
    if fn in ("count", "sum"):
        zero = combine(metric, [])

        exact = type_ == "int"
        # ``coerce`` of a number's ``0 + value`` gives it back (a decimal is quantized
        # already; ``0 +`` turns ``-0.00`` into ``0.00`` as ``sum`` does), so numbers
        # are converted once
        once = type_ in ("int", "float", "decimal")

        def total(value: Any) -> Any:
            if value is None:
                return zero
            if exact and value.__class__ is int:  # a count: already the value
                return value
            if once:  # None (unreadable) raises TypeError, as ``sum`` would
                return 0 + coerce(value, type_)
            return coerce(sum([coerce(value, type_)], start=0), type_)

        return total
    return lambda value: None if value is None else coerce(value, type_)
