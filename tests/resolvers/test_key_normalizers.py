"""Identity-key normalisers: properties checked with hypothesis, and what each one
pushes down to a source (the lookup transform and values) re-checks to itself."""

from __future__ import annotations

import sqlite3
import unicodedata
from itertools import pairwise
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from resolvers.matching import normalize as m
from resolvers.normalize import (
    NORMALIZERS,
    _international,
    _nanp,
    _national,
    _parse_phone,
    external_id_lookup_values,
    gmail_lookup_values,
    iso_region,
    normalize_email,
    normalize_external_id,
    normalize_phone,
    normalize_phones,
    phone_digit_variants,
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


def _phonenumbers_only(value: str, region: str | None, default: str | None) -> str | None:
    """:func:`normalize_phone` as phonenumbers alone answers it (no shortcut, no cache)."""
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    return _parse_phone.__wrapped__(text, iso_region(region) or iso_region(default))


REGIONS = st.sampled_from(
    [None, "US", "CA", "en-US", "fr_CA", "US", "CA", "GB", "FR", "DE", "MX", "JM", "en"]
)


def _digits(size: int) -> st.SearchStrategy[str]:
    """``size`` digits mostly, sometimes one more or fewer (near misses)."""
    exact = st.text(alphabet="0123456789", min_size=size, max_size=size)
    near = st.text(alphabet="0123456789", min_size=size - 1, max_size=size + 1)
    return st.one_of(exact, exact, exact, near)


SEPARATOR = st.sampled_from(["", " ", "-", ".", "  ", "/"])


@settings(max_examples=500)
@given(
    prefix=st.sampled_from(
        ["", "", "+1", "+1 ", "+1-", "+1.", "1", "1-", "+", "+44 ", "001 ", "011"]
    ),
    area=_digits(3),
    bracket=st.booleans(),
    parts=st.tuples(SEPARATOR, _digits(3), SEPARATOR, _digits(4)),
    region=REGIONS,
    default=st.sampled_from([None, "US", "GB"]),
    padding=st.sampled_from(["", " ", "\t"]),
)
def test_north_american_phones_read_without_phonenumbers_as_phonenumbers_reads_them(
    prefix: str,
    area: str,
    bracket: bool,
    parts: tuple[str, str, str, str],
    region: str | None,
    default: str | None,
    padding: str,
) -> None:
    # the spellings of the shortcut, and near misses of them (short or long groups,
    # an area code starting 0 or 1, other separators and prefixes)
    sep1, exchange, sep2, line = parts
    area_code = f"({area})" if bracket else area
    value = f"{padding}{prefix}{area_code}{sep1}{exchange}{sep2}{line}{padding}"
    expected = _phonenumbers_only(value, region, default)
    assert normalize_phone(value, region, default) == expected
    event(
        "shortcut" if _nanp(value.strip(), iso_region(region) or iso_region(default)) else "asked"
    )


@given(
    value=st.text(alphabet="0123456789+()-. ", max_size=20),
    region=REGIONS,
)
def test_any_phone_spelling_reads_as_phonenumbers_reads_it(value: str, region: str | None) -> None:
    expected = _phonenumbers_only(value, region, "US") if value.strip() else None
    assert normalize_phone(value, region, "US") == expected


@given(
    rows=st.lists(
        st.tuples(
            st.one_of(
                st.none(),
                st.integers(),
                st.text(alphabet="0123456789+()-. ", max_size=16),
                # national spellings that read differently in each region
                st.sampled_from(["020 8132 1967", "07794 157389", "(415) 555-0100", "030 1234567"]),
            ),
            st.one_of(REGIONS, st.integers(), st.lists(st.text(max_size=2), max_size=1)),
        ),
        max_size=8,
    ),
    default=st.sampled_from([None, "US", "GB"]),
)
def test_a_column_of_phones_reads_as_each_phone_does(
    rows: list[tuple[object, object]], default: str | None
) -> None:
    # a region seen before is not read again, an unhashable one is read each time
    values, regions = [v for v, _ in rows], [r for _, r in rows]
    expected = [normalize_phone(v, r, default) for v, r in rows]
    assert normalize_phones(values, regions, default) == expected


COUNTRY_CODES = st.one_of(
    st.sampled_from(["1", "7", "33", "39", "44", "49", "61", "86", "358", "800", "882", "979"]),
    st.sampled_from(["31", "34", "41", "43", "45", "46", "47", "48", "52", "55", "81", "91"]),
    st.text(alphabet="0123456789", min_size=1, max_size=3),
)


@settings(max_examples=1000)
@given(
    prefix=st.sampled_from(["+", "+", "+", "00", "+ ", "+0", "0"]),
    country_code=COUNTRY_CODES,
    trunk=st.sampled_from(["", "", "", "", "", "", "0", "1", "8", "183"]),
    national=st.one_of(
        st.from_regex(r"[1-9][0-9]{7,10}", fullmatch=True),
        st.from_regex(r"[1-9][0-9]{7,10}", fullmatch=True),
        st.text(alphabet="0123456789", min_size=6, max_size=13),
        st.text(alphabet="0123456789", max_size=20),
    ),
    cuts=st.lists(st.integers(1, 12), max_size=4),
    separator=st.sampled_from([" ", " ", " ", "", "  ", "-"]),
    region=REGIONS,
)
def test_international_phones_read_without_parse_as_phonenumbers_reads_them(
    prefix: str,
    country_code: str,
    trunk: str,
    national: str,
    cuts: list[int],
    separator: str,
    region: str | None,
) -> None:
    # a country code (known, unknown, non-geographic), a national prefix or none, a
    # number of any length (possible, too short, too long, short stubs) in groups
    groups = [national[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), None], strict=True)]
    value = f"{prefix}{country_code} {trunk}{separator.join(g for g in groups if g)}"
    expected = _phonenumbers_only(value, region, "US")
    assert normalize_phone(value, region, "US") == expected
    text = value.strip()
    event("shortcut" if _international("+" + text[2:] if text[:2] == "00" else text) else "asked")


NATIONAL_REGIONS = st.one_of(
    st.sampled_from(["GB", "FR", "DE", "AU", "US", "CA", "IT", "AR", "MX", "BR", "JP", "RU"]),
    st.sampled_from(["JE", "GG", "IM", "CC", "CX", "SM", "VA", "CN", "IN", "NL", "ES", "NZ"]),
    st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)),
)


@st.composite
def national_numbers(draw: st.DrawFn, region: str) -> str:
    """A national significant number of ``region``: one like its example numbers
    (the last digits drawn), or any digits."""
    kinds = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(kinds)))
    if example is None or draw(st.integers(0, 2)) == 0:
        return draw(
            st.one_of(
                st.from_regex(r"[1-9][0-9]{5,10}", fullmatch=True),
                st.text(alphabet="0123456789", min_size=5, max_size=13),
                st.text(alphabet="0123456789", max_size=20),
            )
        )
    nsn = phonenumbers.national_significant_number(example)
    keep = draw(st.integers(0, len(nsn)))
    size = max(0, len(nsn) - keep + draw(st.sampled_from([0, 0, 0, -1, 1])))
    return nsn[:keep] + draw(st.text(alphabet="0123456789", min_size=size, max_size=size))


@settings(max_examples=1500)
@given(
    data=st.data(),
    region=NATIONAL_REGIONS,
    trunk=st.sampled_from(["", "", "0", "0", "0", "1", "8", "00", "01", "011", "0011", "44"]),
    cuts=st.lists(st.integers(1, 12), max_size=4),
    separator=st.sampled_from([" ", " ", ".", "-", "", "  ", "/"]),
    bracket=st.booleans(),
)
def test_national_phones_read_without_parse_as_phonenumbers_reads_them(
    data: st.DataObject, region: str, trunk: str, cuts: list[int], separator: str, bracket: bool
) -> None:
    # a region's number without its country code, with a national prefix or another
    # one or none (or an international prefix, or the country code itself), of any
    # length, in groups (the first maybe bracketed), near misses of the shortcut's
    # spellings included
    digits = trunk + data.draw(national_numbers(region))
    bounds = [0, *sorted(cuts), None]
    groups = [g for a, b in pairwise(bounds) if (g := digits[a:b])]
    if bracket and groups:
        groups[0] = f"({groups[0]})"
    value = separator.join(groups)
    expected = _phonenumbers_only(value, region, "US") if value.strip() else None
    assert normalize_phone(value, region, "US") == expected
    event("shortcut" if value and _national(value.strip(), region) else "asked")


@pytest.fixture(scope="module")
def demo_phones(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str | None]]:
    """Every phone the demo generator prints (noise and planted flaws included), with
    the region its record reads it in."""
    from gateway.demodata.generate import generate

    out = tmp_path_factory.mktemp("demo")
    generate(out, 1500, 3)
    found: list[tuple[str, str | None]] = []
    for db, table, columns, region in [
        ("crm", "contacts", ["phone", "mobile"], "country"),
        ("crm", "leads", ["phone"], "NULL"),
        ("sales", "customers", ["phone"], "country"),
        ("support", "users", ["phone"], "locale"),
    ]:
        con = sqlite3.connect(Path(out, f"{db}.db"))
        try:
            for column in columns:
                rows = con.execute(f"SELECT {column}, {region} FROM {table}")
                found += [(v, r) for v, r in rows if isinstance(v, str)]
        finally:
            con.close()
    return found


def test_every_demo_phone_reads_as_phonenumbers_reads_it(
    demo_phones: list[tuple[str, str | None]],
) -> None:
    shortcut = 0
    for value, region in demo_phones:
        expected = _phonenumbers_only(value, region, "US") if value.strip() else None
        assert normalize_phone(value, region, "US") == expected, (value, region)
        shortcut += _national(value.strip(), iso_region(region) or "US") is not None
    # the national spellings (GB, FR, DE, AU) are read without parse
    assert shortcut > len(demo_phones) // 50


def test_the_usual_national_spellings_take_the_shortcut() -> None:
    for value, region, e164 in [
        ("07794 157389", "GB", "+447794157389"),
        ("020 8132 1993", "GB", "+442081321993"),
        ("06 81 12 23 52", "FR", "+33681122352"),
        ("06.81.12.23.52", "FR", "+33681122352"),
        ("(03) 2133 8253", "AU", "+61321338253"),
        ("0475 459 171", "AU", "+61475459171"),
        ("01572 6255836", "DE", "+4915726255836"),
        ("015726255885", "DE", "+4915726255885"),
    ]:
        assert _national(value, region) == e164
    assert _national("0044 20 8132 1993", "GB") is None  # an international prefix: asked
    assert _national("44 20 8132 1993", "GB") is None  # the country code: asked
    assert _national("12-34", "DE") is None  # a stub: asked (valid numbers only)
    assert _national("07794 157389", None) is None  # no region to read it in


def test_the_usual_international_spellings_take_the_shortcut() -> None:
    for value, e164 in [
        ("+33 5 24 97 14 79", "+33524971479"),
        ("+44 20 8132 1967", "+442081321967"),
        ("+61 403 039 018", "+61403039018"),
        ("+49 179 87334492", "+4917987334492"),
    ]:
        assert _international(value) == e164
    assert _international("+44 020 8132 1967") is None  # a national prefix: asked
    assert _international("020 8132 1967") is None  # a national number: asked


def test_the_usual_north_american_spellings_take_the_shortcut() -> None:
    for value in ("(407) 488-4302", "407-488-4302", "407.488.4302", "4074884302"):
        assert _nanp(value, "US") == _nanp(value, "CA") == "+14074884302"
        assert _nanp(value, "GB") is None  # a national number elsewhere: phonenumbers reads it
    for value in ("+14074884302", "+1 407-488-4302", "+1 (407) 488-4302"):
        assert _nanp(value, None) == _nanp(value, "FR") == "+14074884302"


@pytest.mark.parametrize(
    ("value", "region"),
    [("12-34", "DE"), ("12-34", "GB"), ("4412", "GB"), ("4915", "DE"), ("000", "DE")],
)
def test_short_stubs_are_no_phones(value: str, region: str) -> None:
    # possible lengths in their region, but no valid number: typed by many people
    # (the demo plants them as quality flaws), they must never join customers
    assert normalize_phone(value, region) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("+683 4002", "+6834002"), ("+500 31111", "+50031111"), ("+376 690123", "+376690123")],
)
def test_short_valid_numbers_stay_phones(value: str, expected: str) -> None:
    assert normalize_phone(value) == expected


@pytest.mark.parametrize("value", ["Ǣ", "ǣ", "Ǽrø", "Œdipe"])
def test_letters_folded_by_the_table_fold_in_every_unicode_form(value: str) -> None:
    # NFC "Ǣ" is Æ with a macron: it must fold like its decomposed form
    nfc, nfd = unicodedata.normalize("NFC", value), unicodedata.normalize("NFD", value)
    assert m.city(nfc) == m.city(nfd) == m.fold(nfd) and m.city(nfc) is not None


def test_a_column_of_phones_reads_each_row_in_its_own_region() -> None:
    # one spelling, three regions: each row's region is the one it is read in
    values = ["020 8132 1967"] * 3 + ["(415) 555-0100"]
    regions = ["GB", "DE", "gb", None]
    expected = [normalize_phone(v, r, "US") for v, r in zip(values, regions, strict=True)]
    assert len(set(expected[:2])) == 2, expected  # the spelling reads differently
    assert normalize_phones(values, regions, "US") == expected


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+442079460000", ("442079460000", "00442079460000", "02079460000", "2079460000")),
        ("+14155550123", ("14155550123", "0014155550123", "4155550123")),
        ("+33681122352", ("33681122352", "0033681122352", "0681122352", "681122352")),
        ("+4930123456", ("4930123456", "004930123456", "030123456", "30123456")),
        # an extension: the national format's " ext. 123" keeps only its digits
        (
            "+16502530000x123",
            ("16502530000x123", "0016502530000x123", "6502530000123", "6502530000"),
        ),
    ],
)
def test_a_phone_is_looked_up_by_its_digit_spellings(e164: str, expected: tuple[str, ...]) -> None:
    """International, with ``00``, national (the national format's digits) and the
    national significant number; each once, in that order."""
    assert phone_digit_variants(e164) == expected
