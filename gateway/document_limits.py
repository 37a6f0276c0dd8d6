"""The GraphQL document limits of :mod:`gateway.hardening`: depth, aliases and
tokens (strawberry's ``QueryDepthLimiter``, ``MaxAliasesLimiter``,
``MaxTokensLimiter``), an estimated cost where a field with ``first``
multiplies what it selects, introspection, and hidden field suggestions.

Apart from the limits' settings so that reading the settings (``custview
export``, ``check``, ...) does not load strawberry and graphql-core.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.types import ExecutionContext

from resolvers.hot import HotExtension

if TYPE_CHECKING:
    from gateway.hardening import Limits


def extensions(limits: Limits) -> list[Callable[[], SchemaExtension]]:
    """Strawberry extensions enforcing ``limits`` on documents.

    The validation rule classes are made here, once: a cached validation
    verdict (resolvers.documents) is keyed by the rules, so rules made
    anew per request would never hit it.
    """
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
        _cost_rule(limits.max_cost, limits.max_page_size),
        *([] if limits.introspection else DisableIntrospection().validation_rules),
    ]
    found: list[Callable[[], SchemaExtension]] = [
        lambda: _MaxTokens(max_token_count=limits.max_tokens),
        lambda: _AddRules(rules),
    ]
    if not limits.introspection:
        found.append(HideSuggestions)
    return found


class _MaxTokens(MaxTokensLimiter, HotExtension):
    def ask(self, context: ExecutionContext) -> None:
        context.parse_options["max_tokens"] = self.max_token_count


class _AddRules(AddValidationRules, HotExtension):
    def ask(self, context: ExecutionContext) -> None:
        context.validation_rules = context.validation_rules + tuple(self.validation_rules)


# -- cost -------------------------------------------------------------------


def _first(field: FieldNode, page: int) -> int:
    """What a field's ``first`` multiplies by: a literal, else the page limit."""
    for argument in field.arguments or ():
        if argument.name.value == "first":
            value = argument.value
            return int(value.value) if isinstance(value, IntValueNode) else page
    return 1


def _cost_rule(max_cost: int, max_page_size: int) -> type[ValidationRule]:
    class CostRule(ValidationRule):
        """Refuses documents whose estimated cost or literal page size is too large:
        each field costs 1, times the ``first`` of every list field above it."""

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            fragments = {
                f.name.value: f
                for f in self.context.document.definitions
                if isinstance(f, FragmentDefinitionNode)
            }
            cost = self._cost(node.selection_set, fragments, frozenset())
            if cost > max_cost:
                self.report_error(
                    GraphQLError(
                        f"this query would cost about {cost} (limit {max_cost}); ask for "
                        "fewer items per page or fewer nested lists",
                        node,
                        extensions={"code": "QUERY_TOO_COSTLY"},
                    )
                )

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            for argument in node.arguments or ():
                value = argument.value
                if (
                    argument.name.value == "first"
                    and isinstance(value, IntValueNode)
                    and int(value.value) > max_page_size
                ):
                    self.report_error(
                        GraphQLError(
                            f"'first' may be at most {max_page_size}",
                            argument,
                            extensions={"code": "BAD_REQUEST"},
                        )
                    )

        def _cost(
            self,
            selection: SelectionSetNode | None,
            fragments: dict[str, Any],
            seen: frozenset[str],
        ) -> int:
            total = 0
            for node in selection.selections if selection else ():
                if isinstance(node, FieldNode):
                    inner = self._cost(node.selection_set, fragments, seen)
                    total += 1 + _first(node, max_page_size) * inner
                elif isinstance(node, InlineFragmentNode):
                    total += self._cost(node.selection_set, fragments, seen)
                elif isinstance(node, FragmentSpreadNode):
                    name = node.name.value
                    if name in seen or name not in fragments:
                        continue  # cycles are another rule's error
                    total += self._cost(fragments[name].selection_set, fragments, seen | {name})
            return total

    return CostRule


# -- suggestions --------------------------------------------------------------

_SUGGESTION = re.compile(r"\s*Did you mean .*\?$", re.S)


class HideSuggestions(HotExtension):
    """Drops "Did you mean ...?" from errors: with introspection off, suggestions
    would let a caller discover the schema one typo at a time."""

    def end(self, context: ExecutionContext, state: None, raised: BaseException | None) -> None:
        if raised is not None:
            return
        errors = [*(context.pre_execution_errors or []), *(context.result.errors or [])] if (
            context.result
        ) else list(context.pre_execution_errors or [])  # fmt: skip
        for error in errors:
            error.message = _SUGGESTION.sub("", error.message)
