"""Whether a read asks only for what a connector declared.

The planner pushes down exactly what :class:`~connectors.Capabilities`
declares and does the rest in memory; before it hands a request to a
connector it calls :func:`check_request_allowed`. Connectors may call it
too, to refuse undeclared work with :class:`~connectors.UnsupportedOperation`
instead of doing something silently.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors._base import Aggregate, Capabilities, Filter, ScanRequest
from connectors.errors import UnsupportedOperation


def scan_problems(capabilities: Capabilities, request: ScanRequest) -> list[str]:
    """What ``request`` asks for that ``capabilities`` does not declare (empty: allowed)."""
    problems = filter_problems(capabilities, request.filters)
    if request.order_by:
        if not capabilities.supports_sort:
            problems.append("sorting is not supported")
        else:
            problems += [
                f"sorting by '{s.column}' is not supported"
                for s in request.order_by
                if not capabilities.can_sort(s.column)
            ]
            most = capabilities.max_sort_columns
            if most is not None and len(request.order_by) > most:
                problems.append(f"at most {most} sort column(s) are supported")
    if request.after is not None and not capabilities.supports_keyset:
        problems.append("keyset pagination is not supported")
    if request.limit is not None and not capabilities.supports_limit:
        problems.append("limit is not supported")
    return problems


def filter_problems(capabilities: Capabilities, filters: Sequence[Filter]) -> list[str]:
    return [
        f"filter '{f.op}' on '{f.column}' is not supported"
        for f in filters
        if not capabilities.can_filter(f.column, f.op)
    ]


def aggregate_problems(
    capabilities: Capabilities,
    aggregates: Sequence[Aggregate],
    filters: Sequence[Filter] = (),
) -> list[str]:
    """What an aggregate call asks for that ``capabilities`` does not declare."""
    if not capabilities.supports_aggregates:
        return ["aggregates are not supported"]
    problems = filter_problems(capabilities, filters)
    filtered = [a for a in aggregates if a.where]
    if filtered and not capabilities.supports_filtered_aggregates:
        problems.append("aggregates with their own where are not supported")
    for agg in filtered:
        problems += filter_problems(capabilities, agg.where)
    return problems


def check_request_allowed(
    capabilities: Capabilities, request: ScanRequest, *, source: str = "planner"
) -> None:
    """Raise :class:`UnsupportedOperation` naming every undeclared part of ``request``."""
    problems = scan_problems(capabilities, request)
    if problems:
        raise UnsupportedOperation(f"table '{request.table}': {'; '.join(problems)}", source=source)


def check_aggregate_allowed(
    capabilities: Capabilities,
    table: str,
    aggregates: Sequence[Aggregate],
    filters: Sequence[Filter] = (),
    *,
    source: str = "planner",
) -> None:
    """Raise :class:`UnsupportedOperation` unless the aggregate call is declared."""
    problems = aggregate_problems(capabilities, aggregates, filters)
    if problems:
        raise UnsupportedOperation(f"table '{table}': {'; '.join(problems)}", source=source)
