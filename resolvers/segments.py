"""Segments: named customer filters from config, in the ``customers(filter:)`` language.

A segment's filter is written in YAML exactly as a ``CustomerFilter`` is
written in GraphQL (``{country: {eq: DE}, tickets: {priority: {eq: urgent}},
or: [...], not: {...}, segment: other}``). It is compiled once, at start-up,
into :mod:`resolvers.expr` values; a mistake raises :class:`FilterSyntaxError`
carrying the key path inside the filter, which the settings loader turns
into a located configuration error.

A segment with ``purpose: marketing`` also requires the customer's consent
(``model.consent``), wherever the segment is used: ``segment(name)``,
``Customer.segments``, ``filter: {segment: ...}`` (inside other segments
too) and exports.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from resolvers.expr import And, Cond, Expr, FieldPred, Not, Op, Or, RelationPred

if TYPE_CHECKING:
    from resolvers.model import FieldType, UnifiedModel

_OPS: dict[str, Op] = {
    "eq": "eq", "ne": "ne", "in": "in", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge",
    "contains": "contains", "starts_with": "startswith", "is_null": "is_null",
}  # fmt: skip
_ORDERED = {"lt", "le", "gt", "ge"}
_TEXT = {"contains", "starts_with"}
_UNORDERED_TYPES = {"id", "bool"}


class FilterSyntaxError(ValueError):
    """A filter that does not fit the model; ``path`` locates it inside the config."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{_dotted(path)}: {message}")
        self.path = path
        self.reason = message


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


def _value(value: Any, type_: FieldType, path: tuple[str | int, ...]) -> Any:
    """A YAML scalar as the GraphQL input of ``type_`` would give it."""
    try:
        if type_ in ("string", "id"):
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError
            return str(value)
        if type_ == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if type_ == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError
            return value
        if type_ == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError
            return float(value)
        if type_ == "decimal":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError
            return Decimal(str(value))
        if type_ == "date":
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                return value
            return dt.date.fromisoformat(str(value))
        if isinstance(value, dt.datetime):
            parsed = value
        elif isinstance(value, dt.date):
            parsed = dt.datetime(value.year, value.month, value.day)
        else:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except (ValueError, TypeError, InvalidOperation):
        raise FilterSyntaxError(path, f"{value!r} is not a {type_} value") from None


def _conds(given: Any, type_: FieldType, path: tuple[str | int, ...]) -> tuple[Cond, ...]:
    if not isinstance(given, Mapping) or not given:
        raise FilterSyntaxError(path, "expected operators, e.g. {eq: value} or {ge: 2}")
    found = []
    for name, value in given.items():
        where = (*path, name)
        op = _OPS.get(name)
        allowed = (name not in _ORDERED or type_ not in _UNORDERED_TYPES) and (
            name not in _TEXT or type_ == "string"
        )
        if op is None or not allowed:
            known = [
                o
                for o in _OPS
                if (o not in _ORDERED or type_ not in _UNORDERED_TYPES)
                and (o not in _TEXT or type_ == "string")
            ]
            raise FilterSyntaxError(
                where, f"unknown operator for a {type_} (known: {', '.join(known)})"
            )
        if op == "is_null":
            if not isinstance(value, bool):
                raise FilterSyntaxError(where, "is_null takes true or false")
            found.append(Cond(op, value))
        elif op == "in":
            if not isinstance(value, list) or not value:
                raise FilterSyntaxError(where, "'in' takes a non-empty list")
            found.append(Cond(op, [_value(v, type_, (*where, i)) for i, v in enumerate(value)]))
        elif op in ("contains", "startswith"):
            found.append(Cond(op, _value(value, "string", where)))
        else:
            found.append(Cond(op, _value(value, type_, where)))
    return tuple(found)


class FilterCompiler:
    """Turns ``customers(filter:)``-shaped mappings into expressions for one model."""

    def __init__(
        self,
        model: UnifiedModel,
        segments: Mapping[str, Any],
        consent: Mapping[str, Expr] | None = None,
    ) -> None:
        self.model = model
        self._consent = consent or {}
        """Segment -> the consent condition its members must meet as well."""
        self.scalars: dict[str, FieldType] = {n: f.type for n, f in model.customer.fields.items()}
        self.scalars |= {n: m.type for n, m in model.metrics.items()}
        self._raw = segments
        self._compiled: dict[str, Expr] = {}
        self._active: list[str] = []

    def segment(self, name: str, path: tuple[str | int, ...]) -> Expr:
        """The expression of segment ``name``, compiling it (and what it uses) once."""
        found = self._compiled.get(name)
        if found is not None:
            return found
        if name not in self._raw:
            known = ", ".join(sorted(self._raw)) or "none"
            raise FilterSyntaxError(path, f"no segment named '{name}' (known: {known})")
        if name in self._active:
            cycle = " -> ".join([*self._active[self._active.index(name) :], name])
            raise FilterSyntaxError(path, f"segments refer to each other in a cycle: {cycle}")
        self._active.append(name)
        try:
            expr = self.compile(self._raw[name], ("segments", name, "filter"))
        finally:
            self._active.pop()
        if name in self._consent:
            expr = And((expr, self._consent[name]))
        self._compiled[name] = expr
        return expr

    def compile(self, data: Any, path: tuple[str | int, ...]) -> Expr:
        if not isinstance(data, Mapping) or not data:
            raise FilterSyntaxError(path, "a filter is a non-empty mapping of conditions")
        parts: list[Expr] = []
        for key, given in data.items():
            where = (*path, key)
            if key in ("and", "or"):
                if not isinstance(given, list) or not given:
                    raise FilterSyntaxError(where, f"'{key}' takes a non-empty list of filters")
                items = tuple(self.compile(g, (*where, i)) for i, g in enumerate(given))
                parts.append(Or(items) if key == "or" else _and(items))
            elif key == "not":
                parts.append(Not(self.compile(given, where)))
            elif key == "segment":
                if not isinstance(given, str):
                    raise FilterSyntaxError(where, "'segment' takes a segment name")
                parts.append(self.segment(given, where))
            elif key in self.scalars:
                parts.append(FieldPred(key, _conds(given, self.scalars[key], where)))
            elif key in self.model.relations:
                parts.append(self._relation(key, given, where))
            else:
                known = ["and", "or", "not", "segment", *self.scalars, *self.model.relations]
                raise FilterSyntaxError(
                    where,
                    f"'{key}' is not a Customer field, metric or relation "
                    f"(known: {', '.join(known)})",
                )
        return _and(tuple(parts))

    def _relation(self, name: str, given: Any, path: tuple[str | int, ...]) -> RelationPred:
        rel = self.model.relations[name]
        if not isinstance(given, Mapping) or not given:
            raise FilterSyntaxError(path, f"expected {rel.entity} fields with operators")
        where: list[tuple[str, Cond]] = []
        for field, conds in given.items():
            spec = rel.fields.get(field)
            if spec is None:
                raise FilterSyntaxError(
                    (*path, field),
                    f"'{field}' is not a {rel.entity} field (known: {', '.join(rel.fields)})",
                )
            where.extend((field, c) for c in _conds(conds, spec.type, (*path, field)))
        return RelationPred(name, tuple(where))


def _and(items: tuple[Expr, ...]) -> Expr:
    return items[0] if len(items) == 1 else And(items)


def consent_condition(model: UnifiedModel) -> Expr | None:
    """What a customer must meet to be in a marketing segment (None: no consent field)."""
    spec = model.consent
    if spec is None:
        return None
    consents = FieldPred(spec.field, (Cond("eq", spec.meaning == "opt_in"),))
    if spec.unknown == "exclude":
        return consents
    return Or((consents, FieldPred(spec.field, (Cond("is_null", True),))))


def compile_segments(model: UnifiedModel) -> dict[str, Expr]:
    """Every segment of ``model`` compiled; raises :class:`FilterSyntaxError`."""
    consent = consent_condition(model)
    marketing: dict[str, Expr] = {}
    if consent is not None:
        marketing = {n: consent for n, s in model.segments.items() if s.purpose == "marketing"}
    raw = {n: s.filter for n, s in model.segments.items()}
    compiler = FilterCompiler(model, raw, marketing)
    return {name: compiler.segment(name, ("segments", name)) for name in model.segments}
