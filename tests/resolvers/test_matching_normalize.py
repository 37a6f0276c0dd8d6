"""The matching normalisers: examples, and properties checked with hypothesis."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.demodata.words import NICKNAMES
from resolvers.matching import normalize as n

COUNTRIES = st.sampled_from([None, "US", "GB", "DE", "FR", "CA", "AU"])
TEXT = st.text(max_size=40)
NAMES = st.text(alphabet=st.characters(categories=["L", "Zs", "Pd", "Po"]), max_size=30)

# Nicknames the demo generator uses that cannot map to one name: a shared short
# form of two different names (Sam: Samuel/Samantha) goes to the commoner one.
AMBIGUOUS = {
    ("Samantha", "Sam"),
    ("Samantha", "Sammy"),
    ("Jonathan", "Johnny"),
    ("Christine", "Chris"),
    ("Christina", "Chris"),
    ("Alexandra", "Alex"),
    ("Alexandra", "Sandra"),
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" J.Smith+shop@GoogleMail.com", "jsmith@gmail.com"),
        ("john.smith@gmail.com", "johnsmith@gmail.com"),
        ("John.Smith+news@Example.COM ", "john.smith+news@example.com"),
        ("nobody", None),
        ("a b@example.com", None),
        ("+tag@gmail.com", None),
        (None, None),
        (42, None),
    ],
)
def test_email_examples(raw: object, expected: str | None) -> None:
    assert n.email(raw) == expected


def test_email_options() -> None:
    assert n.email("a.b+x@gmail.com", provider_rules=False) == "a.b+x@gmail.com"
    assert n.email("a.b+x@example.com", plus_tags=True) == "a.b@example.com"


@given(TEXT, st.booleans(), st.booleans())
def test_email_idempotent(raw: str, provider: bool, plus: bool) -> None:
    once = n.email(raw, provider, plus)
    assert n.email(once, provider, plus) == once


@given(st.emails())
def test_email_case_and_whitespace_invariant(address: str) -> None:
    assert n.email(f"  {address.upper()}\t") == n.email(address.lower())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bobby ", "robert"),
        ("ROB", "robert"),
        ("Cathy", "katherine"),
        ("Catherine", "katherine"),
        ("Jean-Pierre", "jean pierre"),
        ("Frédéric", "frederick"),
        ("Zoë", "zoe"),
        ("Hans", "johannes"),
        ("Sepp", "josef"),
        ("Steve", "steven"),
        ("Stephen", "steven"),
        ("Bob J.", "robert j"),
        ("  ", None),
    ],
)
def test_given_name_examples(raw: str, expected: str | None) -> None:
    assert n.given_name(raw) == expected


def test_every_generator_nickname_is_canonicalised() -> None:
    for full, nicks in NICKNAMES.items():
        for nick in nicks:
            if (full, nick) not in AMBIGUOUS:
                assert n.given_name(nick) == n.given_name(full), (full, nick)


def test_nickname_table_is_symmetric_and_closed() -> None:
    table = n.nicknames()
    for variant, canonical in table.items():
        assert n.given_name(variant) == n.given_name(canonical) == canonical
        assert canonical not in table


@given(NAMES)
def test_name_normalisers_idempotent(raw: str) -> None:
    for normalise in (n.given_name, n.surname, n.city):
        once = normalise(raw)
        assert normalise(once) == once


@given(NAMES)
def test_names_case_and_whitespace_invariant(raw: str) -> None:
    for normalise in (n.given_name, n.surname):
        assert normalise(f" {raw.upper()}  ") == normalise(raw.lower())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("O'Brien", "obrien"),
        ("Müller", "muller"),
        ("Weiß", "weiss"),
        ("Smith-Jones", "smith jones"),
    ],
)
def test_surname_examples(raw: str, expected: str) -> None:
    assert n.surname(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Smith, Bob", ("robert", "smith")),
        ("mary ann smith", ("mary", "smith")),
        ("Ludwig van Beethoven", ("ludwig", "van beethoven")),
        ("Hans", ("johannes", None)),
        ("", (None, None)),
    ],
)
def test_full_name(raw: str, expected: tuple[str | None, str | None]) -> None:
    assert n.full_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("12 Station Rd.", "GB", "12 station road"),
        ("12 station road", "GB", "12 station road"),
        ("1566 Station Blvd", "US", "1566 station boulevard"),
        ("55 Main St", "US", "55 main street"),
        ("55 Main Street", "US", "55 main street"),
        ("7 Oak Ave", "US", "7 oak avenue"),
        ("9 Elm Ln", "US", "9 elm lane"),
        ("3 Dr Martin Luther King Jr Blvd", "US", "3 doctor martin luther king jr boulevard"),
        ("Hauptstr. 5", "DE", "hauptstrasse 5"),
        ("Hauptstraße 5", "DE", "hauptstrasse 5"),
        ("12 R. St Michel", "FR", "12 rue saint michel"),
        ("4 Av. Victor Hugo", "FR", "4 avenue victor hugo"),
        ("4 all. des Lilas", "FR", "4 allee des lilas"),
    ],
)
def test_street_examples(raw: str, country: str, expected: str) -> None:
    assert n.street(raw, country) == expected


@given(TEXT, COUNTRIES)
def test_street_idempotent(raw: str, country: str | None) -> None:
    once = n.street(raw, country)
    assert n.street(once, country) == once


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("sw1a1aa", "GB", "SW1A 1AA"),
        ("SW1A  1AA", "GB", "SW1A 1AA"),
        ("k1a0b1", "CA", "K1A 0B1"),
        ("2134", "US", "02134"),
        ("10001-1234", "US", "10001"),
        (8000, "AU", "8000"),
        ("800", "AU", "0800"),
        ("04109", "DE", "04109"),
        ("abc 1", "US", "ABC 1"),
        ("", "US", None),
    ],
)
def test_postcode_examples(raw: object, country: str, expected: str | None) -> None:
    assert n.postcode(raw, country) == expected


@given(TEXT, COUNTRIES)
def test_postcode_idempotent_and_case_invariant(raw: str, country: str | None) -> None:
    once = n.postcode(raw, country)
    assert n.postcode(once, country) == once
    assert n.postcode(f" {raw.lower()} ", country) == n.postcode(raw.upper(), country)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1980-01-31", "1980-01-31"),
        ("1980-01-31T10:00:00", "1980-01-31"),
        ("19800131", "1980-01-31"),
        ("31.01.1980", "1980-01-31"),
        ("01/31/1980", "1980-01-31"),
        ("31/01/1980", "1980-01-31"),
        ("02/03/1980", "1980-02-03"),
        ("31 Jan 1980", "1980-01-31"),
        ("January 31, 1980", "1980-01-31"),
        (date(1980, 1, 31), "1980-01-31"),
        (datetime(1980, 1, 31, 5), "1980-01-31"),
        ("1980-02-30", None),
        ("soon", None),
    ],
)
def test_birth_date_examples(raw: object, expected: str | None) -> None:
    assert n.birth_date(raw) == expected


def test_birth_date_dayfirst() -> None:
    assert n.birth_date("02/03/1980", dayfirst=True) == "1980-03-02"


@given(st.dates())
def test_birth_date_round_trips_dates(value: date) -> None:
    for text in (value.isoformat(), value.strftime("%d.%m.%Y")):
        if value.year >= 1000:
            assert n.birth_date(text) == value.isoformat()


@given(TEXT)
def test_birth_date_idempotent(raw: str) -> None:
    once = n.birth_date(raw)
    assert n.birth_date(once) == once


def test_phone_and_country() -> None:
    assert n.phone("(479) 536-0576") == "+14795360576"
    assert n.phone("020 7946 0018", "en-GB") == "+442079460018"
    assert n.country("en-GB") == "GB"
    assert n.country("en") is None
