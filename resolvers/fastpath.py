"""The compiled fast path for hot customer queries.

graphql-core executes a query field by field: for every output value it
builds a resolve info, looks the field up, calls strawberry's resolver
wrapper (argument conversion, an ``Info`` object) and dispatches on the
return type — about 5 µs per value, three times what reading the rows
costs. A hot operation asks the same selection again and again, so
:class:`FastPath` compiles each query text once into a tree of selected
fields, each bound to the function that produces its value from the
request view's rows (a golden value, a relation's rows, a record's
attribute) behind the same governance wrappers the schema's resolvers have
(:mod:`resolvers.governance`: deny, mask, row rules, the audit trail), and
at run time walks that tree building the response dicts directly.

It completes values exactly as graphql-core does — non-null checks and
null propagation, errors located at the same path with the same message,
awaitables gathered in the same order — so the answer is the same JSON as
the general path's (a test runs the e2e query corpus through both). The
plan does not depend on the caller: governance is decided per request by
the same wrappers, from the request's grant.

It runs as the innermost ``on_execute`` hook, so audit, source errors,
freshness and explain wrap it as they wrap graphql-core. An operation it
cannot compile — a mutation, fragments, directives, ``__typename``, any
field without a plain mapping (segments, quality, groups, steward
decisions, ...) — or whose variables do not coerce runs on
the general executor; that verdict is cached with the plan.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from inspect import isawaitable
from types import CoroutineType
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLString,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    ValueNode,
    VariableNode,
    get_operation_ast,
    located_error,
)
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    get_argument_values,
    get_variable_values,
)
from graphql.pyutils import Path, Undefined, gather_with_cancel, inspect
from graphql.type.definition import (
    GraphQLLeafType,
    GraphQLResolveInfoHelpers,
    is_required_argument,
)
from graphql.utilities.coerce_input_value import coerce_default_value
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionContext

from resolvers.documents import LRU
from resolvers.governance import (
    Governor,
    ReadTrail,
    check_first,
    governor_of,
    grant_of,
    open_trail,
)
from resolvers.model import UnifiedModel
from resolvers.policy import mask
from resolvers.tasks import gathered

MAX_PLANS = 256

Resolve = Callable[..., Any]
PathKeys = tuple[Any, str | int] | None
"""A response path as a linked tuple (previous, key); built per object, not per value."""


@dataclass(slots=True)
class Selected:
    """One selected field of a compiled operation."""

    key: str
    name: str
    nodes: list[FieldNode]
    type: GraphQLOutputType
    parent: str
    resolve: Resolve
    field: GraphQLField
    has_args: bool
    children: list[Selected] | None
    root: bool = False
    lean: bool = False
    """A root field resolved without strawberry's resolver wrapper (:attr:`FastPath._roots`):
    it reads only the context of its info."""
    leaf: GraphQLLeafType | None = None
    """The scalar or enum type of a field that is one (nullable or not), else None."""
    non_null: bool = False
    items: tuple[Item, ...] | None = None
    """For a relation whose selected fields are all leaves read from its rows'
    dicts (or a plain object's, from its attributes: :attr:`attributes`): each
    one's (response key, dict key or attribute, leaf type, non-null, field
    name), so that :meth:`_Run.complete` builds a row's answer in one go."""
    entity: str = ""
    attributes: bool = False
    """``items`` name attributes of plain objects (a source record, a field's
    provenance: no policy wrapper of their own), not keys of a relation row."""
    flat: bool = False
    """Objects not built in one go (:attr:`items`): when it is a list of them whose
    awaitable fields are all nullable (none is in :attr:`strict`), none of those
    can fail its object (an error nulls only its own field), so
    :meth:`_Run._list` awaits every item's in one gather instead of a task and a
    gather per item (a page of 50 customers: 50 tasks and 50 gathers fewer)."""
    strict: frozenset[str] = frozenset()
    """Response keys of the non-null fields among :attr:`children`."""
    label: str = ""
    ungoverned: Resolve | None = None
    """A governed Customer field's resolver without its policy wrapper, and the
    wrapper's label (``Customer.name``): with a full grant (:func:`open_trail`),
    :meth:`_Run._start` notes the read in the trail itself and calls this."""
    prefetch: tuple[str, ...] = ()
    """For a list of customers: the relations among :attr:`children`, whose rows
    :meth:`_Run._list` reads for every customer of the list at once before their
    fields start (the statement the relation's batch would send), so that no
    customer's relation field has to wait a loop turn, in a task of its own, for it.
    Empty when another of the children reads a source (see :meth:`FastPath._prefetch`)."""


Item = tuple[str, str, GraphQLLeafType, bool, str]


@dataclass(slots=True)
class Plan:
    operation: OperationDefinitionNode
    fields: list[Selected]
    argument_fields: list[Selected]
    """The fields whose arguments are coerced per request (they read variables)."""
    fixed_args: dict[int, dict[str, Any]]
    """id(Selected) -> the arguments of a field whose arguments read no variable
    and coerce to scalars: the same every request, coerced once."""
    variables: Variables | None = None
    """The operation's variables bound without graphql-core's coercion when each is
    text (:func:`_text_variables`); None: coerced by graphql-core every request."""
    bound_args: tuple[tuple[Selected, Arguments], ...] | None = None
    """Each of :attr:`argument_fields` with its arguments as read from text variables
    (:func:`_arguments_of`), when :attr:`variables` is not None and each has them."""


class _Unsupported(Exception):
    pass


class _Info:
    """What the governance wrappers read of a resolve info: the context."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


def hooks_fields(extensions: Iterable[Any]) -> bool:
    """Whether any of the schema's extensions wraps field resolution (a ``resolve``
    hook): the fast path resolves fields without graphql-core, so it would skip it."""
    for extension in extensions:
        kind = extension if isinstance(extension, type) else type(extension())
        if getattr(kind, "resolve", None) is not SchemaExtension.resolve:
            return True
    return False


def _attribute(python_name: str) -> Resolve:
    def resolve(root: Any, info: Any) -> Any:
        return getattr(root, python_name)

    return resolve


def _item(key: str) -> Resolve:
    def resolve(root: Any, info: Any) -> Any:
        return root.get(key)

    return resolve


class FastPath:
    """Compiled plans of one (governed) schema, by query text and operation name."""

    def __init__(self, schema: strawberry.Schema, model: UnifiedModel) -> None:
        self.schema: GraphQLSchema = schema._schema
        self.model = model
        self.plans = LRU(MAX_PLANS)
        self.compiled = 0
        """Operations answered by the fast path (for tests and the benchmark)."""
        self.fallbacks = 0
        self._narrowed: dict[tuple[str, str], Callable[[frozenset[str], bool], Resolve]] = {}
        """(type, field) -> its resolver for a selection of child fields, which
        reads only what they show (a relation's selected fields, ``sourceRecords``
        without ``data``), and whether its customer is the operation's only one
        (``customer(...)``: a relation's rows are then looked up at once, not
        batched); made when a plan is compiled."""
        self._item_keys: dict[tuple[str, str], str] = {}
        self._attribute_names: dict[tuple[str, str], str] = {}
        """(plain object type, field) -> the attribute its value is read from."""
        """(relation entity, field) -> the key of its value in a relation row's dict."""
        self.governor = governor_of(schema)
        self._reading_nothing = frozenset(
            {*model.customer.fields, "id", "sourceRecords", "provenance", "__typename"}
        )
        """Customer fields answered from what stitching read (no source read of their own)."""
        self._resolvers = self._customer_resolvers(schema)
        self._roots = self._root_resolvers(schema)

    def extension(self) -> SchemaExtension:
        """A fresh extension for one request; install it last."""
        return _FastPathExtension(self)

    # -- compiling --------------------------------------------------------------

    def _customer_resolvers(self, schema: strawberry.Schema) -> dict[tuple[str, str], Resolve]:
        """(type, field) -> the function producing its value, governed as the schema is."""
        from resolvers.schema import (
            PageInfo,
            _provenance,
            _source_records,
            _timeline,
            provenance,
            source_records,
        )

        governor = governor_of(schema)
        found: dict[tuple[str, str], Resolve] = {}
        narrowed = self._narrowed

        def customer(name: str, raw: Resolve) -> None:
            found["Customer", name] = governor.customer_field(name, raw) if governor else raw

        for name in self.model.customer.fields:
            customer(name, lambda root, info, name=name: root.golden.value(name))
        customer("id", lambda root, info: root.id)
        customer("sourceRecords", lambda root, info: _source_records(root))

        def records_showing(selected: frozenset[str], alone: bool) -> Resolve:
            data = "data" in selected
            raw = lambda root, info: source_records(root, data)  # noqa: E731
            return governor.customer_field("sourceRecords", raw) if governor else raw

        narrowed["Customer", "sourceRecords"] = records_showing
        customer("provenance", lambda root, info: _provenance(root))

        def provenance_showing(selected: frozenset[str], alone: bool) -> Resolve:
            values, alternatives = "value" in selected, "alternatives" in selected
            raw = lambda root, info: provenance(root, values, alternatives)  # noqa: E731
            return governor.customer_field("provenance", raw) if governor else raw

        narrowed["Customer", "provenance"] = provenance_showing
        if self.model.timeline:
            customer("timeline", _timeline)
        for name in self.model.metrics:

            def metric(root: Any, info: Any, name: str = name) -> Any:
                view = info.context["view"]
                known, value = view.known_metric(root, name)  # loaded by the planner
                return value if known else view.metric(root, name)

            customer(name, metric)
        for name, rel in self.model.relations.items():

            async def related(
                root: Any, info: Any, first: int | None = None, name: str = name
            ) -> Any:
                return await info.context["view"].related(root, name, first)

            customer(name, related)

            def related_fields(
                selected: frozenset[str],
                alone: bool,
                name: str = name,
                known: frozenset[str] = frozenset(rel.fields),
            ) -> Resolve:
                fields = tuple(sorted(selected & known))

                async def fetch(root: Any, info: Any, first: int | None = None) -> Any:
                    view = info.context["view"]
                    return await view.related(root, name, first, fields, alone)

                return governor.customer_field(name, fetch) if governor else fetch

            narrowed["Customer", name] = related_fields
            entity = self.schema.type_map[rel.entity]
            assert isinstance(entity, GraphQLObjectType)
            for field_name in entity.fields:
                item_key = "__source" if field_name == "source" else field_name
                self._item_keys[rel.entity, field_name] = item_key
                raw = _item(item_key)
                found[rel.entity, field_name] = (
                    governor.entity_field(rel.entity, field_name, raw) if governor else raw
                )

        def listed(raw: Resolve, edges: bool) -> Resolve:
            return governor.listed(raw, edges) if governor else raw

        found["CustomerConnection", "nodes"] = listed(
            lambda root, info: [c for _, c in root.customers], False
        )
        found["CustomerConnection", "edges"] = listed(lambda root, info: root.customers, True)
        found["CustomerConnection", "pageInfo"] = lambda root, info: PageInfo(
            has_next_page=root.has_next, end_cursor=root.end_cursor
        )
        found["CustomerEdge", "cursor"] = lambda root, info: root[0]
        found["CustomerEdge", "node"] = lambda root, info: root[1]
        for type_name in ("SourceRecord", "FieldProvenance", "PageInfo", *self._timeline_types()):
            graphql_type = self.schema.type_map[type_name]
            assert isinstance(graphql_type, GraphQLObjectType)
            for field_name, graphql_field in graphql_type.fields.items():
                definition = (graphql_field.extensions or {})["strawberry-definition"]
                found[type_name, field_name] = _attribute(definition.python_name)
                self._attribute_names[type_name, field_name] = definition.python_name
        return found

    def _root_resolvers(self, schema: strawberry.Schema) -> dict[str, Resolve]:
        """Root field -> its resolver without strawberry's wrapper (its argument
        conversion and ``Info``: ~once a request), governed as the schema's is:
        ``customer``, whose arguments are scalars that strawberry passes on as
        graphql-core coerced them."""
        from resolvers.schema import customer_by

        async def customer(root: Any, info: Any, **kwargs: Any) -> Any:
            return await customer_by(info.context["view"], **kwargs)

        governor = governor_of(schema)
        return {"customer": governor.one_customer(customer) if governor else customer}

    def _timeline_types(self) -> tuple[str, ...]:
        return ("TimelineConnection", "TimelineEvent") if self.model.timeline else ()

    def ready(self, context: ExecutionContext) -> Callable[[], Awaitable[ExecutionResult]] | None:
        """The operation's execution, to be awaited, when its plan is compiled already
        and its variables bind without graphql-core (what its hook would run: the hot
        route, :mod:`resolvers.hot`); else None (the hook decides, on strawberry's path)."""
        plan = self.plans.get((context.query, context.operation_name))
        if not plan:
            return None
        run = _prepared(self, plan, context)
        return None if run is None else functools.partial(run.execute, plan.fields)

    def plan(self, document: DocumentNode, query: str, operation_name: str | None) -> Plan | None:
        key = (query, operation_name)
        found = self.plans.get(key)
        if found is None:
            try:
                found = self._compile(document, operation_name)
            except _Unsupported:
                found = False
            self.plans.put(key, found)
        return found or None

    def _compile(self, document: DocumentNode, operation_name: str | None) -> Plan:
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation != OperationType.QUERY:
            raise _Unsupported
        if operation.directives or any(d is not operation for d in document.definitions):
            raise _Unsupported  # fragments, several operations
        query = self.schema.query_type
        assert query is not None
        argument_fields: list[Selected] = []
        fields = self._select(query, operation.selection_set.selections, argument_fields, False)
        for selected in fields:
            if selected.name not in ("customer", "customers"):
                raise _Unsupported
            selected.root = True
            lean = self._roots.get(selected.name)
            selected.lean = lean is not None
            selected.resolve = lean or selected.field.resolve  # type: ignore[assignment]
        fixed = {id(s): args for s in argument_fields if (args := _fixed_args(s)) is not None}
        varying = [s for s in argument_fields if id(s) not in fixed]
        plan = Plan(operation, fields, varying, fixed)
        plan.variables = _text_variables(self.schema, operation)
        bound = [(s, _arguments_of(s)) for s in varying]
        if plan.variables is not None and all(a is not None for _, a in bound):
            plan.bound_args = tuple(bound)  # type: ignore[arg-type]
        else:
            plan.variables = None
        return plan

    def _select(
        self,
        parent: GraphQLObjectType,
        selections: Sequence[Any],
        arguments: list[Selected],
        alone: bool,
    ) -> list[Selected]:
        """``alone``: ``parent`` is the Customer of ``customer(...)``, the operation's
        only customer (the operation has one root field)."""
        if parent.is_type_of is not None:
            raise _Unsupported
        out: list[Selected] = []
        keys: set[str] = set()
        for node in selections:
            if not isinstance(node, FieldNode) or node.directives:
                raise _Unsupported
            name = node.name.value
            key = node.alias.value if node.alias else name
            field = parent.fields.get(name)
            resolve = self._resolvers.get((parent.name, name))
            if key in keys or field is None or (resolve is None and parent.name != "Query"):
                raise _Unsupported
            keys.add(key)
            named = field.type
            while isinstance(named, GraphQLNonNull | GraphQLList):
                named = named.of_type
            children = None
            items: tuple[Item, ...] | None = None
            attributes = False
            if isinstance(named, GraphQLObjectType):
                if node.selection_set is None:
                    raise _Unsupported
                only = (
                    parent is self.schema.query_type and name == "customer" and len(selections) == 1
                )
                children = self._select(named, node.selection_set.selections, arguments, only)
                narrow = self._narrowed.get((parent.name, name))
                if narrow is not None:
                    resolve = narrow(frozenset(c.name for c in children), alone)
                items = self._items(named.name, children)
                attributes = items is None
                if attributes:
                    items = self._items(named.name, children, self._attribute_names)
            elif not isinstance(named, GraphQLLeafType):
                raise _Unsupported
            selected = Selected(
                key,
                name,
                [node],
                field.type,
                parent.name,
                resolve or _no_resolver,
                field,
                bool(field.args or node.arguments),
                children,
                items=items,
                attributes=attributes and items is not None,
                entity=named.name,
            )
            ungoverned = getattr(resolve, "ungoverned", None)
            if ungoverned is not None and parent.name == "Customer":
                selected.ungoverned, selected.label = ungoverned, resolve.label  # type: ignore[union-attr]
            if isinstance(field.type, GraphQLLeafType):
                selected.leaf = field.type
            elif isinstance(field.type, GraphQLNonNull) and isinstance(
                field.type.of_type, GraphQLLeafType
            ):
                selected.leaf, selected.non_null = field.type.of_type, True
            selected.flat = children is not None and items is None
            if named.name == "Customer" and isinstance(_unwrapped(field.type), GraphQLList):
                selected.prefetch = self._prefetch(children or [])
            selected.strict = frozenset(
                c.key for c in children or () if isinstance(c.type, GraphQLNonNull)
            )
            if selected.has_args:
                arguments.append(selected)
            out.append(selected)
        return out

    def _prefetch(self, children: list[Selected]) -> tuple[str, ...]:
        """The relations a list of customers reads before their fields start
        (:attr:`Selected.prefetch`): none when another of its fields reads a source
        (a metric, the timeline, ...), which would then wait for those reads instead
        of reading beside them."""
        relations = tuple(dict.fromkeys(c.name for c in children if c.name in self.model.relations))
        if any(c.name not in relations and c.name not in self._reading_nothing for c in children):
            return ()
        return relations

    def _items(
        self,
        entity: str,
        children: list[Selected],
        keys: dict[tuple[str, str], str] | None = None,
    ) -> tuple[Item, ...] | None:
        items = []
        for child in children:
            key = (self._item_keys if keys is None else keys).get((entity, child.name))
            if key is None or child.leaf is None or child.has_args:
                return None
            items.append((child.key, key, child.leaf, child.non_null, child.name))
        return tuple(items)


def _fixed_args(selected: Selected) -> dict[str, Any] | None:
    """``selected``'s coerced arguments when they are the same every request: none
    reads a variable, and each is a scalar (shared by every run, so nothing a
    resolver could change); else None (coerced per request, errors included)."""
    node = selected.nodes[0]
    if any(_reads_variables(a.value) for a in node.arguments or ()):
        return None
    try:
        args = get_argument_values(selected.field, node)
    except GraphQLError:
        return None  # reported per request, as the general path does
    if not all(v is None or isinstance(v, str | int | float | bool) for v in args.values()):
        return None
    return args


def _reads_variables(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(_reads_variables(v) for v in value.values)
    if isinstance(value, ObjectValueNode):
        return any(_reads_variables(f.value) for f in value.fields)
    return False


Variables = tuple[tuple[str, GraphQLVariableSignature, bool], ...]
"""Each variable's name, signature, and whether it is non-null (its type is String or ID)."""
Arguments = tuple[tuple[str, str | None, bool, bool, Any], ...]
"""Each argument of a field, in definition order: its name in the arguments, the
variable it reads (None: not given, ``default`` then), whether it is required
and non-null, and its default (``Undefined``: none)."""
_TEXT = (GraphQLString, GraphQLID)


def _text_variables(schema: GraphQLSchema, operation: OperationDefinitionNode) -> Variables | None:
    """The operation's variables when each is a String or ID without a default value
    (a text value then coerces to itself: :func:`_bind_variables`); else None."""
    found = []
    for node in operation.variable_definitions or ():
        if node.default_value is not None or node.directives:
            return None
        signature = get_variable_signature(schema, node)
        if isinstance(signature, GraphQLError):
            return None
        type_: Any = signature.type
        non_null = isinstance(type_, GraphQLNonNull)
        named = type_.of_type if non_null else type_
        if not any(named is text for text in _TEXT):
            return None
        found.append((signature.name, signature, non_null))
    return tuple(found)


def _arguments_of(selected: Selected) -> Arguments | None:
    """How ``selected``'s arguments are read from coerced variables, as
    ``get_argument_values`` reads them (:func:`_bind_arguments`), when each is a
    variable or not given and their defaults are scalars; else None."""
    node = selected.nodes[0]
    given = {a.name.value: a.value for a in node.arguments or ()}
    found = []
    for name, definition in selected.field.args.items():
        value = given.get(name)
        if value is not None and not isinstance(value, VariableNode):
            return None
        default = coerce_default_value(definition)
        if not (default is Undefined or default is None or isinstance(default, str | int | float)):
            return None
        found.append(
            (
                definition.out_name or name,
                None if value is None else value.name.value,
                is_required_argument(definition),
                isinstance(definition.type, GraphQLNonNull),
                default,
            )
        )
    return tuple(found)


def _bind_variables(variables: Variables, inputs: dict[str, Any]) -> VariableValues | None:
    """What ``get_variable_values`` answers for text variables given as text, null or
    not at all; None for anything else (graphql-core then coerces or reports it)."""
    sources: dict[str, VariableValueSource] = {}
    coerced: dict[str, Any] = {}
    for name, signature, non_null in variables:
        value = inputs.get(name, Undefined)
        if value is Undefined:
            if non_null:
                return None
            sources[name] = VariableValueSource(signature)
            continue
        if value is None:
            if non_null:
                return None
        elif value.__class__ is not str:
            return None
        sources[name] = VariableValueSource(signature, value)
        coerced[name] = value
    return VariableValues(sources, coerced)


def _bind_arguments(arguments: Arguments, coerced: dict[str, Any]) -> dict[str, Any] | None:
    """What ``get_argument_values`` answers for arguments read from ``coerced``
    variables; None where it would raise (then it is asked, for its error)."""
    out: dict[str, Any] = {}
    for name, variable, required, non_null, default in arguments:
        if variable is None or variable not in coerced:  # not given: its default
            if required:
                return None
            if default is not Undefined:
                out[name] = default
            continue
        value = coerced[variable]
        if value is None and non_null:
            return None
        out[name] = value
    return out


def _no_resolver(root: Any, info: Any) -> Any:  # replaced for root fields
    raise _Unsupported


def fast_path_of(extension: SchemaExtension) -> FastPath | None:
    """The fast path whose hook ``extension`` is (:meth:`FastPath.extension`), else None."""
    return extension.fast if isinstance(extension, _FastPathExtension) else None


class _FastPathExtension(SchemaExtension):
    def __init__(self, fast: FastPath) -> None:
        self.fast = fast

    async def on_execute(self) -> Any:
        context = self.execution_context
        if context.result is None and context.graphql_document is not None and context.query:
            plan = self.fast.plan(context.graphql_document, context.query, context.operation_name)
            result = await _run(self.fast, plan, context) if plan else None
            if result is None:
                self.fast.fallbacks += 1
            else:
                self.fast.compiled += 1
                context.result = result
        yield


async def _run(fast: FastPath, plan: Plan, context: ExecutionContext) -> Any:
    run = _prepared(fast, plan, context)
    return None if run is None else await run.execute(plan.fields)


def _prepared(fast: FastPath, plan: Plan, context: ExecutionContext) -> _Run | None:
    """The run of ``plan`` for this request, its variables and arguments bound; None
    when graphql-core is to coerce them (and report their errors)."""
    operation = plan.operation
    args = plan.fixed_args.copy()
    inputs = context.variables or {}
    bound_variables = None if plan.variables is None else _bind_variables(plan.variables, inputs)
    fields: Iterable[tuple[Selected, Arguments | None]]
    if bound_variables is None:
        coerced = get_variable_values(fast.schema, operation.variable_definitions or (), inputs)
        if isinstance(coerced, list):
            return None  # the general path reports variable errors
        variables = coerced
        fields = ((s, None) for s in plan.argument_fields)
    else:
        variables = bound_variables
        fields = plan.bound_args or ()
    try:
        for s, arguments in fields:
            bound = None if arguments is None else _bind_arguments(arguments, variables.coerced)
            if bound is None:
                bound = get_argument_values(s.field, s.nodes[0], variables)
            args[id(s)] = bound
    except GraphQLError:
        return None
    run = _Run(fast.schema, operation, variables, context.context, context.root_value, args)
    run.governor = fast.governor
    if run.governor is not None:
        run.trail = open_trail(context.context)
    return run


class _Run:
    """One execution of a plan: graphql-core's completion rules, without its machinery."""

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        variables: Any,
        context: Any,
        root_value: Any,
        args: dict[int, dict[str, Any]],
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.variables = variables
        self.context = context
        self.root_value = root_value
        self.args = args
        self.info = _Info(context)
        self.errors: list[GraphQLError] = []
        self.nulled: set[PathKeys] = set()
        self.governor: Governor | None = None
        """The schema's policy wrappers' checks; None when it is not governed."""
        self.trail: ReadTrail | None = None
        """The request's trail when its grant is full (:func:`open_trail`)."""
        self._shown: dict[int, Shown] = {}
        """id(Selected) -> how its rows are built in one go (see :meth:`_showing`)."""

    async def execute(self, fields: list[Selected]) -> ExecutionResult:
        try:
            data = self.fields(fields, self.root_value, None)
            if type(data) not in _PLAIN and _awaitable(data):
                data = await data
        except GraphQLError as error:
            self._add(error, None)
            data = None
        return ExecutionResult(data, self.errors or None)

    # -- errors -------------------------------------------------------------------

    def _add(self, error: GraphQLError, path: PathKeys) -> None:
        if None in self.nulled:
            return
        at = path
        while at is not None:
            if at in self.nulled:
                return
            at = at[0]
        self.nulled.add(path)
        self.errors.append(error)

    def _handle(self, raw: Exception, selected: Selected, type_: Any, path: PathKeys) -> None:
        error = located_error(raw, selected.nodes, _as_list(path))
        if isinstance(type_, GraphQLNonNull):
            raise error
        self._add(error, path)

    # -- fields ---------------------------------------------------------------------

    def fields(self, fields: list[Selected], source: Any, path: PathKeys) -> Any:
        results, pending = self._start(fields, source, path)
        if not pending:
            return results
        return self._gathered(results, pending)

    @staticmethod
    async def _gathered(results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
        if len(pending) == 1:
            results[pending[0]] = await results[pending[0]]
        else:
            done = await gathered([results[k] for k in pending])
            results.update(zip(pending, done, strict=True))
        return results

    def _start(
        self, fields: list[Selected], source: Any, path: PathKeys
    ) -> tuple[dict[str, Any], list[str]]:
        """An object's answer with its awaitable fields' places holding the awaitables,
        and those fields' keys, in selection order."""
        results: dict[str, Any] = {}
        pending: list[str] = []
        trail = self.trail
        if trail is not None and fields and fields[0].ungoverned is not None:
            # a Customer's fields under a full grant: its id noted once (each governed
            # field's wrapper notes it, before anything of the field can fail)
            try:
                customer_id = getattr(source, "id", None)
            except Exception:
                trail = None  # then each field's wrapper fails as it would
            else:
                if customer_id is not None:
                    trail.customers.add(customer_id)
        else:
            trail = None
        try:
            for selected in fields:
                if trail is not None and selected.ungoverned is not None:
                    result = self.field(selected, source, (path, selected.key), trail)
                else:
                    result = self.field(selected, source, (path, selected.key))
                results[selected.key] = result
                if type(result) not in _PLAIN and _awaitable(result):
                    pending.append(selected.key)
        except Exception:
            _close(results[k] for k in pending)  # their positions are nulled anyway
            raise
        return results, pending

    def field(
        self,
        selected: Selected,
        source: Any,
        path: tuple[Any, str | int],
        trail: ReadTrail | None = None,
    ) -> Any:
        """``selected``'s value; with ``trail`` (a full grant's: see :meth:`_start`),
        a governed Customer field notes its read there, checks its page size and calls
        its resolver without the policy wrapper, which would do the same."""
        type_ = selected.type
        try:
            args = self.args.get(id(selected), {}) if selected.has_args else {}
            if trail is not None:
                trail.fields.add(selected.label)
                if args:
                    check_first(self.info, args)
                result = selected.ungoverned(source, self.info, **args)  # type: ignore[misc]
            elif selected.root and not selected.lean:
                result = selected.resolve(source, self._root_info(selected, path), **args)
            else:
                result = selected.resolve(source, self.info, **args)
            if type(result) not in _PLAIN and _awaitable(result):
                return self._awaited(selected, type_, path, result)
            if selected.leaf is not None:
                return self._leaf(selected, selected.leaf, result)
            completed = self.complete(selected, type_, path, result)
            if type(completed) not in _PLAIN and _awaitable(completed):
                return self._completing(selected, type_, path, completed)
        except Exception as raw:
            self._handle(raw, selected, type_, path)
            return None
        return completed

    @staticmethod
    def _leaf(selected: Selected, type_: GraphQLLeafType, result: Any) -> Any:
        """:meth:`complete` of a scalar or enum field (or a non-null one), in one step."""
        if isinstance(result, Exception):
            raise result
        if result is None:
            if selected.non_null:
                raise TypeError(
                    f"Cannot return null for non-nullable field {selected.parent}.{selected.name}."
                )
            return None
        return _coerced(type_, result)

    async def _awaited(
        self, selected: Selected, type_: Any, path: PathKeys, result: Awaitable[Any]
    ) -> Any:
        try:
            completed = self.complete(selected, type_, path, await result)
            if type(completed) not in _PLAIN and _awaitable(completed):
                completed = await completed
        except Exception as raw:
            self._handle(raw, selected, type_, path)
            return None
        return completed

    async def _completing(
        self, selected: Selected, type_: Any, path: PathKeys, completed: Awaitable[Any]
    ) -> Any:
        try:
            return await completed
        except Exception as raw:
            self._handle(raw, selected, type_, path)
            return None

    def _root_info(
        self, selected: Selected, path: tuple[Any, str | int]
    ) -> GraphQLResolveInfo[Any]:
        query = self.schema.query_type
        assert query is not None
        return GraphQLResolveInfo(
            selected.name,
            selected.nodes,
            selected.type,
            query,
            Path(None, path[1], query.name),
            self.schema,
            {},
            self.root_value,
            self.operation,
            self.variables,
            self.context,
            isawaitable,  # type: ignore[arg-type]
            None,
            _HELPERS,
        )

    # -- completion -------------------------------------------------------------------

    def complete(self, selected: Selected, type_: Any, path: PathKeys, result: Any) -> Any:
        if isinstance(result, Exception):
            raise result
        if isinstance(type_, GraphQLNonNull):
            completed = self.complete(selected, type_.of_type, path, result)
            if completed is None:
                raise TypeError(
                    f"Cannot return null for non-nullable field {selected.parent}.{selected.name}."
                )
            return completed
        if result is None:
            return None
        if isinstance(type_, GraphQLList):
            return self._list(selected, type_.of_type, path, result)
        if selected.children is None:
            return _coerced(type_, result)
        if selected.items is not None:
            built = self._built(selected, result)
            if built is not None:
                return built
        return self.fields(selected.children, result, path)

    def _built(self, selected: Selected, row: Any) -> dict[str, Any] | None:
        """A relation row's answer built in one go — what :meth:`fields` makes of it
        through the governance wrappers, for a caller who may read every selected
        field — or None: then :meth:`fields` completes it, errors and all (the
        trail notes made here are made again there, to the same sets). A plain
        object's attributes (:attr:`Selected.attributes`) are shown as read, as
        their resolvers show them."""
        items = selected.items or ()
        attributes = selected.attributes
        if not attributes:
            shown = self._shown.get(id(selected), _UNSEEN)
            if shown is _UNSEEN:
                shown = self._shown[id(selected)] = self._showing(selected)
            if shown is None:
                return None
            if shown is not _CLEAR:
                return self._masked(items, row, shown)
        # one loop, each value read and shown in place (no generator, no zip: a
        # customer 360 builds ~35 such rows, a page of 50 ~200)
        out: dict[str, Any] = {}
        try:
            for key, name, leaf, non_null, _ in items:
                value = getattr(row, name) if attributes else row.get(name)
                if value is None:
                    if non_null:
                        return None
                    out[key] = None
                elif value.__class__ is str and (leaf is GraphQLString or leaf is GraphQLID):
                    out[key] = value  # what :func:`_coerced` answers for text
                elif isinstance(value, Exception):
                    return None
                else:
                    # :func:`_coerced`, written out (a relation's times and amounts):
                    # a value without an output is left to :meth:`fields`, which fails it
                    coerced = leaf.coerce_output_value(value)
                    if coerced is None or coerced is Undefined:
                        return None
                    out[key] = coerced
        except Exception:
            return None
        return out

    @staticmethod
    def _masked(items: tuple[Item, ...], row: Any, shown: Shown) -> dict[str, Any] | None:
        """:meth:`_built` of a row whose fields the grant masks (``shown``'s actions)."""
        assert shown is not None
        actions, salt = shown
        out: dict[str, Any] = {}
        try:
            for (key, name, leaf, non_null, _), action in zip(items, actions, strict=True):
                value = mask(row.get(name), action, salt)
                if value is None:
                    if non_null:
                        return None
                    out[key] = None
                elif isinstance(value, Exception):
                    return None
                else:
                    out[key] = _coerced(leaf, value)
        except Exception:
            return None
        return out

    def _showing(self, selected: Selected) -> Shown:
        """How this request's grant shows the relation's selected fields: in clear
        (no governance, or a full grant), each with its action (none denied; the
        trail notes them as the wrappers do), or None when one is denied."""
        if self.governor is None:
            return _CLEAR
        try:
            grant = grant_of(self.info)
        except Exception:
            return None
        if grant.full:
            return _CLEAR
        actions = []
        for *_, name in selected.items or ():
            action = "allow" if name == "source" else grant.entity_action(selected.entity, name)
            if action == "deny":
                return None
            actions.append(action)
        trail = self.context.get("trail")
        if isinstance(trail, ReadTrail):
            for *_, name in selected.items or ():
                if name != "source":
                    trail.note(None, f"{selected.entity}.{name}")
        return tuple(actions), grant.salt

    def _list(self, selected: Selected, item_type: Any, path: PathKeys, items: Any) -> Any:
        if selected.prefetch and isinstance(items, list) and len(items) > 1:
            names = self._prefetched(selected)
            if names:
                return self._list_after(selected, item_type, path, items, names)
        return self._list_now(selected, item_type, path, items)

    def _prefetched(self, selected: Selected) -> list[str]:
        """The relations of :attr:`Selected.prefetch` that one of their fields reads:
        when every field of a relation fails before reading (no grant, denied, a
        page size over the limit: the field's own checks,
        :meth:`~resolvers.governance.Governor.refuses`), nothing is read for it."""
        governor = self.governor
        if governor is None:
            return list(selected.prefetch)
        children = selected.children or ()
        return [
            name
            for name in selected.prefetch
            if any(
                c.name == name
                and not governor.refuses(
                    name, self.info, self.args.get(id(c), {}) if c.has_args else {}
                )
                for c in children
            )
        ]

    async def _list_after(
        self, selected: Selected, item_type: Any, path: PathKeys, items: list[Any], names: list[str]
    ) -> Any:
        """:meth:`_list_now` once the customers' rows of relations ``names`` are read."""
        view = self.context["view"]
        await gathered([view.prefetch_related(items, n) for n in names])
        listed = self._list_now(selected, item_type, path, items)
        if type(listed) not in _PLAIN and _awaitable(listed):
            listed = await listed
        return listed

    def _list_now(self, selected: Selected, item_type: Any, path: PathKeys, items: Any) -> Any:
        completed: list[Any] = []
        pending: list[int] = []
        of = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        built = selected.items is not None and isinstance(of, GraphQLObjectType)
        flat = selected.flat and isinstance(of, GraphQLObjectType)
        started: list[tuple[int, tuple[PathKeys, int], dict[str, Any], list[str]]] = []
        strict = False
        try:
            for index, item in enumerate(items):
                if built and item is not None and not isinstance(item, Exception):
                    # what :meth:`complete` comes to for such an item, without its steps
                    row = self._built(selected, item)
                    if row is not None:
                        completed.append(row)
                        continue
                item_path = (path, index)
                if flat and item is not None and not isinstance(item, Exception):
                    # what :meth:`complete` comes to, the item's awaitable fields not
                    # started yet (see :attr:`Selected.flat`)
                    try:
                        results, keys = self._start(selected.children or [], item, item_path)
                    except Exception as raw:
                        self._handle(raw, selected, item_type, item_path)
                        completed.append(None)
                        continue
                    completed.append(results)
                    if keys:
                        started.append((index, item_path, results, keys))
                        strict = strict or not selected.strict.isdisjoint(keys)
                    continue
                try:
                    value = self.complete(selected, item_type, item_path, item)
                    if type(value) not in _PLAIN and _awaitable(value):
                        value = self._completing(selected, item_type, item_path, value)
                        pending.append(index)
                except Exception as raw:
                    self._handle(raw, selected, item_type, item_path)
                    value = None
                completed.append(value)
        except Exception:
            _close(
                [*(r[k] for _, _, r, ks in started for k in ks), *(completed[i] for i in pending)]
            )
            raise
        if started and not strict:  # then no item is pending itself
            alone = [(r, ks[0]) for _, _, r, ks in started if len(ks) == 1]
            others = [(r, k) for _, _, r, ks in started if len(ks) > 1 for k in ks]
            return self._fill([*alone, *others], completed)
        for index, item_path, results, keys in started:
            # a non-null field may fail its item: each item's fields gathered apart,
            # as :meth:`complete` does (none of them has started yet)
            fields = self._gathered(results, keys)
            completed[index] = self._completing(selected, item_type, item_path, fields)
            pending.append(index)
        pending.sort()
        if not pending:
            return completed

        async def pending_items() -> list[Any]:
            if len(pending) == 1:
                completed[pending[0]] = await completed[pending[0]]
            else:
                done = await gathered([completed[i] for i in pending])
                for index, value in zip(pending, done, strict=True):
                    completed[index] = value
            return completed

        return pending_items()

    @staticmethod
    async def _fill(later: list[tuple[dict[str, Any], str]], completed: list[Any]) -> list[Any]:
        """The awaitable fields of a list's items (:attr:`Selected.flat`) awaited in one
        gather, as graphql-core's gather per item would start them: first those that
        are their item's only awaitable field (each item's gather awaits it in its
        own task at once), then the others, item by item."""
        if len(later) == 1:
            results, key = later[0]
            results[key] = await results[key]
        else:
            done = await gathered([results[key] for results, key in later])
            for (results, key), value in zip(later, done, strict=True):
                results[key] = value
        return completed


Shown = tuple[tuple[str, ...], str] | None
"""See :meth:`_Run._showing`: (each field's action, the grant's salt), _CLEAR or None."""
_CLEAR: Shown = ((), "in clear")
"""Every selected field shown as read (told apart by identity)."""
_UNSEEN: Shown = ((), "not worked out yet")

_PLAIN: frozenset[type] = frozenset({str, int, float, bool, dict, list, tuple, type(None)})


def _unwrapped(type_: Any) -> Any:
    """``type_`` without its non-null wrapper."""
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def _awaitable(value: Any) -> bool:
    """:func:`inspect.isawaitable` of a value that is not plain, answered at once for
    coroutines (it asks ``collections.abc.Awaitable`` of everything else). Callers
    test ``type(value) not in _PLAIN`` themselves first: most values are plain, and
    then it is not called at all."""
    return type(value) is CoroutineType or isawaitable(value)


def _close(awaitables: Iterable[Any]) -> None:
    for awaitable in awaitables:
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()


def _as_list(path: PathKeys) -> list[str | int]:
    keys: list[str | int] = []
    while path is not None:
        keys.append(path[1])
        path = path[0]
    keys.reverse()
    return keys


_TRACKED: set[asyncio.Future[Any]] = set()


def _track(values: Sequence[Any]) -> None:
    for value in values:
        if isawaitable(value):
            future = asyncio.ensure_future(value)
            _TRACKED.add(future)
            future.add_done_callback(_TRACKED.discard)


def _gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    return gather_with_cancel(*values)


_HELPERS = GraphQLResolveInfoHelpers(_gather, _track)


def _coerced(type_: GraphQLLeafType, result: Any) -> Any:
    """A scalar or enum value as output, with graphql-core's error when it has none."""
    if result.__class__ is str and (type_ is GraphQLString or type_ is GraphQLID):
        return result  # what their output coercion answers for text, without the call
    coerced = type_.coerce_output_value(result)
    if coerced is Undefined or coerced is None:
        raise TypeError(
            f"Expected `{inspect(type_)}.coerce_output_value({inspect(result)})` "
            f"to return non-nullable value, returned: {inspect(coerced)}"
        )
    return coerced
