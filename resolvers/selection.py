"""Which metrics a ``customers`` request reads of the customers it lists.

The planner loads them for a few candidates while it still checks the
filter at the sources (:meth:`resolvers.planner.Planner.search`), so a
page's metric columns cost no round trip after the filter's own: read
from the query's own selection (``nodes { ... }`` or ``edges { node {
... } }``, fragments followed), leaving out a field under a directive
(``@skip``/``@include`` decide at run time) or one the caller's grant
denies (it is never read for them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
)

from resolvers.policy import Grant

_Parent = FieldNode | InlineFragmentNode | FragmentDefinitionNode


def listed_metrics(info: Any, metrics: Collection[str]) -> tuple[str, ...]:
    """The ``metrics`` selected on the listed customers of ``info``'s field (a
    strawberry or graphql-core resolve info), in selection order, less those the
    request's grant denies."""
    raw = getattr(info, "_raw_info", info)
    fragments: Mapping[str, FragmentDefinitionNode] = raw.fragments
    listed: list[_Parent] = []
    for node in _fields(raw.field_nodes, fragments):
        if node.name.value == "nodes":
            listed.append(node)
        elif node.name.value == "edges":
            listed.extend(n for n in _fields([node], fragments) if n.name.value == "node")
    context = raw.context
    grant = context.get("grant") if isinstance(context, Mapping) else None
    found: dict[str, None] = {}
    for node in _fields(listed, fragments):
        name = node.name.value
        if name not in metrics or node.arguments:
            continue
        if isinstance(grant, Grant) and grant.action(name) == "deny":
            continue
        found[name] = None
    return tuple(found)


def _fields(
    parents: Iterable[_Parent], fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields selected directly under ``parents`` (through fragments)."""
    for parent in parents:
        if parent.selection_set is None:
            continue
        for node in parent.selection_set.selections:
            if node.directives:
                continue
            if isinstance(node, FieldNode):
                yield node
            elif isinstance(node, InlineFragmentNode):
                yield from _fields([node], fragments)
            elif isinstance(node, FragmentSpreadNode):
                fragment = fragments.get(node.name.value)
                if fragment is not None:
                    yield from _fields([fragment], fragments)
