"""What an error may show of a source's credentials: every form a driver quotes a
secret in is hidden, and plain values that merely sit near one are not."""

from __future__ import annotations

import pytest

from connectors.redaction import (
    credential_header,
    dsn_secrets,
    redact,
    secret_header,
    secrets_pattern,
    url_secrets,
)


def test_a_secret_is_hidden_as_a_bytes_repr_quotes_it() -> None:
    """httpx/h11 quote an illegal header value as bytes: ``ö`` as ``\\xc3\\xb6``."""
    token = "BadBearerTök\n"
    message = f"Illegal header value {('Bearer ' + token).encode()!r}"
    assert "BadBearerT" in message
    assert "BadBearerT" not in redact(message, [token])


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        # a base64 key as httpx sends it in a query string, quoted without its URL
        ("Tök/en+Key==", "GET /v1/people?api_key=T%C3%B6k%2Fen%2BKey%3D%3D failed"),
        # a form body (an OAuth client secret) as an error may echo it
        ("s3cret with blanks", "invalid client: client_secret=s3cret+with+blanks"),
        ("s3cret with blanks", "bad path /keys/s3cret%20with%20blanks"),
    ],
)
def test_a_secret_is_hidden_percent_encoded_outside_any_url(secret: str, message: str) -> None:
    """Not only a URL's own password: any secret, as a URL or a form carries it."""
    assert redact(message, [secret]).count("***") == 1
    assert "Key%3D" not in redact(message, [secret]) and "s3cret" not in redact(message, [secret])


@pytest.mark.parametrize(
    ("secrets", "message", "hidden"),
    [
        # the shorter starts first: found alone it would leave the longer one's tail
        (["AKIA1234", "1234wxyzSECRETVALUE"], "sig=AKIA1234wxyzSECRETVALUE", "sig=***"),
        (["abcd", "cdefghijkl"], "token=abcdefghijkl end", "token=*** end"),
        # the longer starts first: the shorter's tail after it goes too
        (["wxyz5678", "AKIA1234wxyz"], "AKIA1234wxyz5678!", "***!"),
        (["hunter22"], "a hunter22 b hunter22", "a *** b ***"),
    ],
)
def test_overlapping_secrets_are_hidden_whole(
    secrets: list[str], message: str, hidden: str
) -> None:
    assert redact(message, secrets) == hidden


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("é", "city=Montr%C3%A9al"),  # its percent-encoded form is 6 characters
        ("//", "next=https%3A%2F%2Fshop.example%2Fcart"),
        ("a b", "q=a%20b&r=a+b"),
        ("\n", "path C:\\new"),
    ],
)
def test_a_secret_shorter_than_four_characters_is_not_looked_for_in_any_form(
    secret: str, message: str
) -> None:
    """As documented: a one- to three-character value would blank ordinary text."""
    assert redact(message, [secret]) == message


def test_the_same_secrets_are_made_into_one_search_once() -> None:
    """Every failed source call is described with its secrets: not rebuilt each time."""
    secrets = ["Hunter2Secret", "postgresql://u:Hunter2Secret@h/db"]
    assert secrets_pattern(secrets) is secrets_pattern(list(secrets))
    assert secrets_pattern(["abc"]) is None


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://h/db?password=Hunter2Secret",
        "postgresql://h/db?sslpassword=Hunter2Secret",
        "https://h/api?access_token=Hunter2Secret",
        "https://h/api?api_key=Hunter2Secret",
        "https://h/api?apikey=Hunter2Secret",
        "https://h/api?key=Hunter2Secret",
        "mysql://h/db?pwd=Hunter2Secret",
    ],
)
def test_a_credential_in_the_query_string_is_a_secret(url: str) -> None:
    assert "Hunter2Secret" in url_secrets(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://registry.local/v1?bypass_cache=true&tokens_per_page=1000",
        "postgresql://h/db?passfile=/etc/custview/pgpass&sort_key=name",
    ],
)
def test_plain_parameters_near_credential_words_are_not_secrets(url: str) -> None:
    """Over-redaction hides what an operator needs: ``customer 1000 not found``."""
    assert url_secrets(url) == []
    assert redact("HTTP 404: customer 1000 not found; flag true", url_secrets(url)) == (
        "HTTP 404: customer 1000 not found; flag true"
    )


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("Authorization", True),
        ("X-API-Key", True),
        ("X-Api-Pass", True),
        ("X-Credential", True),
        ("X-Signature", True),
        ("X-Pwd", True),
        ("Accept", False),
        ("X-Api-Version", False),
    ],
)
def test_credential_headers_are_named_so(name: str, credential: bool) -> None:
    assert credential_header(name) is credential


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("X-Token", True),
        ("X-Tenant", True),
        ("X-Partner-Id", True),
        ("X-Token-Version", True),
        ("Accept", False),
        ("accept-language", False),
        ("User-Agent", False),
        ("Content-Type", False),
        ("X-Api-Version", False),
        ("Stripe-Version", False),
    ],
)
def test_every_header_but_the_plain_ones_is_secret(name: str, secret: bool) -> None:
    assert secret_header(name) is secret


@pytest.mark.parametrize(
    ("dsn", "secrets"),
    [
        ("host=db password=Hunter2Secret dbname=crm", ["Hunter2Secret"]),
        ("host=db password = 'Hunter 2\\'s' port=5432", ["'Hunter 2\\'s'", "Hunter 2's"]),
        ("Server=db;Uid=u;PWD={Hunter;2};", ["{Hunter;2}", "Hunter;2"]),
        ("host=db sslpassword=Hunter2Secret", ["Hunter2Secret"]),
        ("host=db sslmode=require keyfile=/etc/k tokens_per_page=5", []),
        ("postgresql://h/db?password=Hunter2Secret", []),  # a URL: url_secrets reads it
        ("plain text", []),
    ],
)
def test_a_key_value_connection_strings_credentials_and_nothing_else(
    dsn: str, secrets: list[str]
) -> None:
    assert dsn_secrets(dsn) == secrets
