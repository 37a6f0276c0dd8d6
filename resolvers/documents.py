"""Parsing and validation once per query text.

A hot operation arrives with the same text again and again; parsing it
(~0.2 ms) and validating it (~1.2 ms for the demo's page query) on every
request cost more than executing it. :class:`DocumentCache` keeps both in
one bounded LRU keyed by the query text (and the parse options, so the
token limit still applies), with the validation errors keyed also by the
validation rules in force: the hardening limits (depth, aliases, cost,
introspection) are rules, so a cached verdict is the verdict those exact
rules gave.

strawberry's own ``ParserCache``/``ValidationCache`` key validation by
the document, whose hash walks the whole AST on every lookup, and by the
rule classes, which strawberry's limiters create anew for every request —
so behind the hardening extensions that cache never hit. The limiters'
rule classes are made once per app (``gateway.hardening.Limits``), which
keeps this key stable.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

from graphql import DocumentNode, GraphQLError
from graphql.language.parser import parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

MAX_DOCUMENTS = 256
"""Distinct query texts kept; an attacker sending unique texts only evicts."""


class LRU:
    """A small bounded least-recently-used map."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        try:
            self._items.move_to_end(key)
        except KeyError:
            return None
        return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class _Entry:
    __slots__ = ("document", "verdicts")

    def __init__(self, document: DocumentNode) -> None:
        self.document = document
        self.verdicts: dict[tuple[type, ...], list[GraphQLError]] = {}


class DocumentCache:
    """Parsed documents and validation verdicts of one schema, by query text."""

    def __init__(self, maxsize: int = MAX_DOCUMENTS) -> None:
        self._entries = LRU(maxsize)
        self.parses = 0
        """Documents parsed so far (misses), for tests and the benchmark."""
        self.validations = 0

    def extension(self) -> SchemaExtension:
        """A fresh extension (one per request) that reads and fills this cache."""
        return _CachingExtension(self)

    def document(self, query: str, options: Mapping[str, Any]) -> tuple[DocumentNode, Hashable]:
        key = _key(query, options)
        entry: _Entry | None = self._entries.get(key)
        if entry is None:
            self.parses += 1
            entry = _Entry(parse(query, **options))  # a syntax error is not cached
            self._entries.put(key, entry)
        return entry.document, key

    def verdict(
        self, key: Hashable, schema: Any, document: DocumentNode, rules: tuple[type, ...]
    ) -> list[GraphQLError]:
        entry: _Entry | None = self._entries.get(key)
        if entry is None or entry.document is not document:
            self.validations += 1
            return validate_document(schema, document, rules)
        found = entry.verdicts.get(rules)
        if found is None:
            self.validations += 1
            found = entry.verdicts[rules] = validate_document(schema, document, rules)
        return list(found)

    def known(
        self, query: str, options: Mapping[str, Any], rules: tuple[type, ...]
    ) -> DocumentNode | None:
        """``query``'s document when it is parsed already and a verdict of ``rules``
        found it valid (what the extension's hooks would find, without parsing or
        validating anything); else None."""
        entry: _Entry | None = self._entries.get(_key(query, options))
        if entry is None or entry.verdicts.get(rules, True):
            return None  # not seen, not validated by these rules, or not valid
        return entry.document


def _key(query: str, options: Mapping[str, Any]) -> Hashable:
    return (query, *sorted(options.items())) if options else query


def cache_of(extension: SchemaExtension) -> DocumentCache | None:
    """The cache whose hooks ``extension`` is (:meth:`DocumentCache.extension`), else None."""
    return extension.cache if isinstance(extension, _CachingExtension) else None


class _CachingExtension(SchemaExtension):
    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache
        self.key: Hashable = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document, self.key = self.cache.document(
                context.query, context.parse_options
            )
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and context.validation_rules:
            context.pre_execution_errors = self.cache.verdict(
                self.key,
                context.schema._schema,
                context.graphql_document,
                tuple(context.validation_rules),
            )
        yield
