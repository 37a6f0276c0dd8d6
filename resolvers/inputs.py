"""GraphQL input types for filtering and ordering customers, generated from
the configured model, and their translation to :mod:`resolvers.expr`."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import strawberry

from connectors import QueryError
from resolvers.expr import And, Cond, Expr, FieldPred, Not, Or, Order, RelationPred
from resolvers.model import FieldType, RelationSpec, UnifiedModel

_OPS = {
    "eq": "eq", "ne": "ne", "in_": "in", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge",
    "contains": "contains", "starts_with": "startswith", "is_null": "is_null",
}  # fmt: skip


def _scalar_filter(name: str, scalar: Any, ordered: bool, text: bool) -> type:
    annotations: dict[str, Any] = {"eq": scalar | None, "ne": scalar | None}
    namespace: dict[str, Any] = {
        "eq": None,
        "ne": None,
        "in_": strawberry.field(name="in", default=None, graphql_type=list[scalar] | None),
        "is_null": strawberry.field(default=None, graphql_type=bool | None),
    }
    if ordered:
        for op in ("lt", "le", "gt", "ge"):
            annotations[op] = scalar | None
            namespace[op] = None
    if text:
        annotations["contains"] = str | None
        annotations["starts_with"] = str | None
        namespace["contains"] = None
        namespace["starts_with"] = None
    namespace["__annotations__"] = annotations
    return strawberry.input(type(name, (), namespace), description=f"Conditions on a {name[:-6]}.")


FILTERS: dict[FieldType, type] = {
    "string": _scalar_filter("StringFilter", str, ordered=True, text=True),
    "id": _scalar_filter("IDFilter", strawberry.ID, ordered=False, text=False),
    "int": _scalar_filter("IntFilter", int, ordered=True, text=False),
    "float": _scalar_filter("FloatFilter", float, ordered=True, text=False),
    "decimal": _scalar_filter("DecimalFilter", Decimal, ordered=True, text=False),
    "bool": _scalar_filter("BooleanFilter", bool, ordered=False, text=False),
    "date": _scalar_filter("DateFilter", dt.date, ordered=True, text=False),
    "datetime": _scalar_filter("DateTimeFilter", dt.datetime, ordered=True, text=False),
}


@strawberry.enum
class SortDirection(enum.Enum):
    ASC = "asc"
    DESC = "desc"


def conds(value: Any) -> tuple[Cond, ...]:
    """The conditions set on a scalar filter input."""
    found = []
    for attr, op in _OPS.items():
        given = getattr(value, attr, None)
        if given is not None:
            found.append(Cond(op, list(given) if op == "in" else given))  # type: ignore[arg-type]
    return tuple(found)


def _where_type(rel: RelationSpec) -> type:
    namespace: dict[str, Any] = {"__annotations__": {}}
    for fname, spec in rel.fields.items():
        namespace[fname] = strawberry.field(
            default=None, graphql_type=FILTERS[spec.type] | None, name=fname
        )
    return strawberry.input(
        type(f"{rel.entity}Where", (), namespace),
        description=f"The customer has at least one {rel.entity} matching all of these.",
    )


class _Parser:
    """Turns filter and order inputs of one model into :mod:`resolvers.expr` values."""

    def __init__(self, model: UnifiedModel, segments: Mapping[str, Expr] | None = None) -> None:
        self.model = model
        self.segments = dict(segments or {})
        self.scalars: dict[str, FieldType] = {n: f.type for n, f in model.customer.fields.items()}
        self.scalars |= {n: m.type for n, m in model.metrics.items()}

    def parse(self, value: Any) -> Expr:
        parts: list[Expr] = []
        for name in self.scalars:
            given = getattr(value, name, None)
            if given is not None:
                parts.append(FieldPred(name, conds(given)))
        for name, rel in self.model.relations.items():
            given = getattr(value, name, None)
            if given is not None:
                where = tuple(
                    (f, c)
                    for f in rel.fields
                    if getattr(given, f, None) is not None
                    for c in conds(getattr(given, f))
                )
                parts.append(RelationPred(name, where))
        if value.segment is not None:
            if value.segment not in self.segments:
                known = ", ".join(self.segments) or "none configured"
                raise QueryError(f"no segment named '{value.segment}' (known: {known})")
            parts.append(self.segments[value.segment])
        if value.and_:
            parts.extend(self.parse(v) for v in value.and_)
        if value.or_:
            parts.append(Or(tuple(self.parse(v) for v in value.or_)))
        if value.not_ is not None:
            parts.append(Not(self.parse(value.not_)))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_order(self, values: list[Any] | None) -> list[Order]:
        return [Order(v.field.value, v.direction == SortDirection.DESC) for v in values or ()]


class CustomerInputs(_Parser):
    """``CustomerFilter``, ``CustomerOrder`` and their parsers for one model."""

    def __init__(self, model: UnifiedModel, segments: Mapping[str, Expr] | None = None) -> None:
        super().__init__(model, segments)
        raw = type("CustomerFilter", (), {})
        namespace: dict[str, Any] = {
            "and_": strawberry.field(name="and", default=None, graphql_type=list[raw] | None),  # type: ignore[valid-type]
            "or_": strawberry.field(name="or", default=None, graphql_type=list[raw] | None),  # type: ignore[valid-type]
            "not_": strawberry.field(name="not", default=None, graphql_type=raw | None),
            "segment": strawberry.field(
                default=None, graphql_type=str | None, description="Member of this segment."
            ),
        }
        for name, type_ in self.scalars.items():
            namespace[name] = strawberry.field(
                default=None, graphql_type=FILTERS[type_] | None, name=name
            )
        for name, rel in model.relations.items():
            namespace[name] = strawberry.field(
                default=None, graphql_type=_where_type(rel) | None, name=name
            )
        for key, value in namespace.items():
            setattr(raw, key, value)
        raw.__annotations__ = {}
        self.filter = strawberry.input(
            raw, description="Conditions on golden fields, metrics and related entities."
        )
        # parse() reads the coerced input value as it is: strawberry's conversion to
        # input objects walks every field of every nested filter type (~0.8 ms a request)
        self.filter.__strawberry_definition__.from_input = _given_filter  # type: ignore[attr-defined]
        fields = enum.Enum("CustomerOrderField", {n: n for n in self.scalars})  # type: ignore[misc]
        self.order_field = strawberry.enum(fields, description="Fields customers can be sorted by.")
        self.order = strawberry.input(
            type(
                "CustomerOrder",
                (),
                {
                    "__annotations__": {},
                    "field": strawberry.field(graphql_type=self.order_field),
                    "direction": strawberry.field(
                        default=SortDirection.ASC, graphql_type=SortDirection
                    ),
                },
            )
        )


_GRAPHQL_NAMES = {
    "in_": "in", "is_null": "isNull", "starts_with": "startsWith",
    "and_": "and", "or_": "or", "not_": "not",
}  # fmt: skip


class _Given:
    """A coerced GraphQL input value (a dict keyed by GraphQL names), read like the
    strawberry input object the schema would have built from it."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return _given(self._values.get(_GRAPHQL_NAMES.get(name, name)))


def _given_filter(cls: type, value: Mapping[str, Any], context: object) -> _Given:
    """A ``CustomerFilter`` argument as :meth:`_Parser.parse` reads it (strawberry's
    ``from_input`` hook): the value graphql-core coerced, scalars already parsed."""
    return _Given(dict(value))


def _given(value: Any) -> Any:
    if isinstance(value, dict):
        return _Given(value)
    if isinstance(value, list):
        return [_given(v) for v in value]
    return value


def _located(what: str, errors: list[tuple[str, list[str | int]]]) -> QueryError:
    first, path = errors[0]
    where = ".".join([what, *(str(p) for p in path)])
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return QueryError(f"{where}: {first}{more}")


def parse_json_filter(
    schema: strawberry.Schema,
    model: UnifiedModel,
    filter: Any,
    order_by: Any,
    segment: str | None = None,
) -> tuple[Expr | None, list[Order]]:
    """A ``customers(filter:, orderBy:)`` pair given as JSON values (exports, the CLI),
    checked against the schema's own input types; errors name the offending path.
    ``segment`` names a configured segment the customers must also be members of."""
    from graphql import (
        GraphQLError,
        GraphQLInputType,
        GraphQLList,
        GraphQLNonNull,
        coerce_input_value,
        validate_input_value,
    )

    from resolvers.segments import compile_segments

    types = schema._schema.type_map
    wanted: list[tuple[str, Any, GraphQLInputType]] = [
        ("filter", filter, types["CustomerFilter"]),  # type: ignore[list-item]
        ("orderBy", order_by, GraphQLList(GraphQLNonNull(types["CustomerOrder"]))),
    ]
    coerced: list[Any] = []
    for what, value, type_ in wanted:
        if value is None:
            coerced.append(None)
            continue
        errors: list[tuple[str, list[str | int]]] = []

        def collect(error: GraphQLError, path: list[str | int], into: list[Any] = errors) -> None:
            into.append((error.message, path))

        validate_input_value(value, type_, collect)
        if errors:
            raise _located(what, errors)
        coerced.append(coerce_input_value(value, type_))
    parsed_filter, parsed_order = coerced
    parser = _Parser(model, compile_segments(model))
    expr = parser.parse(_Given(parsed_filter)) if parsed_filter is not None else None
    if segment is not None:
        member = parser.parse(_Given({"segment": segment}))
        expr = member if expr is None else And((member, expr))
    return expr, parser.parse_order(_given(parsed_order))
