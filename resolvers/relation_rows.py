"""A relation's source rows as the items its GraphQL fields read.

Each item holds the relation's source (``__source``), the selected fields'
values coerced to their declared types, and the ``order_by`` columns as read
(``__column``) for sorting. A customer 360 builds a few dozen such items per
request, so the work that depends only on the relation and the selected
fields — which column each field reads, its type's conversion, the sort
keys — is done once per selection (:class:`RelationShape`) and a row costs
only its values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any

from resolvers.coerce import converter
from resolvers.model import FieldType, RelationSpec

_text = converter("string")
_datetime = converter("datetime")
_money = converter("decimal")
_ident = converter("id")
_fromisoformat = dt.datetime.fromisoformat
_NAIVE = len("2016-07-14 00:05:21")
_CENTS = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class RelationShape:
    """How rows of one relation become items for one selection of its fields."""

    source: str
    fields: tuple[tuple[str, str, Callable[[Any], Any]], ...]
    """(field, column, conversion of a value that is not None), in selection order."""
    order: tuple[tuple[str, str], ...]
    """(item key, column) of each ``order_by`` column."""
    sorts: tuple[tuple[str, bool], ...]
    """(item key, descending), last sort key first (a stable sort per key)."""

    @classmethod
    def of(cls, rel: RelationSpec, fields: Collection[str] | None) -> RelationShape:
        shown = rel.fields if fields is None else {f: rel.fields[f] for f in fields}
        columns = [c.lstrip("-") for c in rel.order_by]
        return cls(
            rel.source,
            tuple((f, spec.column, _converter(spec.type)) for f, spec in shown.items()),
            tuple((f"__{c}", c) for c in columns),
            tuple((f"__{c.lstrip('-')}", c.startswith("-")) for c in reversed(rel.order_by)),
        )

    def items(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The rows' items, sorted by ``order_by`` (missing values last)."""
        source, fields, order = self.source, self.fields, self.order
        items: list[dict[str, Any]] = []
        for row in rows:
            get = row.get
            item: dict[str, Any] = {"__source": source}
            for field, column, convert in fields:
                value = get(column)
                # text of a text field is kept as it is, without a call
                if value is None or (value.__class__ is str and convert is _text):
                    item[field] = value
                elif convert is _datetime and value.__class__ is str and len(value) == _NAIVE:
                    # :func:`~resolvers.coerce._datetime` of SQLite's spelling, written out
                    try:
                        item[field] = _fromisoformat(value + "+00:00")
                    except ValueError:
                        item[field] = convert(value)
                elif convert is _ident and value.__class__ is int:
                    item[field] = str(value)  # an id's converter, written out
                elif convert is _money and (value.__class__ is float or value.__class__ is int):
                    # :func:`~resolvers.coerce._decimal` of a number, written out
                    try:
                        item[field] = Decimal(str(value)).quantize(_CENTS)
                    except (InvalidOperation, ValueError):
                        item[field] = None
                else:
                    item[field] = convert(value)
            for key, column in order:
                item[key] = get(column)
            items.append(item)
        for key, desc in self.sorts:
            present = [i for i in items if i[key] is not None]
            missing = [i for i in items if i[key] is None]
            present.sort(key=itemgetter(key), reverse=desc)
            items = present + missing
        return items


def _converter(type_: FieldType) -> Callable[[Any], Any]:
    """:func:`~resolvers.coerce.converter`, the same function for text, times,
    amounts and ids (:meth:`RelationShape.items` tells them by identity)."""
    found = {"string": _text, "datetime": _datetime, "decimal": _money, "id": _ident}.get(type_)
    return found or converter(type_)
