"""Authentication at the edge: API keys (stored hashed) and JWT bearer tokens.

A request becomes a :class:`Principal` (name, roles, scopes, attributes such
as region) or is refused with ``401`` before it reaches the resolvers. The
principal travels in the GraphQL context and scopes the source cache, so one
caller's cached view is never served to another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from connectors import CustviewError

KEY_PREFIX = "sha256:"


class AuthError(CustviewError):
    code = "UNAUTHENTICATED"


def hash_key(key: str) -> str:
    """How an API key is stored in the settings file: ``sha256:<hex>``."""
    return KEY_PREFIX + hashlib.sha256(key.encode()).hexdigest()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ApiKeySettings(_Strict):
    name: str
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    """``sha256:<hex>`` of the key (``custview hash-key`` prints it); never the key."""
    roles: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)


class JwtSettings(_Strict):
    algorithms: list[Literal["HS256", "HS384", "HS512", "RS256", "ES256"]] = ["HS256"]
    secret: SecretStr | None = None
    """Shared secret for HS* algorithms; from the environment (``${JWT_SECRET}``)."""
    public_key_file: Path | None = None
    """PEM public key for RS256/ES256."""
    jwks_file: Path | None = None
    """A JWKS document (keys picked by ``kid``)."""
    issuer: str | None = None
    audience: str | None = None
    roles_claim: str = "roles"
    scopes_claim: str = "scope"
    attribute_claims: list[str] = Field(default_factory=list)
    """Claims copied into the principal's attributes (e.g. ``region``)."""

    @model_validator(mode="after")
    def _keys(self) -> JwtSettings:
        if not (self.secret or self.public_key_file or self.jwks_file):
            raise ValueError("give a secret (HS256), a public_key_file or a jwks_file")
        return self


class AuthSettings(_Strict):
    mode: Literal["required", "optional", "disabled"] = "required"
    """``required``: anonymous requests get 401; ``optional``: anonymous callers get
    ``anonymous_roles``; ``disabled``: every caller is anonymous (trusted local use)."""
    api_keys: list[ApiKeySettings] = Field(default_factory=list)
    jwt: JwtSettings | None = None
    anonymous_roles: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _usable(self) -> AuthSettings:
        if self.mode != "disabled" and not self.api_keys and self.jwt is None:
            raise ValueError(
                f"auth.mode is '{self.mode}' but no api_keys or jwt are configured; add one, "
                "or set mode: disabled for a trusted local setup"
            )
        return self


@dataclass(frozen=True)
class Principal:
    name: str
    method: Literal["api_key", "jwt", "anonymous"]
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    attributes: dict[str, str] = field(default_factory=dict)

    def cache_scope(self) -> str:
        """What distinguishes this caller's view: roles and attributes, not the name.

        A digest of their canonical spelling (the ``repr`` of their sorted tuples, which
        quotes and escapes every string): two callers share it only when their roles
        and attributes are equal (no separator inside a role or a value can make two
        sets spell the same), and it is short and says nothing of the attributes. Asked
        once a request: ``repr`` is C, where ``json.dumps`` took about twice as long.
        """
        canonical = repr((tuple(sorted(self.roles)), tuple(sorted(self.attributes.items()))))
        return "scope:" + hashlib.sha256(canonical.encode()).hexdigest()


class Authenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._jwks: jwt.PyJWKSet | None = None
        self._public_key: str | None = None
        if settings.jwt and settings.jwt.jwks_file:
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(settings.jwt.jwks_file.read_text()))
        if settings.jwt and settings.jwt.public_key_file:
            self._public_key = settings.jwt.public_key_file.read_text()

    def anonymous(self) -> Principal:
        return Principal("anonymous", "anonymous", frozenset(self.settings.anonymous_roles))

    def authenticate(self, headers: Any) -> Principal:
        """The caller of a request with these headers; :class:`AuthError` if refused."""
        if self.settings.mode == "disabled":
            return self.anonymous()
        token = headers.get("x-api-key")
        authorization = headers.get("authorization", "")
        if token is None and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        if not token:
            if self.settings.mode == "optional":
                return self.anonymous()
            raise AuthError("authentication required: send X-API-Key or Authorization: Bearer")
        if token.count(".") == 2 and self.settings.jwt is not None:
            return self._jwt(token)
        return self._api_key(token)

    def _api_key(self, key: str) -> Principal:
        digest = hash_key(key)
        for entry in self.settings.api_keys:
            if hmac.compare_digest(entry.hash, digest):
                return Principal(
                    entry.name, "api_key", frozenset(entry.roles), frozenset(entry.scopes),
                    dict(entry.attributes),
                )  # fmt: skip
        raise AuthError("unknown API key")

    def _jwt(self, token: str) -> Principal:
        spec = self.settings.jwt
        assert spec is not None
        try:
            key: Any
            if self._jwks is not None:
                kid = jwt.get_unverified_header(token).get("kid")
                key = next(k.key for k in self._jwks.keys if k.key_id == kid)
            elif self._public_key is not None and not jwt.get_unverified_header(token).get(
                "alg", ""
            ).startswith("HS"):
                key = self._public_key
            else:
                key = spec.secret.get_secret_value() if spec.secret else ""
            claims = jwt.decode(
                token,
                key,
                algorithms=list(spec.algorithms),
                audience=spec.audience,
                issuer=spec.issuer,
                options={"require": ["exp", "sub"]},
            )
        except StopIteration:
            raise AuthError("the token's key id is not in the JWKS document") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        roles = _names(claims, spec.roles_claim)
        scopes = _names(claims, spec.scopes_claim)
        attributes = {c: str(claims[c]) for c in spec.attribute_claims if c in claims}
        return Principal(str(claims["sub"]), "jwt", roles, scopes, attributes)


def _names(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """A roles or scopes claim: a list of strings, or one space-separated string."""
    value = claims.get(claim) or []
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return frozenset(value)
    raise AuthError(
        f"invalid token: the {claim!r} claim must be a list of strings or a space-separated"
        " string; ask the identity provider to send it so"
    )
