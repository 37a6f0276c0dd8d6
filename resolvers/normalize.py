"""Normalisation of identity keys, so that the same email or phone written
differently in two systems compares equal.

Each normaliser also says how to look the normalised key up in a source
(the connector's lookup transform and the raw values to send), because a
source stores what users typed, not the normal form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

import phonenumbers

from connectors import LookupTransform

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
"""Mailboxes that ignore dots and ``+tags`` in the local part."""


def normalize_email(value: object, provider_rules: bool = False) -> str | None:
    """Trimmed, lower-case address. With ``provider_rules``, a Gmail address loses
    its dots and ``+tag`` and its domain becomes ``gmail.com``:
    ``J.Smith+shop@GoogleMail.com`` -> ``jsmith@gmail.com``."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if "@" not in email:
        return None
    if provider_rules:
        local, _, domain = email.rpartition("@")
        if domain in GMAIL_DOMAINS:
            local = local.split("+", 1)[0].replace(".", "")
            return f"{local}@gmail.com" if local else None
    return email


def gmail_lookup_values(key: str) -> tuple[str, ...]:
    """What a source may hold for a provider-normalised address, as far as a
    lookup can say: the address itself and its googlemail.com twin. Spellings
    with dots or ``+tags`` cannot be listed; they join when their own record is
    read (its key normalises to the same address)."""
    local, _, domain = key.rpartition("@")
    return (key, f"{local}@googlemail.com") if domain == "gmail.com" else (key,)


_ID_SEPARATORS = str.maketrans("", "", " \t-./_:()+")


def normalize_external_id(value: object) -> str | None:
    """A national or external id without separators, upper-case:
    ``" ab-12 34/56 c "`` -> ``"AB123456C"``; None when nothing is left."""
    if value is None or isinstance(value, bool):
        return None
    # separators first, then every kind of whitespace (a separator between two
    # whitespace characters must not leave one behind: normalising is idempotent)
    text = "".join(str(value).translate(_ID_SEPARATORS).split()).upper()
    return text or None


def external_id_lookup_values(key: str) -> tuple[str, ...]:
    """Sent with the ``digits`` transform (separators stripped at the source), as
    upper- and lower-case, since sources do not fold the case of ids."""
    return tuple(dict.fromkeys((key, key.lower())))


_SHORT = 7
"""National numbers shorter than this must be valid numbers of their region to be
phones (Niue's ``+683 4002`` is; a truncated ``12-34`` read in Germany is not):
such stubs are typed by many people, and as identity keys they would join
strangers. Longer numbers need only be possible (the cheaper check)."""


@lru_cache(maxsize=8192)  # ~2 MB; an export's phones are nearly all distinct
def _parse_phone(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    if len(str(number.national_number)) < _SHORT and not phonenumbers.is_valid_number(number):
        return None  # a stub ("1234", "000", "n/a"): many strangers type the same one
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_NANP = re.compile(r"(\+1[ .-]?)?(?:\(([2-9]\d\d)\) ?|([2-9]\d\d)[ .-]?)(\d{3})[ .-]?(\d{4})")
"""A North American number as people write it: ``(407) 488-4302``, ``407-488-4302``,
``407.488.4302``, ``4074884302``, ``+14074884302``, ``+1 407-488-4302``."""
_NANP_REGIONS = frozenset({"US", "CA"})


def _nanp(text: str, region: str | None) -> str | None:
    """:func:`_parse_phone`'s answer for the commonest spellings, without phonenumbers
    (which parses in ~13 µs of pure Python); None when it must be asked.

    Why it is the same answer: in these spellings the digits are the country code 1
    (written, or the region's: US and CA both have it) and a 10-digit number whose
    area code starts with 2-9, so no international prefix (011), country code or
    national prefix (1) can be read off its front; 10 digits is a possible length
    for country code 1; E.164 is ``+1`` and the 10 digits. A hypothesis test holds
    it to phonenumbers (tests/resolvers/test_key_normalizers.py)."""
    match = _NANP.fullmatch(text)
    if match is None:
        return None
    plus, bracketed, bare, exchange, line = match.groups()
    if plus is None and region not in _NANP_REGIONS:
        return None
    return f"+1{bracketed or bare}{exchange}{line}"


_INTERNATIONAL = re.compile(r"\+[0-9][0-9 ]*")
"""A number written with its country code: ``+33 5 24 97 14 79``, ``+442081321967``."""
_LONGEST_COUNTRY_CODE = 3
_LONGEST_NSN = 17
_LONGEST_TEXT = 250
"""phonenumbers reads no text longer than this (too long to be a phone)."""
_NON_GEOGRAPHIC = "001"


@cache
def _national_prefix(country_code: int) -> tuple[bool, re.Pattern[str] | None]:
    """Whether the shortcut reads numbers of ``country_code`` (not the non-geographic
    ones, such as ``+800``), and the national prefix that phonenumbers would try to
    strip from them (None when the main region of the code has none)."""
    region = phonenumbers.region_code_for_country_code(country_code)
    if region == _NON_GEOGRAPHIC:
        return False, None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return False, None
    prefix = metadata.national_prefix_for_parsing
    return True, re.compile(prefix) if prefix else None


def _international(text: str) -> str | None:
    """:func:`_parse_phone`'s answer for a ``+``, a country code and ASCII digits and
    spaces, without ``phonenumbers.parse`` (~30 µs of pure Python, most of it spent
    on the generic reading of the text); None when it must be asked.

    Why it is the same answer: parse reads such a text as its digits after the
    ``+`` (no extension, alphabetic or RFC 3966 part can be in it), takes the
    shortest prefix of 1-3 digits that is a country code, and then strips nothing
    from the rest when the national prefix of the country code's main region does not
    match its start (the shortcut asks phonenumbers when it does) and it does not start
    with 0 (Italian leading zeros: asked too). The number it builds is this
    country code and the rest as an integer; phonenumbers' possible-number check
    reads only the country code and the length of the rest (asked once per pair),
    and its E.164 text is ``+``, the country code and the rest. Numbers shorter
    than ``_SHORT`` are asked (they need the valid-number check). A hypothesis test
    holds it to phonenumbers (tests/resolvers/test_key_normalizers.py)."""
    if len(text) > _LONGEST_TEXT or _INTERNATIONAL.fullmatch(text) is None:
        return None
    digits = text[1:].replace(" ", "")
    if digits[0] == "0":
        return None
    for size in range(1, _LONGEST_COUNTRY_CODE + 1):
        country_code = int(digits[:size])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if not _SHORT <= len(national) <= _LONGEST_NSN or national[0] == "0":
        return None
    readable, prefix = _national_prefix(country_code)
    if not readable or (prefix is not None and prefix.match(national)):
        return None
    if not _possible_length(country_code, len(national)):
        return None
    # E.164 of a number without leading zeros: ``+``, the country code, the digits
    return f"+{country_code}{national}"


@cache
def _possible_length(country_code: int, length: int) -> bool:
    """``phonenumbers.is_possible_number`` of the numbers of ``country_code`` whose
    national number is ``length`` digits without leading zeros: it reads nothing but
    that length (the country code's main region's possible lengths)."""
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=10 ** (length - 1))
    return bool(phonenumbers.is_possible_number(number))


_NATIONAL = re.compile(r"(?:\([0-9]+\) ?[0-9]+|[0-9]+)(?:[ .-][0-9]+)*")
"""A number written without its country code, in groups of ASCII digits apart by one
space, dot or hyphen, the first maybe in brackets: ``07794 157389``, ``(03) 2133 8253``,
``06.81.12.23.52``, ``015726255885``."""
_PUNCTUATION = str.maketrans("", "", " .-()")


@dataclass(frozen=True, slots=True)
class _Plan:
    """What :func:`_national` reads of a region's metadata (:func:`_national_plan`)."""

    country_code: int
    idd: re.Pattern[str] | None
    """The international prefix dialled from the region (``00``, ``011``)."""
    prefix: re.Pattern[str] | None
    """The national prefix that parsing strips (``0``), if any."""
    pattern: re.Pattern[str]
    """The region's national numbers (its general description)."""
    lengths: tuple[int, ...]
    local_lengths: tuple[int, ...]


@cache
def _national_plan(region: str) -> _Plan | None:
    """The shortcut's reading of ``region``'s metadata; None where it asks phonenumbers
    always (a national prefix rewritten by a transform rule, no general description or
    country code)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if metadata is None or metadata.national_prefix_transform_rule:
        return None
    general = metadata.general_desc
    if general is None or not general.national_number_pattern or not general.possible_length:
        return None
    if metadata.country_code is None:
        return None
    idd, prefix = metadata.international_prefix, metadata.national_prefix_for_parsing
    return _Plan(
        metadata.country_code,
        re.compile(idd) if idd else None,
        re.compile(prefix) if prefix else None,
        re.compile(general.national_number_pattern),
        tuple(general.possible_length),
        tuple(general.possible_length_local_only or ()),
    )


def _national(text: str, region: str | None) -> str | None:
    """:func:`_parse_phone`'s answer for a national number of ``region`` in groups of
    ASCII digits (:data:`_NATIONAL`), without ``phonenumbers.parse``; None when it must
    be asked.

    Why it is the same answer: parse reads such a text as its digits (from the first
    digit on; no extension, letter, plus or RFC 3966 part can be in it). When the
    region's international prefix does not match their start (asked when it does) and
    they do not start with the region's country code (asked), no country code is read
    off them, so the number is the region's country code and the digits with the
    national prefix stripped: stripped where the prefix pattern matches their start,
    unless the digits are a national number of the region (its general pattern) and
    the rest is not; then kept only if the rest has a possible length of the region
    (not too short, local-only or of no such length; else the digits stay as they
    are). What is left must start with no 0 (Italian leading zeros: asked), be
    ``_SHORT`` to ``_LONGEST_NSN`` digits (shorter ones need the valid-number check:
    asked) and have a possible length for its country code (asked once per pair, as
    for :func:`_international`); its E.164 text is ``+``, the country code and
    the digits. A hypothesis test and every spelling the demo data prints hold it
    to phonenumbers (tests/resolvers/test_key_normalizers.py)."""
    if region is None or len(text) > _LONGEST_TEXT or _NATIONAL.fullmatch(text) is None:
        return None
    plan = _national_plan(region)
    if plan is None:
        return None
    digits = text.translate(_PUNCTUATION)
    if plan.idd is not None and plan.idd.match(digits):
        return None
    country_code = plan.country_code
    if digits.startswith(str(country_code)):
        return None
    national = digits
    if plan.prefix is not None and (found := plan.prefix.match(digits)) is not None:
        rest = digits[found.end() :]
        if plan.pattern.fullmatch(rest) or not plan.pattern.fullmatch(digits):
            national = rest
    if national is not digits and not _possible_in(plan, len(national)):
        national = digits
    if not _SHORT <= len(national) <= _LONGEST_NSN or national[0] == "0":
        return None
    if not _possible_length(country_code, len(national)):
        return None
    return f"+{country_code}{national}"


def _possible_in(plan: _Plan, length: int) -> bool:
    """Whether phonenumbers' length test of the region's numbers keeps a national number
    of ``length`` digits with its prefix stripped: not too short, not local-only, and
    of a possible length (or too long: parse keeps those too)."""
    if length in plan.local_lengths:
        return False
    lengths = plan.lengths
    return length >= lengths[0] and (length > lengths[-1] or length in lengths)


def normalize_phone(value: object, region: object = None, default: str | None = None) -> str | None:
    """E.164, reading national numbers in ``region`` (an ISO country or a locale),
    else in ``default``; None when it is no phone."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    iso = iso_region(region) or iso_region(default)
    return (
        _nanp(text, iso) or _international(text) or _national(text, iso) or _parse_phone(text, iso)
    )


def normalize_phones(
    values: Iterable[object], regions: Iterable[object], default: str | None = None
) -> list[str | None]:
    """:func:`normalize_phone` of each value with its region, each distinct region
    read once (a column of phones has a few regions, and most values no phone), each
    text stripped once and the North American shortcut (:func:`_nanp`, most phones)
    read in the loop rather than through a call."""
    isos: dict[object, str | None] = {}
    out: list[str | None] = []
    append = out.append
    nanp = _NANP.fullmatch
    for value, region in zip(values, regions):  # noqa: B905 (regions may repeat forever)
        if value.__class__ is not str and (value is None or not isinstance(value, str)):
            append(None)
            continue
        text = value.strip()
        if not text:
            append(None)
            continue
        try:
            iso = isos[region]
        except KeyError:
            iso = isos[region] = iso_region(region) or iso_region(default)
        except TypeError:  # an unhashable region: read it each time
            iso = iso_region(region) or iso_region(default)
        if text.startswith("00"):
            text = "+" + text[2:]
        match = nanp(text)
        if match is not None:  # :func:`_nanp`, written out
            plus, bracketed, bare, exchange, line = match.groups()
            if plus is not None or iso in _NANP_REGIONS:
                append(f"+1{bracketed or bare}{exchange}{line}")
                continue
        append(_international(text) or _national(text, iso) or _parse_phone(text, iso))
    return out


def iso_region(region: object) -> str | None:
    """An ISO country from ``US``, ``en-GB`` or ``de_DE``; None for a bare language
    such as ``en`` (not a region: the default region reads those numbers) or
    anything unreadable."""
    return _iso_region(region) if isinstance(region, str) else None


@lru_cache(maxsize=1024)
def _iso_region(region: str) -> str | None:
    code = region.replace("_", "-").rsplit("-", 1)[-1].strip().upper()
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


@lru_cache(maxsize=65536)
def phone_digit_variants(e164: str) -> tuple[str, ...]:
    """The digit strings a source may hold for ``e164`` once separators are gone:
    international (``4420...``), with the ``00`` prefix, and national (``020...``)."""
    number = phonenumbers.parse(e164, None)
    intl = e164.lstrip("+")
    # the digits by C-level filter: a generator's frame resumed per character was
    # ~600 Python calls a page of 50 (each customer's phone is new to the cache)
    national = "".join(
        filter(
            str.isdigit, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        )
    )
    nsn = phonenumbers.national_significant_number(number)
    return tuple(dict.fromkeys((intl, "00" + intl, national, nsn)))


def normalize_exact(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True, slots=True)
class KeyNormalizer:
    """How one identity key is normalised and looked up."""

    normalize: Callable[[object, object, str | None], str | None]
    """(value, the record's region, the key's default region) -> normal form."""
    transform: LookupTransform
    lookup_values: Callable[[str], tuple[str, ...]]


NORMALIZERS: dict[str, KeyNormalizer] = {
    "email": KeyNormalizer(lambda v, _r, _d: normalize_email(v), "casefold", lambda k: (k,)),
    "email_provider": KeyNormalizer(
        lambda v, _r, _d: normalize_email(v, provider_rules=True), "casefold", gmail_lookup_values
    ),
    "external_id": KeyNormalizer(
        lambda v, _r, _d: normalize_external_id(v), "digits", external_id_lookup_values
    ),
    "phone": KeyNormalizer(normalize_phone, "digits", phone_digit_variants),
    "exact": KeyNormalizer(lambda v, _r, _d: normalize_exact(v), "exact", lambda k: (k,)),
}
