"""Normalisation of identity keys, so that the same email or phone written
differently in two systems compares equal.

Each normaliser also says how to look the normalised key up in a source
(the connector's lookup transform and the raw values to send), because a
source stores what users typed, not the normal form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from connectors import LookupTransform


def normalize_email(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if "@" in email else None


@lru_cache(maxsize=65536)
def _parse_phone(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_phone(value: object, region: object = None, default: str | None = None) -> str | None:
    """E.164, reading national numbers in ``region`` (an ISO country or a locale),
    else in ``default``; None when it is no phone."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    return _parse_phone(text, _region(region) or _region(default))


def _region(region: object) -> str | None:
    """An ISO country from ``US``, ``en-GB`` or ``de_DE``; None when unreadable."""
    if not isinstance(region, str):
        return None
    code = region.replace("_", "-").rsplit("-", 1)[-1].strip().upper()
    return code if len(code) == 2 and code.isalpha() else None


@lru_cache(maxsize=65536)
def phone_digit_variants(e164: str) -> tuple[str, ...]:
    """The digit strings a source may hold for ``e164`` once separators are gone:
    international (``4420...``), with the ``00`` prefix, and national (``020...``)."""
    number = phonenumbers.parse(e164, None)
    intl = e164.lstrip("+")
    national = "".join(
        ch
        for ch in phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        if ch.isdigit()
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
    "phone": KeyNormalizer(normalize_phone, "digits", phone_digit_variants),
    "exact": KeyNormalizer(lambda v, _r, _d: normalize_exact(v), "exact", lambda k: (k,)),
}
