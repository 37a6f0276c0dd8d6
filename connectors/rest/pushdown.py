"""What a resource pushes down to its API: its declared capabilities, and the
query parameters that carry a read's filters and sort.

Both read only the resource's configuration, so the planner's view
(:func:`declare`) and what is sent (:func:`filter_params`,
:func:`sort_params`) cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from connectors._base import Capabilities, Filter, Sort
from connectors.errors import QueryError, UnsupportedOperation
from connectors.rest.options import ResourceOptions
from connectors.rest.records import param


def declare(res: ResourceOptions) -> Capabilities:
    """Exactly what ``res`` configures, as the planner reads it."""
    batches = [lookup.max_batch for lookup in res.lookups.values() if lookup.batch]
    lookups = res.lookup_columns()
    return Capabilities(
        supports_batch_lookup=bool(lookups),
        supports_sort=res.sort is not None,
        supports_keyset=False,
        supports_limit=True,
        supports_aggregates=False,
        column_filter_operators={c: frozenset(ops) for c, ops in res.filters.items()},
        sortable_columns=frozenset(res.sort.columns) if res.sort else frozenset(),
        lookup_columns=lookups,
        lookup_transforms=frozenset({"exact"}),
        max_batch_size=max(batches, default=100),
        max_sort_columns=res.sort.max_columns if res.sort else None,
    )


def filter_params(
    res: ResourceOptions,
    filters: Sequence[Filter],
    unsupported: Callable[[str], UnsupportedOperation],
) -> dict[str, str] | None:
    """Query parameters of declared ``filters``; ``None`` when they match nothing (``in []``)."""
    params: dict[str, str] = {}
    for f in filters:
        name = res.filters[f.column][f.op]
        if f.op == "in":
            if isinstance(f.value, str | bytes) or not isinstance(f.value, Sequence | set):
                raise QueryError(f"filter 'in' on '{f.column}' needs a list of values")
            if not f.value:
                return None
            text = ",".join(param(v) for v in f.value)
        elif f.op == "is_null":
            text = param(f.value in (True, None))
        elif f.value is None:
            raise QueryError(f"filter '{f.op}' on '{f.column}' needs a value")
        else:
            text = param(f.value)
        if params.get(name, text) != text:
            raise unsupported(f"two filters on the one parameter '{name}'")
        params[name] = text
    return params


def sort_params(res: ResourceOptions, order_by: Sequence[Sort]) -> dict[str, str]:
    """The sort parameter of a declared ``order_by`` (``-created_at,id``)."""
    if not order_by or res.sort is None:
        return {}
    s = res.sort
    fields = [(s.descending_prefix if o.descending else "") + s.columns[o.column] for o in order_by]
    return {s.param: s.separator.join(fields)}
