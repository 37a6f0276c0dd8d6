"""Identity-key normalisers: properties checked with hypothesis, and what each one
pushes down to a source (the lookup transform and values) re-checks to itself."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolvers.matching import normalize as m
from resolvers.normalize import (
    NORMALIZERS,
    external_id_lookup_values,
    gmail_lookup_values,
    normalize_email,
    normalize_external_id,
)

LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=2, max_size=12)
TEXT = st.text(max_size=40)
NAMES = st.text(alphabet=st.characters(categories=["L", "Zs", "Pd", "Po"]), max_size=30)


@pytest.mark.parametrize("kind", sorted(NORMALIZERS))
@given(value=TEXT)
def test_every_key_normaliser_is_idempotent(kind: str, value: str) -> None:
    normalize = NORMALIZERS[kind].normalize
    once = normalize(value, "GB", "US")
    assert once is None or normalize(once, "GB", "US") == once


@pytest.mark.parametrize("value", ["-\x1f0", " -\u20030", "ab-\t-12"])
def test_an_id_separator_between_whitespace_leaves_none_behind(value: str) -> None:
    once = normalize_external_id(value)
    assert once is not None and normalize_external_id(once) == once
    assert once.isalnum()


@pytest.mark.parametrize("kind", ["email", "email_provider", "external_id"])
@given(value=st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_case_and_surrounding_whitespace_do_not_matter(kind: str, value: str) -> None:
    # ASCII: emails and ids are lower-/upper-cased, not Unicode case-folded (ß stays ß)
    normalize = NORMALIZERS[kind].normalize
    assert normalize(f"  {value.upper()}\t", None, None) == normalize(value.lower(), None, None)


@given(local=LOCAL, cuts=st.sets(st.integers(1, 11), max_size=3), tag=LOCAL, google=st.booleans())
def test_gmail_dots_and_tags_name_one_inbox(
    local: str, cuts: set[int], tag: str, google: bool
) -> None:
    dotted = "".join(
        ("." if i in cuts and 0 < i < len(local) else "") + c for i, c in enumerate(local)
    )
    domain = "googlemail.com" if google else "Gmail.com"
    variant = f"{dotted}+{tag}@{domain}"
    key = normalize_email(variant, provider_rules=True)
    assert key == f"{local}@gmail.com"
    # without provider rules the spellings stay apart; other domains keep dots and tags
    assert normalize_email(variant) != key
    assert normalize_email(f"{dotted}+{tag}@example.com", provider_rules=True) == (
        f"{dotted}+{tag}@example.com"
    )


@given(local=LOCAL)
def test_gmail_lookup_values_re_check_to_the_key(local: str) -> None:
    key = f"{local}@gmail.com"
    sent = gmail_lookup_values(key)
    assert sent == (key, f"{local}@googlemail.com")
    assert NORMALIZERS["email_provider"].transform == "casefold"
    assert {normalize_email(v, provider_rules=True) for v in sent} == {key}


@given(
    parts=st.lists(st.text(alphabet="ABCDEFGHIJ0123456789", min_size=1, max_size=4), min_size=1),
    seps=st.lists(st.sampled_from([" ", "-", ".", "/", "_", ":"]), min_size=8, max_size=8),
)
def test_external_ids_ignore_separators_and_case(parts: list[str], seps: list[str]) -> None:
    written = "".join(p + seps[i % len(seps)] for i, p in enumerate(parts))
    key = normalize_external_id(written.lower())
    assert key == "".join(parts)
    # pushed down with the digits transform (separators stripped at the source),
    # in both cases, and whatever comes back is re-checked to the key
    assert NORMALIZERS["external_id"].transform == "digits"
    assert {normalize_external_id(v) for v in external_id_lookup_values(key)} == {key}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" ab-12 34/56 c ", "AB123456C"), ("123-45-6789", "123456789"), ("--", None), (None, None)],
)
def test_external_id_examples(raw: object, expected: str | None) -> None:
    assert normalize_external_id(raw) == expected


@pytest.mark.parametrize(
    "normalize", [m.given_name, m.surname, m.city, m.company, lambda v: m.street(v, "DE")]
)
@given(value=NAMES)
def test_names_and_places_ignore_unicode_form_case_and_spacing(
    normalize: object, value: str
) -> None:
    assert callable(normalize)
    nfc, nfd = unicodedata.normalize("NFC", value), unicodedata.normalize("NFD", value)
    assert normalize(nfc) == normalize(nfd) == normalize(f" {nfd.upper()}  ")
    once = normalize(value)
    assert once is None or normalize(once) == once
