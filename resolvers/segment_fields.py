"""GraphQL fields for segments: ``segments``, ``segment(name)`` and ``Customer.segments``.

A segment is a named filter (:mod:`resolvers.segments`); its members are
found by the same planner as ``customers(filter:)``, and membership of one
customer is the filter evaluated on it, batched with the other customers
of the response through the request's loaders.
"""

from __future__ import annotations

import asyncio
from typing import Any

import strawberry
from strawberry.types import Info

from connectors import QueryError
from resolvers.model import UnifiedModel
from resolvers.planner import Planner
from resolvers.view import CustomerView, RequestView


def _view(info: Info[Any, Any]) -> RequestView:
    view: RequestView = info.context["view"]
    return view


def segment_type(connection: Any, order: Any, parse_order: Any) -> type:
    """The ``Segment`` type, whose ``customers`` is a page of the customer connection."""

    async def count(root: Any, info: Info[Any, Any]) -> int:
        return await Planner(_view(info)).count(_view(info).segment(root.name))

    async def customers(
        root: Any,
        info: Info[Any, Any],
        first: int = 20,
        after: str | None = None,
        order_by: Any = None,
    ) -> Any:
        if first > 500:
            raise QueryError("'first' may be at most 500")
        view = _view(info)
        return await Planner(view).search(
            view.segment(root.name), parse_order(order_by), first, after
        )

    customers.__annotations__["order_by"] = list[order] | None
    namespace: dict[str, Any] = {
        "__annotations__": {"name": str, "description": str, "purpose": str | None},
        "count": strawberry.field(
            resolver=count, description="How many customers are in the segment now."
        ),
        "customers": strawberry.field(
            resolver=customers,
            graphql_type=connection,
            description="The segment's customers, cursor-paginated, in orderBy order.",
        ),
    }
    return strawberry.type(
        type("Segment", (), namespace),
        description="A named customer filter from the configuration, evaluated live.",
    )


def root_fields(model: UnifiedModel, segment: type) -> dict[str, Any]:
    """``segments`` and ``segment(name)`` for the Query type."""

    def build(name: str) -> Any:
        spec = model.segments[name]
        return segment(name=name, description=spec.description, purpose=spec.purpose)

    def segments() -> list[Any]:
        return [build(name) for name in model.segments]

    def one(name: str) -> Any:
        if name not in model.segments:
            known = ", ".join(model.segments) or "none configured"
            raise QueryError(f"no segment named '{name}' (known: {known})")
        return build(name)

    return {
        "segments": strawberry.field(
            resolver=segments,
            graphql_type=list[segment],  # type: ignore[valid-type]
            description="Every configured segment.",
        ),
        "segment": strawberry.field(
            resolver=one, graphql_type=segment | None, description="One segment by name."
        ),
    }


async def customer_segments(root: CustomerView, info: Info[Any, Any]) -> list[str]:
    """Names of the segments the customer is in, in configuration order."""
    view = _view(info)
    planner = Planner(view)
    names = list(view.model.segments)
    inside = await asyncio.gather(*(planner.holds(view.segment(n), root) for n in names))
    return [n for n, ok in zip(names, inside, strict=True) if ok]


def customer_field() -> Any:
    return strawberry.field(
        resolver=customer_segments,
        # nullable: a failing source nulls this field, not the whole customer
        graphql_type=list[str] | None,
        name="segments",
        description="Names of the segments this customer is in now (see segment(name)); "
        "null when a source it needs failed.",
    )
