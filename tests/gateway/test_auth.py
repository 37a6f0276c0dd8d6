"""Authentication: API keys stored hashed, JWTs (HS256, RS256 from a PEM file,
ES256 from a JWKS document) with issuer, audience and expiry checked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.auth import Authenticator, AuthError, AuthSettings, hash_key

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
