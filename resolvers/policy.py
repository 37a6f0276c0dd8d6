"""The access policy: what each role may read of a customer, masked how, and which
customers at all.

One :class:`Policy` is built from the ``policy`` section of the settings and
gives each caller a :class:`Grant` (from its roles and attributes). Every
path that answers with customer data — the GraphQL resolvers
(:mod:`resolvers.governance`) and the exports (:mod:`resolvers.export`) —
asks the same grant, so no path shows what another hides.

- **Fields**: every Customer field (golden fields, metrics, relations) and
  every field of a related entity is ``allow``, ``deny`` or a declared
  masking function (``mask:email``, ``mask:phone``, ``mask:name``,
  ``mask:hash``). Denied fields answer null with a ``FORBIDDEN_FIELD`` error;
  masked fields answer the masked value. Filters and sorting need ``allow``
  (a filter on a hidden field would reveal it one guess at a time).
- **Rows**: rules such as ``country in principal.attributes.regions`` keep
  a caller to the customers whose golden value is among the attribute's
  comma-separated values. The rules of one role all hold (AND); a caller
  with several roles sees what any of them sees (OR). A caller without the
  attribute sees no customer: the policy fails closed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors import CustviewError
from resolvers.model import FieldType, UnifiedModel

Action = Literal["allow", "deny", "mask:email", "mask:phone", "mask:name", "mask:hash"]
MASKS = ("mask:email", "mask:phone", "mask:name", "mask:hash")
_RANK = {"allow": 0, "mask:name": 1, "mask:email": 1, "mask:phone": 1, "mask:hash": 2, "deny": 3}
_ROW_RULE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s+(in|==)\s+principal\.attributes\.([A-Za-z_][A-Za-z0-9_]*)\s*$"
)
STRUCTURAL = (
    "id", "sourceRecords", "provenance", "matchExplanation", "possibleDuplicates", "segments",
    "quality",
)  # fmt: skip
"""Customer fields every role reads; their contents follow the other fields' rules."""


class ForbiddenField(CustviewError):
    """The caller's roles may not read this field (or filter or sort by it)."""

    code = "FORBIDDEN_FIELD"


class AccessDenied(CustviewError):
    """The caller has no role the policy knows."""

    code = "FORBIDDEN"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleSpec(_Strict):
    description: str = ""
    default: Literal["allow", "deny"] = "allow"
    """For every field this role does not name."""
    fields: dict[str, Action] = Field(default_factory=dict)
    """Customer field (golden field, metric or relation) -> action."""
    entities: dict[str, dict[str, Action]] = Field(default_factory=dict)
    """Related entity type (``Ticket``) -> field -> action."""
    rows: list[str] = Field(default_factory=list)
    """Row rules, all of which must hold: ``<field> in principal.attributes.<name>``
    or ``<field> == principal.attributes.<name>``."""

    @field_validator("rows")
    @classmethod
    def _rules(cls, rules: list[str]) -> list[str]:
        for rule in rules:
            if not _ROW_RULE.match(rule):
                raise ValueError(
                    f"row rule '{rule}' is not of the form "
                    "'<field> in principal.attributes.<name>' (or '==')"
                )
        return rules


class PolicySpec(_Strict):
    roles: dict[str, RoleSpec] = Field(min_length=1)
    default_role: str | None = None
    """Role of callers none of whose roles is configured; none: they are refused."""
    hash_salt: SecretStr | None = None
    """Mixed into ``mask:hash`` so hashes cannot be looked up in a table of common
    values; from the environment (``${CUSTVIEW_HASH_SALT}``)."""


def check_policy(spec: PolicySpec, model: UnifiedModel) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of ``spec`` against ``model``, each with its key path under ``policy``."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    path: tuple[str | int, ...]
    types = customer_types(model)
    entities = {rel.entity: rel for rel in model.relations.values()}
    if spec.default_role is not None and spec.default_role not in spec.roles:
        problems.append(
            (("default_role",), f"'{spec.default_role}' is not a role under policy.roles")
        )
    for name, role in spec.roles.items():
        where = ("roles", name)
        for fname, action in role.fields.items():
            path = (*where, "fields", fname)
            if fname in STRUCTURAL or fname == "timeline":
                problems.append(
                    (
                        path,
                        f"'{fname}' is always readable; its contents follow "
                        "the rules of the fields it shows",
                    )
                )
            elif fname not in types:
                known = ", ".join(sorted(types))
                problems.append((path, f"'{fname}' is not a Customer field (known: {known})"))
            elif action.startswith("mask:") and types[fname] != "string":
                problems.append(
                    (
                        path,
                        f"{action} needs a string field; '{fname}' is "
                        f"{types[fname]}: use allow or deny",
                    )
                )
        for entity, rules in role.entities.items():
            rel = entities.get(entity)
            if rel is None:
                known = ", ".join(sorted(entities)) or "none"
                problems.append(
                    (
                        (*where, "entities", entity),
                        f"'{entity}' is not a related entity (known: {known})",
                    )
                )
                continue
            for fname, action in rules.items():
                path = (*where, "entities", entity, fname)
                spec_field = rel.fields.get(fname)
                if spec_field is None:
                    known = ", ".join(rel.fields)
                    problems.append((path, f"'{fname}' is not a field of {entity} ({known})"))
                elif action.startswith("mask:") and spec_field.type != "string":
                    problems.append(
                        (
                            path,
                            f"{action} needs a string field; '{fname}' is "
                            f"{spec_field.type}: use allow or deny",
                        )
                    )
        for i, rule in enumerate(role.rows):
            match = _ROW_RULE.match(rule)
            assert match is not None
            if match.group(1) not in model.customer.fields:
                problems.append(
                    (
                        (*where, "rows", i),
                        f"'{match.group(1)}' is not a golden "
                        "field of Customer; row rules compare golden fields",
                    )
                )
    return problems


def customer_types(model: UnifiedModel) -> dict[str, FieldType | Literal["relation"]]:
    """Every policy-governed Customer field and its type."""
    types: dict[str, FieldType | Literal["relation"]] = {
        n: f.type for n, f in model.customer.fields.items()
    }
    types |= {n: m.type for n, m in model.metrics.items()}
    types |= dict.fromkeys(model.relations, "relation")
    return types


# -- masking ------------------------------------------------------------


def mask(value: Any, action: str, salt: str = "") -> Any:
    """``value`` as ``action`` shows it; None stays None."""
    if value is None or action == "allow":
        return value
    text = str(value)
    if action == "mask:email":
        local, at, domain = text.partition("@")
        return f"{local[:1]}***@{domain}" if at else "***"
    if action == "mask:phone":
        digits = [c for c in text if c.isdigit()]
        return "***" + "".join(digits[-4:]) if len(digits) > 4 else "***"
    if action == "mask:name":
        return " ".join(f"{part[:1]}***" for part in text.split()) or "***"
    if action == "mask:hash":
        return "sha256:" + hashlib.sha256((salt + text).encode()).hexdigest()
    return None


# -- grants -------------------------------------------------------------


def _frozen(entities: dict[str, dict[str, str]]) -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType({e: MappingProxyType(fields) for e, fields in entities.items()})


@dataclass(frozen=True, slots=True)
class RowRule:
    field: str
    values: frozenset[str]
    """The attribute's values; empty when the caller lacks it (no customer matches)."""

    def admits(self, golden: Mapping[str, Any]) -> bool:
        value = golden.get(self.field)
        return value is not None and str(value) in self.values


@dataclass(frozen=True)
class Grant:
    """What one caller may read; ``rows`` None means every customer."""

    roles: tuple[str, ...]
    customer: Mapping[str, str]
    entities: Mapping[str, Mapping[str, str]]
    rows: tuple[tuple[RowRule, ...], ...] | None = None
    """Alternatives (one per role with rules), each a conjunction of rules."""
    salt: str = ""
    full: bool = False
    """Everything allowed, no row rules (no policy configured, or an admin role)."""

    @classmethod
    def everything(cls, roles: Iterable[str] = ()) -> Grant:
        return cls(tuple(roles), {}, {}, None, "", True)

    def action(self, name: str) -> str:
        """The action for Customer field ``name``."""
        if self.full or name in STRUCTURAL or name == "timeline":
            return "allow"
        return self.customer.get(name, "deny")

    def entity_action(self, entity: str, name: str) -> str:
        if self.full:
            return "allow"
        return self.entities.get(entity, {}).get(name, "deny")

    def admits(self, golden: Mapping[str, Any]) -> bool:
        """Whether the row rules let this caller see a customer with these golden values."""
        if self.rows is None:
            return True
        return any(all(rule.admits(golden) for rule in alt) for alt in self.rows)

    def masked(self, name: str, value: Any) -> Any:
        """A Customer field's value as this caller sees it (None when denied)."""
        action = self.action(name)
        if action == "deny":
            return None
        return mask(value, action, self.salt)

    def masked_entity(self, entity: str, name: str, value: Any) -> Any:
        action = self.entity_action(entity, name)
        if action == "deny":
            return None
        return mask(value, action, self.salt)


class Policy:
    """The configured policy; ``None`` spec: no policy, every caller reads everything."""

    def __init__(self, spec: PolicySpec | None, model: UnifiedModel) -> None:
        self.spec = spec
        self.model = model
        self._types = customer_types(model)
        self._entities = {rel.entity: rel for rel in model.relations.values()}
        self._salt = spec.hash_salt.get_secret_value() if spec and spec.hash_salt else ""
        self._by_roles: dict[
            tuple[str, ...], tuple[Mapping[str, str], Mapping[str, Mapping[str, str]]]
        ] = {}
        self._grants: dict[frozenset[str], Grant] = {}
        """The grant of a caller's roles when no row rule reads its attributes."""

    @property
    def enabled(self) -> bool:
        return self.spec is not None

    def roles_of(self, roles: Iterable[str]) -> list[str]:
        """The configured roles among ``roles`` (else the default role); refuses none."""
        assert self.spec is not None
        known = sorted(r for r in roles if r in self.spec.roles)
        if not known and self.spec.default_role:
            known = [self.spec.default_role]
        if not known:
            raise AccessDenied("none of your roles is in the access policy; ask for a role that is")
        return known

    def grant(self, roles: Iterable[str], attributes: Mapping[str, Any] | None = None) -> Grant:
        """What a caller with ``roles`` and ``attributes`` may read. Every request
        asks: a grant that its attributes do not change (one of the roles reads
        every row) is made once per set of roles (grants are immutable)."""
        if self.spec is None:
            return Grant.everything(roles)
        key = roles if isinstance(roles, frozenset) else None
        if key is not None:
            known = self._grants.get(key)
            if known is not None:
                return known
        grant = self._grant(roles, attributes)
        if key is not None and grant.rows is None:
            if len(self._grants) >= _GRANTS_KEPT:  # role sets come from tokens too
                self._grants.clear()
            self._grants[key] = grant
        return grant

    def _grant(self, roles: Iterable[str], attributes: Mapping[str, Any] | None) -> Grant:
        assert self.spec is not None
        names = self.roles_of(roles)
        specs = [self.spec.roles[n] for n in names]
        customer, entities = self._actions(tuple(names))
        rows: tuple[tuple[RowRule, ...], ...] | None = ()
        for spec in specs:
            if not spec.rows:
                rows = None
                break
            assert rows is not None
            rows += (tuple(_rule(r, attributes or {}) for r in spec.rows),)
        full = rows is None and all(a == "allow" for a in customer.values())
        full = full and all(a == "allow" for e in entities.values() for a in e.values())
        return Grant(tuple(names), customer, entities, rows, self._salt, full)

    def _actions(
        self, names: tuple[str, ...]
    ) -> tuple[Mapping[str, str], Mapping[str, Mapping[str, str]]]:
        """The strictest action of ``names`` per Customer field and per entity field:
        worked out once per set of roles (every request asks; grants only read them)."""
        found = self._by_roles.get(names)
        if found is None:
            assert self.spec is not None
            specs = [self.spec.roles[n] for n in names]
            customer = {
                f: min((self._field(s, f) for s in specs), key=_RANK.__getitem__)
                for f in self._types
            }
            entities = {
                e: {
                    f: min((self._entity_field(s, e, f) for s in specs), key=_RANK.__getitem__)
                    for f in rel.fields
                }
                for e, rel in self._entities.items()
            }
            found = self._by_roles[names] = (MappingProxyType(customer), _frozen(entities))
        return found

    def _field(self, role: RoleSpec, name: str) -> str:
        return role.fields.get(name, role.default)

    def _entity_field(self, role: RoleSpec, entity: str, name: str) -> str:
        relation = next(n for n, r in self.model.relations.items() if r.entity == entity)
        if self._field(role, relation) == "deny":
            return "deny"
        return role.entities.get(entity, {}).get(name, role.default)

    def explain(self, role: str) -> dict[str, Any]:
        """What ``role`` can see: every field with its action, and its row rules."""
        assert self.spec is not None
        spec = self.spec.roles[role]
        grant = self.grant([role])
        return {
            "role": role,
            "description": spec.description,
            "customer": {name: grant.action(name) for name in self._types},
            "entities": {
                e: {f: grant.entity_action(e, f) for f in rel.fields}
                for e, rel in self._entities.items()
            },
            "rows": list(spec.rows) or ["every customer"],
        }


_GRANTS_KEPT = 256
"""Sets of roles whose grant a policy keeps (then it starts over)."""


def _rule(text: str, attributes: Mapping[str, Any]) -> RowRule:
    match = _ROW_RULE.match(text)
    assert match is not None
    field_name, op, attribute = match.groups()
    raw = attributes.get(attribute)
    if raw is None:
        return RowRule(field_name, frozenset())
    items = raw if isinstance(raw, list | tuple) else [raw]
    values = [str(v).strip() for item in items for v in str(item).split(",")]
    if op == "==":
        values = values[:1]
    return RowRule(field_name, frozenset(v for v in values if v))
