"""Authentication: API keys stored hashed, JWTs (HS256, RS256 from a PEM file,
ES256 from a JWKS document) with issuer, audience and expiry checked."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from connectors.cache import CacheOptions, CachingConnector, cache_scope
from connectors.cache_store import create_cache
from connectors.sql import SQLConnector, SQLOptions
from gateway.auth import Authenticator, AuthError, AuthSettings, Principal, hash_key

SECRET = "s" * 32


def settings(**values: Any) -> AuthSettings:
    return AuthSettings.model_validate(values)


def token(
    key: Any, alg: str = "HS256", headers: dict[str, str] | None = None, **claims: Any
) -> str:
    body = {"sub": "ana", "exp": int(time.time()) + 60, "iss": "idp", "aud": "custview", **claims}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def test_api_keys_are_compared_by_hash_and_carry_roles() -> None:
    auth = Authenticator(
        settings(api_keys=[{"name": "bi", "hash": hash_key("k1"), "roles": ["analyst"],
                            "attributes": {"region": "EU"}}])
    )  # fmt: skip
    principal = auth.authenticate({"x-api-key": "k1"})
    assert (principal.name, principal.method, principal.roles) == ("bi", "api_key", {"analyst"})
    assert principal.attributes == {"region": "EU"}
    assert auth.authenticate({"authorization": "Bearer k1"}).name == "bi"
    with pytest.raises(AuthError, match="unknown API key"):
        auth.authenticate({"x-api-key": "k2"})
    with pytest.raises(AuthError, match="authentication required"):
        auth.authenticate({})


def test_hs256_tokens_check_expiry_issuer_and_audience() -> None:
    auth = Authenticator(
        settings(jwt={"secret": SECRET, "issuer": "idp", "audience": "custview",
                      "attribute_claims": ["region"]})
    )  # fmt: skip
    signed = token(SECRET, roles=["support"], region="EU", scope="read export")
    ok = auth.authenticate({"authorization": f"Bearer {signed}"})
    assert (ok.name, ok.roles, ok.scopes) == ("ana", {"support"}, {"read", "export"})
    assert ok.attributes == {"region": "EU"}
    for bad in (
        token(SECRET, exp=int(time.time()) - 5),
        token(SECRET, aud="someone-else"),
        token(SECRET, iss="evil"),
        token("x" * 32),
    ):
        with pytest.raises(AuthError, match="invalid token"):
            auth.authenticate({"authorization": f"Bearer {bad}"})


def test_a_roles_claim_is_a_list_or_a_space_separated_string() -> None:
    auth = Authenticator(settings(jwt={"secret": SECRET, "issuer": "idp", "audience": "custview"}))

    def roles(value: Any) -> frozenset[str]:
        signed = token(SECRET, roles=value)
        return auth.authenticate({"authorization": f"Bearer {signed}"}).roles

    assert roles(["support", "analyst"]) == {"support", "analyst"}
    # one role as a string is that role, not its letters
    assert roles("admin") == {"admin"}
    assert roles("steward analyst") == {"steward", "analyst"}
    assert roles(None) == frozenset()
    for bad in (5, {"admin": True}, ["admin", 7]):
        # refused as an invalid token (401), never a server error
        with pytest.raises(AuthError, match="'roles' claim must be a list of strings"):
            roles(bad)


def test_rs256_from_a_pem_file(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    auth = Authenticator(
        settings(jwt={"algorithms": ["RS256"], "public_key_file": str(tmp_path / "pub.pem"),
                      "audience": "custview"})
    )  # fmt: skip
    assert auth.authenticate({"authorization": f"Bearer {token(private, 'RS256')}"}).name == "ana"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(AuthError):
        auth.authenticate({"authorization": f"Bearer {token(other, 'RS256')}"})


def test_es256_from_a_jwks_document(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    (tmp_path / "jwks.json").write_text(
        json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256"}]})
    )
    auth = Authenticator(
        settings(jwt={"algorithms": ["ES256"], "jwks_file": str(tmp_path / "jwks.json"),
                      "audience": "custview"})
    )  # fmt: skip
    good = token(private, "ES256", headers={"kid": "k1"})
    assert auth.authenticate({"authorization": f"Bearer {good}"}).method == "jwt"
    with pytest.raises(AuthError, match="key id"):
        auth.authenticate(
            {"authorization": f"Bearer {token(private, 'ES256', headers={'kid': 'k9'})}"}
        )


def test_settings_refuse_a_required_mode_without_any_method() -> None:
    with pytest.raises(ValueError, match="no api_keys or jwt"):
        settings(mode="required")
    assert Authenticator(settings(mode="disabled")).authenticate({}).method == "anonymous"
    optional = Authenticator(settings(mode="optional", anonymous_roles=["public"],
                                      api_keys=[{"name": "a", "hash": hash_key("k")}]))  # fmt: skip
    assert optional.authenticate({}).roles == {"public"}


# Pairs of callers whose roles or attributes spelled the same scope when they were
# joined with ',', ';' and '=' unescaped; each pair may see different rows.
LOOKALIKES = [
    (Principal("x", "api_key", frozenset({"a,b"})), Principal("x", "api_key", frozenset("ab"))),
    (
        Principal("x", "jwt", attributes={"region": "EU,team=red"}),
        Principal("x", "jwt", attributes={"region": "EU", "team": "red"}),
    ),
    (
        Principal("x", "jwt", attributes={"k=v": "w"}),
        Principal("x", "jwt", attributes={"k": "v=w"}),
    ),
]


@pytest.mark.parametrize(("one", "other"), LOOKALIKES)
def test_callers_with_other_roles_or_attributes_never_share_a_cache_scope(
    one: Principal, other: Principal
) -> None:
    assert one.cache_scope() != other.cache_scope()


def test_a_cache_scope_is_the_same_for_the_same_access_and_tells_nothing() -> None:
    one = Principal("ana", "api_key", frozenset({"b", "a"}), attributes={"region": "EU", "t": "1"})
    same = Principal("bo", "jwt", frozenset({"a", "b"}), attributes={"t": "1", "region": "EU"})
    assert one.cache_scope() == same.cache_scope(), "the name and the order do not matter"
    assert "EU" not in one.cache_scope() and len(one.cache_scope()) < 100


async def test_a_row_cached_for_one_caller_is_not_served_to_a_lookalike(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO items VALUES (1, 'one')")
        db.commit()
    source = SQLConnector("crm", SQLOptions(url=f"sqlite+aiosqlite:///{path}"))
    cache = create_cache("memory", "redis://127.0.0.1:6379/0", "custview-test-auth")
    connector = CachingConnector(source, CacheOptions(ttl=60.0), cache)
    one, other = LOOKALIKES[0]
    try:
        for principal in (one, one, other):
            token = cache_scope.set(principal.cache_scope())
            try:
                await connector.lookup_many("items", "id", [1], ["id", "name"])
            finally:
                cache_scope.reset(token)
        assert connector.statements == 2, "the second caller's lookup went to the source"
    finally:
        await connector.aclose()
        await cache.clear()
