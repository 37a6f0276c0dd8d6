"""The access policy applied to the GraphQL schema.

:func:`govern` wraps, once, the resolvers of ``Customer``, of its related
entity types and of the ``customer``/``customers`` root fields, so every
answer passes the caller's :class:`~resolvers.policy.Grant` (in the context
under ``"grant"``): denied fields raise ``FORBIDDEN_FIELD`` (null plus an
error), masked fields are masked, filters and sorting on fields the caller
may not read are refused, and the row rules become a filter the planner
pushes down to the sources. The wrappers also note which customers and
which fields were read (never the values) in the request's
:class:`ReadTrail`, for the audit log.

A request without a grant is refused: governance fails closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from inspect import isawaitable
from typing import Any
from weakref import WeakKeyDictionary

import strawberry
from graphql import GraphQLObjectType

from connectors import CustviewError, QueryError
from resolvers.model import UnifiedModel
from resolvers.policy import AccessDenied, ForbiddenField, Grant, RowRule, mask

Resolve = Callable[..., Any]


@dataclass(slots=True)
class ReadTrail:
    """What one request read of customer data: ids and field names, never values."""

    customers: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    denied: set[str] = field(default_factory=set)
    touched: bool = False
    """Whether the request looked customers up or listed them (then it is audited)."""

    def note(self, customer_id: str | None, name: str, denied: bool = False) -> None:
        (self.denied if denied else self.fields).add(name)
        if customer_id is not None and not denied:
            self.customers.add(customer_id)


def open_trail(context: Any) -> ReadTrail | None:
    """The request's trail when its context is the gateway's (a dict holding a plain
    :class:`ReadTrail`) and its grant is a plain full :class:`Grant`: then each
    governed Customer field of :meth:`Governor.customer_field` notes its label and
    the customer's id in the trail, checks its page size (:func:`check_first`) and
    answers its resolver's value as it is; else None."""
    if type(context) is not dict:
        return None
    grant, trail = context.get("grant"), context.get("trail")
    if grant.__class__ is Grant and grant.full and trail.__class__ is ReadTrail:
        return trail
    return None


def _mapping(context: Any) -> bool:
    return type(context) is dict or isinstance(context, Mapping)  # the ABC check is slow


def grant_of(info: Any) -> Grant:
    return _grant(info.context)


def _grant(context: Any) -> Grant:
    grant = context.get("grant") if _mapping(context) else None
    if not isinstance(grant, Grant):
        raise AccessDenied("this request carries no access grant; it is refused")
    return grant


def _trail(info: Any) -> ReadTrail | None:
    return _trail_in(info.context)


def _trail_in(context: Any) -> ReadTrail | None:
    trail = context.get("trail")
    return trail if isinstance(trail, ReadTrail) else None


def _access(info: Any) -> tuple[Grant, ReadTrail | None]:
    """:func:`grant_of` and :func:`_trail` with one look at the context: every
    governed Customer field asks both (a customer 360 a dozen times)."""
    context = info.context
    return _grant(context), _trail_in(context)


def check_first(info: Any, kwargs: Mapping[str, Any]) -> None:
    """The page-size limit for ``first`` given through a variable (literals are
    refused before execution)."""
    _refuse("", "allow", info, kwargs)


def _refuse(label: str, action: str, info: Any, kwargs: Mapping[str, Any]) -> None:
    """What field ``label`` fails with before it reads anything: denied to the
    caller (``action``), or a page size over the limit (:func:`check_first`)."""
    if action == "deny":
        raise ForbiddenField(f"your role may not read {label}")
    limit = info.context.get("max_page_size") if _mapping(info.context) else None
    first = kwargs.get("first")
    if limit is not None and isinstance(first, int) and first > limit:
        raise QueryError(f"'first' may be at most {limit}")


def _touch(info: Any) -> None:
    trail = _trail(info)
    if trail is not None:
        trail.touched = True


async def _then(result: Awaitable[Any], post: Callable[[Any], Any]) -> Any:
    return post(await result)


def _apply(result: Any, post: Callable[[Any], Any]) -> Any:
    return _then(result, post) if isawaitable(result) else post(result)


class Governor:
    """The policy wrappers of one schema's resolvers (:func:`govern`), and the checks
    they make, for executors that resolve its fields without graphql-core."""

    def __init__(self, model: UnifiedModel) -> None:
        self.model = model
        self.entity_of = {name: rel.entity for name, rel in model.relations.items()}
        self.columns = {m.id: _column_fields(model, m.id) for m in model.customer.members}
        self.by_table = {(m.source, m.table): m.id for m in model.customer.members}
        from resolvers.segments import compile_segments

        self.segment_reads = {n: _reads(e) for n, e in compile_segments(model).items()}
        """Segment -> the Customer fields and entity fields its filter reads."""

    def _may_use_segment(self, grant: Grant, name: str) -> bool:
        """A segment's membership reveals what its filter reads: every one must be allowed."""
        customer, entity = self.segment_reads.get(name, (set(), set()))
        return all(grant.action(f) == "allow" for f in customer) and all(
            grant.entity_action(self.entity_of[r], f) == "allow" for r, f in entity
        )

    # -- Customer fields --------------------------------------------------

    def customer_field(self, name: str, resolve: Resolve) -> Resolve:
        post = {
            "sourceRecords": self._source_records,
            "provenance": self._provenance,
            "timeline": self._timeline,
            "segments": self._segments,
            "quality": self._quality,
        }.get(name)

        label = f"Customer.{name}"

        def resolver(root: Any, info: Any, **kwargs: Any) -> Any:
            # :func:`_access`, ``grant.action`` and ``trail.note`` written out for the
            # context the gateway gives (a dict holding a Grant and a ReadTrail): every
            # governed field of every customer passes here (a customer 360 ten times)
            context = info.context
            if type(context) is dict:
                grant = context.get("grant")
                if grant.__class__ is not Grant:
                    grant = _grant(context)  # a subclass passes; anything else is refused
                trail = context.get("trail")
            else:
                grant, trail = _access(info)
            # a full Grant allows every field; a subclass is asked (it may say otherwise)
            action = "allow" if grant.full and grant.__class__ is Grant else grant.action(name)
            if trail.__class__ is not ReadTrail:
                trail = _trail_in(context) if type(context) is dict else trail
                if trail is not None:  # a subclass, or the context's trail
                    trail.note(getattr(root, "id", None), label, action == "deny")
            else:
                if action == "deny":
                    trail.denied.add(label)
                else:
                    trail.fields.add(label)
                    customer_id = getattr(root, "id", None)
                    if customer_id is not None:
                        trail.customers.add(customer_id)
            if action == "deny" or kwargs:
                _refuse(label, action, info, kwargs)
            result = resolve(root, info, **kwargs)
            if grant.full or (post is None and action == "allow"):
                return result
            if post is not None:
                return _apply(result, lambda value: post(grant, value))
            return _apply(result, lambda value: mask(value, action, grant.salt))

        # what the wrapper does for a full grant, for an executor that notes the
        # read itself (:func:`open_trail`): the field's label and resolver
        resolver.label = label  # type: ignore[attr-defined]
        resolver.ungoverned = resolve  # type: ignore[attr-defined]
        return resolver

    def refuses(self, name: str, info: Any, kwargs: Mapping[str, Any]) -> bool:
        """Whether Customer field ``name`` with arguments ``kwargs`` fails before it
        reads anything (no grant, denied, a page size over the limit): the checks
        of :meth:`customer_field`'s resolver, for a caller that reads ahead for the
        field (the fast path's prefetch), without noting a read in the trail."""
        try:
            _refuse(f"Customer.{name}", grant_of(info).action(name), info, kwargs)
        except CustviewError:
            return True
        return False

    def _source_records(self, grant: Grant, records: list[Any]) -> list[Any]:
        governed = []
        for record in records:
            fields = self.columns[self.by_table[(record.source, record.table)]]
            data = {}
            for column, value in record.data.items():
                action = _strictest(grant.action(f) for f in fields.get(column, ()))
                if column == "id" or (action != "deny" and column in fields):
                    data[column] = value if column == "id" else mask(value, action, grant.salt)
            governed.append(replace(record, data=data))
        return governed

    def _segments(self, grant: Grant, names: list[str]) -> list[str]:
        return [n for n in names if self._may_use_segment(grant, n)]

    def _provenance(self, grant: Grant, entries: list[Any]) -> list[Any]:
        governed = []
        for entry in entries:
            action = grant.action(entry.field)
            if action == "deny":
                continue
            alternatives = [
                {**alt, "value": mask(alt["value"], action, grant.salt)}
                for alt in entry.alternatives
            ]
            value = mask(entry.value, action, grant.salt)
            governed.append(replace(entry, value=value, alternatives=alternatives))
        return governed

    def _quality(self, grant: Grant, found: Any) -> Any:
        """Findings follow their field's rule (STALE ones, ``updatedAt``'s): denied
        fields' findings vanish, masked fields' values are masked."""

        def shown(issue: Any) -> Any:
            action = grant.action(issue.field or "updatedAt")
            if action == "deny":
                return None
            return replace(issue, value=mask(issue.value, action, grant.salt))

        def kept(issues: list[Any]) -> list[Any]:
            return [i for i in map(shown, issues) if i is not None]

        clear = grant.action("updatedAt") == "allow"
        return replace(
            found,
            fields=[
                replace(f, issues=kept(f.issues))
                for f in found.fields
                if grant.action(f.field) != "deny"
            ],
            records=[r if clear else replace(r, updated_at=None) for r in found.records],
            issues=kept(found.issues),
        )

    def _timeline(self, grant: Grant, page: Any) -> Any:
        nodes = []
        for event in page.nodes:
            spec = self.model.timeline[event.kind]
            rel = self.model.relations[spec.relation]
            if grant.action(spec.relation) == "deny":
                continue
            by_column = {f.column: name for name, f in rel.fields.items()}
            title, detail = (by_column.get(c or "") for c in (spec.title, spec.detail))
            nodes.append(
                replace(
                    event,
                    title=title and grant.masked_entity(rel.entity, title, event.title),
                    detail=detail and grant.masked_entity(rel.entity, detail, event.detail),
                )
            )
        return replace(page, nodes=nodes)

    # -- related entities ---------------------------------------------------

    def entity_field(self, entity: str, name: str, resolve: Resolve) -> Resolve:
        def resolver(root: Any, info: Any, **kwargs: Any) -> Any:
            grant = grant_of(info)
            if name == "source" or grant.full:
                return resolve(root, info, **kwargs)
            action = grant.entity_action(entity, name)
            trail = _trail(info)
            if trail is not None:
                trail.note(None, f"{entity}.{name}", action == "deny")
            if action == "deny":
                raise ForbiddenField(f"your role may not read {entity}.{name}")
            return _apply(resolve(root, info, **kwargs), lambda v: mask(v, action, grant.salt))

        return resolver

    # -- customer lists ---------------------------------------------------------

    def listed(self, resolve: Resolve, edges: bool) -> Resolve:
        """``nodes``/``edges`` of a customer connection: whatever produced the page
        (``customers``, a segment), customers outside the row rules are dropped."""

        def resolver(root: Any, info: Any, **kwargs: Any) -> Any:
            grant = grant_of(info)
            _touch(info)
            found = resolve(root, info, **kwargs)
            if grant.rows is None:
                return found
            return [
                item for item in found if grant.admits((item[1] if edges else item).golden.values)
            ]

        return resolver

    def group_members(self, resolve: Resolve, count: bool) -> Resolve:
        """``members``/``memberCount`` of a business or household: customers outside
        the row rules are neither listed nor counted."""

        def resolver(root: Any, info: Any, **kwargs: Any) -> Any:
            grant = grant_of(info)
            _touch(info)
            if grant.rows is None:
                return resolve(root, info, **kwargs)
            from resolvers.group_types import all_members

            def admitted(members: list[Any]) -> Any:
                kept = [m for m in members if grant.admits(m.golden.values)]
                return len(kept) if count else kept[: kwargs.get("first", len(kept))]

            return _apply(all_members(root, info), admitted)

        return resolver

    def segment_field(self, name: str, resolve: Resolve) -> Resolve:
        def resolver(root: Any, info: Any, **kwargs: Any) -> Any:
            grant = grant_of(info)
            if name in ("count", "customers"):
                _touch(info)
                if not grant.full and not self._may_use_segment(grant, root.name):
                    raise ForbiddenField(
                        f"segment '{root.name}' filters on fields your role may not read in clear"
                    )
            if name == "count" and grant.rows is not None:
                return self._count_within(grant, root.name, info)
            if name == "customers":
                check_first(info, kwargs)
                for order in kwargs.get("orderBy") or ():
                    field_name = getattr(order["field"], "value", order["field"])
                    if grant.action(field_name) != "allow":
                        raise ForbiddenField(f"your role may not sort by Customer.{field_name}")
            return resolve(root, info, **kwargs)

        return resolver

    async def _count_within(self, grant: Grant, segment: str, info: Any) -> int:
        from resolvers.expr import And, Cond, Expr, FieldPred, Or
        from resolvers.planner import Planner

        assert grant.rows is not None
        alternatives: list[Expr] = [
            And(tuple(FieldPred(r.field, (Cond("in", sorted(r.values)),)) for r in rules))
            for rules in grant.rows
            if all(r.values for r in rules)
        ]
        if not alternatives:
            return 0
        view = info.context["view"]
        return await Planner(view).count(And((view.segment(segment), Or(tuple(alternatives)))))

    # -- root fields ----------------------------------------------------------

    def one_customer(self, resolve: Resolve) -> Resolve:
        lookups = {"email": "email", "phone": "phone"}
        normalized: dict[str, str] = {
            spec.normalize: name
            for name, spec in self.model.customer.fields.items()
            if spec.normalize in lookups
        }

        async def resolver(root: Any, info: Any, **kwargs: Any) -> Any:
            grant = grant_of(info)
            _touch(info)
            for argument in lookups:
                golden = normalized.get(argument)
                if kwargs.get(argument) is not None and golden and grant.action(golden) == "deny":
                    raise ForbiddenField(f"your role may not look customers up by {argument}")
            result = resolve(root, info, **kwargs)
            found = await result if isawaitable(result) else result
            if (
                found is not None
                and grant.rows is not None
                and not grant.admits(found.golden.values)
            ):
                return None
            return found

        return resolver

    def many_customers(self, resolve: Resolve) -> Resolve:
        def resolver(root: Any, info: Any, **kwargs: Any) -> Any:
            grant = grant_of(info)
            _touch(info)
            check_first(info, kwargs)
            if grant.full:
                return resolve(root, info, **kwargs)
            self._check_filter(grant, kwargs.get("filter"))
            for order in kwargs.get("orderBy") or ():
                name = getattr(order["field"], "value", order["field"])
                if grant.action(name) != "allow":
                    raise ForbiddenField(f"your role may not sort by Customer.{name}")
            if grant.rows is not None:
                rows = _row_filter(grant.rows)
                if rows is None:
                    from resolvers.view import Page

                    return Page([], False, None)
                given = kwargs.get("filter")
                kwargs["filter"] = rows if given is None else {"and": [given, rows]}
            return resolve(root, info, **kwargs)

        return resolver

    def _check_filter(self, grant: Grant, value: Mapping[str, Any] | None) -> None:
        for key, given in (value or {}).items():
            if given is None:
                continue
            if key == "segment":
                if not self._may_use_segment(grant, given):
                    raise ForbiddenField(
                        f"segment '{given}' filters on fields your role may not read in clear"
                    )
            elif key in ("and", "or"):
                for item in given:
                    self._check_filter(grant, item)
            elif key == "not":
                self._check_filter(grant, given)
            elif key in self.entity_of:
                entity = self.entity_of[key]
                for name, cond in given.items():
                    if cond is not None and grant.entity_action(entity, name) != "allow":
                        raise ForbiddenField(f"your role may not filter by {entity}.{name}")
            elif grant.action(key) != "allow":
                raise ForbiddenField(f"your role may not filter by Customer.{key}")


def _strictest(actions: Any) -> str:
    found = list(actions)
    if not found:
        return "deny"
    order = ["allow", "mask:name", "mask:email", "mask:phone", "mask:hash", "deny"]
    return str(max(found, key=order.index))


def _column_fields(model: UnifiedModel, member_id: str) -> dict[str, set[str]]:
    """Source column -> the golden fields that show it (identity columns count for
    the golden fields normalised the same way, e.g. ``mobile`` for ``phone``)."""
    from resolvers.model import template_columns

    member = next(m for m in model.customer.members if m.id == member_id)
    found: dict[str, set[str]] = {}
    for name, mapping in member.fields.items():
        for column in template_columns(mapping):
            found.setdefault(column, set()).add(name)
    for key, columns in member.identity.items():
        normalize = model.identity.keys[key].normalize
        shown = {n for n, f in model.customer.fields.items() if f.normalize == normalize}
        for column in columns:
            found.setdefault(column, set()).update(shown or {key})
    return found


def _reads(expr: Any) -> tuple[set[str], set[tuple[str, str]]]:
    """The Customer fields and (entity, field) pairs a filter expression reads."""
    from resolvers.expr import And, FieldPred, Not, Or, RelationPred

    customer: set[str] = set()
    entity: set[tuple[str, str]] = set()
    stack = [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, FieldPred):
            customer.add(item.field)
        elif isinstance(item, RelationPred):
            customer.add(item.relation)
            entity |= {(item.relation, f) for f, _ in item.where}
        elif isinstance(item, And | Or):
            stack.extend(item.items)
        elif isinstance(item, Not):
            stack.append(item.item)
    return customer, entity


def _row_filter(rows: tuple[tuple[RowRule, ...], ...]) -> dict[str, Any] | None:
    """The row rules as a ``CustomerFilter`` argument; None when they admit nobody."""
    alternatives = []
    for rules in rows:
        if any(not rule.values for rule in rules):
            continue
        parts = [{rule.field: {"in": sorted(rule.values)}} for rule in rules]
        alternatives.append(parts[0] if len(parts) == 1 else {"and": parts})
    if not alternatives:
        return None
    return alternatives[0] if len(alternatives) == 1 else {"or": alternatives}


_GOVERNORS: WeakKeyDictionary[strawberry.Schema, Governor] = WeakKeyDictionary()


def governor_of(schema: strawberry.Schema) -> Governor | None:
    """The policy wrappers :func:`govern` put on ``schema`` (None when ungoverned),
    for executors that resolve its fields without graphql-core."""
    return _GOVERNORS.get(schema)


def govern(schema: strawberry.Schema, model: UnifiedModel) -> strawberry.Schema:
    """Put the policy in front of every resolver that reads customer data, and the
    audit trail around every operation (first, so it sees the final errors)."""
    from resolvers.audit_extension import AuditExtension

    schema.extensions = (AuditExtension, *schema.extensions)
    governor = _GOVERNORS[schema] = Governor(model)
    types = schema._schema.type_map
    customer = types["Customer"]
    assert isinstance(customer, GraphQLObjectType)
    for name, graphql_field in customer.fields.items():
        assert graphql_field.resolve is not None
        graphql_field.resolve = governor.customer_field(name, graphql_field.resolve)
    for rel in model.relations.values():
        entity = types[rel.entity]
        assert isinstance(entity, GraphQLObjectType)
        for name, graphql_field in entity.fields.items():
            assert graphql_field.resolve is not None
            graphql_field.resolve = governor.entity_field(rel.entity, name, graphql_field.resolve)
    connection = types["CustomerConnection"]
    assert isinstance(connection, GraphQLObjectType)
    for name in ("nodes", "edges"):
        graphql_field = connection.fields[name]
        assert graphql_field.resolve is not None
        graphql_field.resolve = governor.listed(graphql_field.resolve, name == "edges")
    segment = types.get("Segment")
    if isinstance(segment, GraphQLObjectType):
        for name, graphql_field in segment.fields.items():
            if graphql_field.resolve is not None:
                graphql_field.resolve = governor.segment_field(name, graphql_field.resolve)
    for group in ("Business", "Household"):
        found = types.get(group)
        if isinstance(found, GraphQLObjectType):
            for name in ("members", "memberCount"):
                graphql_field = found.fields[name]
                assert graphql_field.resolve is not None
                graphql_field.resolve = governor.group_members(
                    graphql_field.resolve, count=name == "memberCount"
                )
    query = schema._schema.query_type
    assert query is not None
    one, many = query.fields["customer"], query.fields["customers"]
    assert one.resolve is not None and many.resolve is not None
    one.resolve = governor.one_customer(one.resolve)
    many.resolve = governor.many_customers(many.resolve)
    return schema


def check_expr(grant: Grant, model: UnifiedModel, expr: Any, order: Any = ()) -> None:
    """Refuse a parsed filter (segments included) or an order that reads a field
    ``grant`` does not show in clear — for paths that take filters outside GraphQL
    (exports), with the same rule as ``customers(filter:, orderBy:)``."""
    if grant.full:
        return
    customer, entity = _reads(expr) if expr is not None else (set(), set())
    customer |= {o.field for o in order}
    for name in sorted(customer):
        if grant.action(name) != "allow":
            raise ForbiddenField(f"your role may not filter or sort by Customer.{name}")
    for relation, name in sorted(entity):
        type_name = model.relations[relation].entity
        if grant.entity_action(type_name, name) != "allow":
            raise ForbiddenField(f"your role may not filter by {type_name}.{name}")
