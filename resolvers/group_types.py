"""GraphQL types of businesses and households, and the fields that reach them.

``Customer.business``, ``Customer.household``, and the root fields
``business(id)``, ``household(id)`` and ``businesses(first, after)`` exist
when the model configures ``business`` / ``household``. Business and
Household list their members as ``Customer``s; that type is generated from
the model after these, so it is named through ``namespace``, filled in by
the schema builder once ``Customer`` exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry
from strawberry.types import Info

from connectors import QueryError
from resolvers.groups import Business, Household
from resolvers.model import UnifiedModel
from resolvers.view import CustomerView, RequestView

MAX_FIRST = 500


def _view(info: Info[Any, Any]) -> RequestView:
    view: RequestView = info.context["view"]
    return view


def _first(first: int) -> int:
    if first < 0 or first > MAX_FIRST:
        raise QueryError(f"'first' must be between 0 and {MAX_FIRST}")
    return first


@dataclass(slots=True)
class BusinessNode:
    business: Business
    _members: list[CustomerView] | None = field(default=None)

    async def members(self, view: RequestView) -> list[CustomerView]:
        if self._members is None:
            clusters = await view.groups().business_members(self.business)
            self._members = [view.customer_of(c) for c in clusters]
        return self._members


@strawberry.type(description="A row of an account table that stands for this business.")
class BusinessAccount:
    ref: str = strawberry.field(description="source/table/id of the account row")
    source: str
    table: str
    id: strawberry.ID
    name: str | None
    domain: str | None


def _accounts(root: BusinessNode) -> list[BusinessAccount]:
    return [
        BusinessAccount(
            ref=str(a.ref),
            source=a.spec.source,
            table=a.spec.table,
            id=strawberry.ID(a.ref.key),
            name=_text(a.row.get(a.spec.name)) if a.spec.name else None,
            domain=_text(a.row.get(a.spec.domain)) if a.spec.domain else None,
        )
        for a in root.business.accounts
    ]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


async def _business_id(root: BusinessNode, info: Info[Any, Any]) -> strawberry.ID:
    business = root.business
    if not business.accounts:
        await root.members(_view(info))  # the canonical member names a business without accounts
    return strawberry.ID(await _view(info).groups().business_id(business))


async def _business_members(
    root: BusinessNode, info: Info[Any, Any], first: int = 20
) -> list[CustomerView]:
    return (await root.members(_view(info)))[: _first(first)]


async def _business_member_count(root: BusinessNode, info: Info[Any, Any]) -> int:
    return len(await root.members(_view(info)))


async def all_members(root: BusinessNode | Household, info: Info[Any, Any]) -> list[CustomerView]:
    """Every member of a business or household, as customers (for the row rules)."""
    if isinstance(root, BusinessNode):
        return await root.members(_view(info))
    view = _view(info)
    return [view.customer_of(c) for c in root.customers]


def _household_members(root: Household, info: Info[Any, Any], first: int = 20) -> list[Any]:
    view = _view(info)
    return [view.customer_of(c) for c in root.customers[: _first(first)]]


def resolve_lazy(namespace: dict[str, Any], *types: type) -> None:
    """Point the ``members`` fields of ``types`` at ``namespace["Customer"]``, which
    did not exist when they were declared (with a placeholder type)."""
    customer = namespace["Customer"]
    for kind in types:
        for field_ in kind.__strawberry_definition__.fields:  # type: ignore[attr-defined]
            if field_.python_name == "members":
                field_.type = list[customer]  # type: ignore[valid-type]


def group_types(namespace: dict[str, Any], page_info: type) -> tuple[type, type, type]:
    """``Business``, ``Household`` and ``BusinessConnection``; ``namespace["Customer"]``
    must hold the Customer type before the schema is built."""
    business = strawberry.type(
        type(
            "Business",
            (),
            {
                "id": strawberry.field(
                    resolver=_business_id,
                    description="Stable, opaque: the canonical account record (or, without "
                    "accounts, the canonical member and a hash of the domain)",
                ),
                "name": strawberry.field(
                    resolver=lambda root: root.business.name(), graphql_type=str | None
                ),
                "domains": strawberry.field(
                    resolver=lambda root: sorted(root.business.domains), graphql_type=list[str]
                ),
                "accounts": strawberry.field(
                    resolver=_accounts,
                    graphql_type=list[BusinessAccount],
                    description="CRM accounts, support organizations, ... of this business",
                ),
                "members": strawberry.field(
                    resolver=_business_members,
                    graphql_type=list[str],  # list[Customer], set by resolve_lazy
                    description="Customers working for this business, in canonical order",
                ),
                "member_count": strawberry.field(
                    resolver=_business_member_count, graphql_type=int, name="memberCount"
                ),
            },
        ),
        description="A business account: customers grouped by the company they work for.",
    )
    household = strawberry.type(
        type(
            "Household",
            (),
            {
                "id": strawberry.field(
                    resolver=lambda root: strawberry.ID(root.id),
                    graphql_type=strawberry.ID,
                    description="Stable, opaque: the canonical member record and a hash of "
                    "the normalised address and surname",
                ),
                "members": strawberry.field(
                    resolver=_household_members,
                    graphql_type=list[str],  # list[Customer], set by resolve_lazy
                    description="Customers living at this address with this surname",
                ),
                "member_count": strawberry.field(
                    resolver=lambda root: len(root.customers), graphql_type=int, name="memberCount"
                ),
            },
        ),
        description="Customers sharing a normalised address and surname.",
    )
    connection = _connection(business, page_info)
    return business, household, connection


@dataclass(slots=True)
class _Page:
    items: list[tuple[str, BusinessNode]]
    has_next: bool
    end_cursor: str | None


def _connection(business: type, page_info: type) -> type:
    edge = strawberry.type(
        type(
            "BusinessEdge",
            (),
            {
                "cursor": strawberry.field(resolver=lambda root: root[0], graphql_type=str),
                "node": strawberry.field(resolver=lambda root: root[1], graphql_type=business),
            },
        )
    )
    return strawberry.type(
        type(
            "BusinessConnection",
            (),
            {
                "edges": strawberry.field(
                    resolver=lambda root: root.items,
                    graphql_type=list[edge],  # type: ignore[valid-type]
                ),
                "nodes": strawberry.field(
                    resolver=lambda root: [b for _, b in root.items],
                    graphql_type=list[business],  # type: ignore[valid-type]
                ),
                "page_info": strawberry.field(
                    resolver=lambda root: page_info(
                        has_next_page=root.has_next, end_cursor=root.end_cursor
                    ),
                    graphql_type=page_info,
                    name="pageInfo",
                ),
            },
        )
    )


async def _customer_business(root: CustomerView, info: Info[Any, Any]) -> BusinessNode | None:
    business = await _view(info).groups().business_of(root.records)
    return BusinessNode(business) if business is not None else None


async def _customer_household(root: CustomerView, info: Info[Any, Any]) -> Household | None:
    return await _view(info).groups().household_of(root.records)


def customer_fields(model: UnifiedModel, business: type, household: type) -> dict[str, Any]:
    """``business`` and ``household`` fields of Customer, as configured."""
    fields: dict[str, Any] = {}
    if model.business is not None:
        fields["business"] = strawberry.field(
            resolver=_customer_business,
            graphql_type=business | None,
            description="The business account this customer works for, if any.",
        )
    if model.household is not None:
        fields["household"] = strawberry.field(
            resolver=_customer_household,
            graphql_type=household | None,
            description="The customers sharing this customer's address and surname, if any.",
        )
    return fields


def query_fields(
    model: UnifiedModel, business: type, household: type, connection: type
) -> dict[str, Any]:
    """Root fields ``business(id)``, ``businesses(first, after)`` and ``household(id)``."""

    async def business_field(info: Info[Any, Any], id: strawberry.ID) -> BusinessNode | None:
        found = await _view(info).groups().business_by_id(str(id))
        return BusinessNode(found) if found is not None else None

    async def businesses_field(
        info: Info[Any, Any], first: int = 20, after: str | None = None
    ) -> _Page:
        items, has_next = await _view(info).groups().businesses_page(_first(first), after)
        nodes = [(cursor, BusinessNode(b)) for cursor, b in items]
        return _Page(nodes, has_next, nodes[-1][0] if nodes else after)

    async def household_field(info: Info[Any, Any], id: strawberry.ID) -> Household | None:
        return await _view(info).groups().household_by_id(str(id))

    fields: dict[str, Any] = {}
    if model.business is not None:
        fields["business"] = strawberry.field(
            resolver=business_field,
            graphql_type=business | None,
            description="One business by id.",
        )
        fields["businesses"] = strawberry.field(
            resolver=businesses_field,
            graphql_type=connection,
            description="Businesses with account rows, each once, by canonical account, "
            "keyset-paginated.",
        )
    if model.household is not None:
        fields["household"] = strawberry.field(
            resolver=household_field,
            graphql_type=household | None,
            description="One household by id.",
        )
    return fields
