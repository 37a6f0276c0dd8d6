"""Normalisers for the attributes probabilistic matching compares.

Two systems rarely spell a person the same way: ``Bob O'Brien`` and
``OBRIEN, Robert``, ``J.Smith+shop@GoogleMail.com`` and ``jsmith@gmail.com``,
``12 Station Rd.`` and ``12 station road``. Each function here maps such
variants to one form so the model's comparisons measure real differences,
not typing habits. Every normaliser is idempotent and returns None for a
value that carries no information.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from datetime import date, datetime
from functools import cache, lru_cache
from importlib import resources

from resolvers.normalize import GMAIL_DOMAINS, normalize_phone

__all__ = [
    "GMAIL_DOMAINS",
    "birth_date",
    "city",
    "company",
    "company_spellings",
    "country",
    "domain",
    "email",
    "fold",
    "full_name",
    "given_name",
    "nicknames",
    "phone",
    "postcode",
    "street",
    "surname",
]

_EXTRA_FOLD = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "\u0131": "i",  # dotless i
    }
)
_NON_WORD = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")


def fold(value: str) -> str:
    """Lower-case ASCII with accents removed, punctuation dropped (apostrophes glue,
    other marks separate) and whitespace collapsed: ``"Zoë  O'Brien-Smith"`` ->
    ``"zoe obrien smith"``."""
    # decomposed first, so a letter such as "Ǣ" (Æ with a macron) meets the table too
    text = unicodedata.normalize("NFKD", value).translate(_EXTRA_FOLD)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = text.replace("'", "").replace("\u2019", "")
    text = _NON_WORD.sub(" ", text.encode("ascii", "ignore").decode())
    return _SPACES.sub(" ", text).strip()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


# -- email and phone ---------------------------------------------------------


def email(value: object, provider_rules: bool = True, plus_tags: bool = False) -> str | None:
    """Trimmed, lower-case address; None when it is no address.

    With ``provider_rules`` the Gmail domains (which ignore dots and ``+tags``)
    are reduced to the inbox: ``J.Smith+shop@googlemail.com`` -> ``jsmith@gmail.com``.
    ``plus_tags`` also drops ``+tags`` on every other domain.
    """
    text = _text(value)
    if text is None:
        return None
    local, at, domain = text.strip().lower().rpartition("@")
    if not at or not local or "." not in domain or any(ch.isspace() for ch in local + domain):
        return None
    if provider_rules and domain in GMAIL_DOMAINS:
        local, domain = local.split("+", 1)[0].replace(".", ""), "gmail.com"
    elif plus_tags:
        local = local.split("+", 1)[0]
    return f"{local}@{domain}" if local else None


def phone(value: object, region: object = None, default: str | None = "US") -> str | None:
    """E.164, reading national numbers in ``region`` (ISO country or locale), else ``default``."""
    return normalize_phone(value, region, default)


def country(value: object) -> str | None:
    """An ISO country from ``"GB"``, ``"en-GB"`` or ``"de_DE"``; None for a bare
    lower-case language (``"en"``) or junk."""
    text = _text(value)
    if text is None or (text.strip().islower() and not any(c in text for c in "-_")):
        return None
    code = text.replace("_", "-").rsplit("-", 1)[-1].strip().upper()
    return code if len(code) == 2 and code.isalpha() else None


# -- names -------------------------------------------------------------------


@cache
def nicknames() -> dict[str, str]:
    """The shipped nickname table, ``variant -> canonical`` with chains resolved."""
    text = resources.files(__package__).joinpath("nicknames.csv").read_text(encoding="utf-8")
    table = {row["variant"]: row["canonical"] for row in csv.DictReader(text.splitlines())}
    resolved: dict[str, str] = {}
    for variant in table:
        name, seen = variant, {variant}
        while name in table:
            name = table[name]
            if name in seen:
                raise ValueError(f"nicknames.csv: cycle through {name!r}")
            seen.add(name)
        resolved[variant] = name
    return resolved


def given_name(value: object) -> str | None:
    """Folded given name with nicknames canonicalised: ``"Bobby "`` -> ``"robert"``.

    A compound (``"Jean-Pierre"``) is kept whole (``"jean pierre"``); the
    table is consulted for the whole name, then for a first word that is itself
    a known variant (``"Bob J."`` -> ``"robert j"``).
    """
    text = _text(value)
    if text is None:
        return None
    name = fold(text)
    if not name:
        return None
    table = nicknames()
    if name in table:
        return table[name]
    head, _, rest = name.partition(" ")
    if rest and head in table:
        return f"{table[head]} {rest}"
    return name


def surname(value: object) -> str | None:
    """Folded surname: ``"O'Brien"`` -> ``"obrien"``, ``"Müller"`` -> ``"muller"``."""
    text = _text(value)
    if text is None:
        return None
    return fold(text) or None


_PARTICLES = frozenset(
    "van von der den de del della di da du la le st mac ter ten zu dos das".split()  # noqa: SIM905
)


def full_name(value: object) -> tuple[str | None, str | None]:
    """``(given, surname)`` from one free-text name.

    Reads ``"Last, First"``, ``"First Middle Last"`` (the middle names are
    dropped), surname particles (``"Ludwig van Beethoven"`` -> surname
    ``"van beethoven"``) and a single word as a given name.
    """
    text = _text(value)
    if text is None:
        return None, None
    if "," in text:
        last, _, first = text.partition(",")
        return given_name(first), surname(last)
    words = fold(text).split()
    if not words:
        return None, None
    if len(words) == 1:
        return given_name(words[0]), None
    start = len(words) - 1
    while start > 1 and words[start - 1] in _PARTICLES:
        start -= 1
    return given_name(words[0]), surname(" ".join(words[start:]))


def city(value: object) -> str | None:
    """Folded city name: ``"München"`` -> ``"munchen"``, ``"St. Louis"`` -> ``"st louis"``."""
    text = _text(value)
    return (fold(text) or None) if text else None


# -- businesses --------------------------------------------------------------

_LEGAL_FORMS = frozenset(
    """inc incorporated llc llp ltd limited plc corp corporation co company pty gmbh ag kg
    ug sarl sa sas srl spa bv nv oy ab as""".split()  # noqa: SIM905
)


def company(value: object) -> str | None:
    """A company name without case, punctuation, ``and``/``&`` or trailing legal forms:
    ``"ACME, Inc."``, ``"Acme Inc"`` and ``"acme"`` -> ``"acme"``;
    ``"Smith & Jones GmbH & Co. KG"`` -> ``"smith jones"``."""
    text = _text(value)
    if text is None:
        return None
    words = [w for w in fold(text).split() if w != "and"]
    while len(words) > 1 and words[-1] in _LEGAL_FORMS:
        words.pop()
    return " ".join(words) or None


_LEGAL_SPELLINGS = (
    "",
    *"""inc inc. llc corp corp. co co. ltd ltd. limited plc llp gmbh ag kg sarl sa
    sas corporation company incorporated""".split(),  # noqa: SIM905
    "pty ltd",
    "pty. ltd.",
    "gmbh & co. kg",
)


@lru_cache(maxsize=16384)
def company_spellings(normal: str) -> tuple[str, ...]:
    """The usual ways to write the company whose normal form (``company``) is
    ``normal``, casefolded: with each legal form, after a space or a comma, and a
    two-word name joined by ``&`` or ``and``. A function of the normal form alone,
    so two records that share it find each other by the same lookup values."""
    words = normal.split()
    brands = [normal]
    if len(words) == 2:
        brands += [f"{words[0]} & {words[1]}", f"{words[0]} and {words[1]}"]
    out = {
        f"{brand}{sep}{form}".strip()
        for brand in brands
        for form in _LEGAL_SPELLINGS
        for sep in (" ", ", ")
    }
    return tuple(sorted(out))


def domain(value: object) -> str | None:
    """The host a business is known by, from a domain, a URL or an email address:
    ``"https://www.Acme.com/about"`` and ``"sales@acme.com"`` -> ``"acme.com"``."""
    text = _text(value)
    if text is None:
        return None
    host = text.strip().lower().rpartition("@")[2]
    host = host.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].strip(".")
    host = host.removeprefix("www.")
    if "." not in host or any(ch.isspace() for ch in host):
        return None
    return host


# -- addresses ---------------------------------------------------------------

_STREET_WORDS = {
    "ave": "avenue",
    "av": "avenue",
    "avda": "avenue",
    "rd": "road",
    "blvd": "boulevard",
    "bd": "boulevard",
    "bvd": "boulevard",
    "ln": "lane",
    "ct": "court",
    "pl": "place",
    "cres": "crescent",
    "cr": "crescent",
    "tce": "terrace",
    "terr": "terrace",
    "pde": "parade",
    "hwy": "highway",
    "pkwy": "parkway",
    "sq": "square",
    "cl": "close",
    "gdns": "gardens",
    "gdn": "garden",
    "r": "rue",
    "imp": "impasse",
    "chem": "chemin",
    "str": "strasse",
    "apt": "apartment",
}
_FRENCH_WORDS = {"all": "allee"}
_FRENCH = frozenset({"FR", "BE", "CH", "LU", "CA"})
_SUFFIX_WORDS = {"st": ("street", "saint"), "dr": ("drive", "doctor")}


def street(value: object, country: str | None = None) -> str | None:
    """Folded street line with abbreviations expanded: ``"12 Station Rd."`` ->
    ``"12 station road"``, ``"Hauptstr. 5"`` -> ``"hauptstrasse 5"``.

    ``St``/``Dr`` read as Street/Drive when they are the last word before any
    number, else as Saint/Doctor (``"St Michel"``); for French addresses ``St``
    is always Saint. House numbers are kept as written.
    """
    text = _text(value)
    if text is None:
        return None
    words = fold(text).split()
    alpha = [i for i, word in enumerate(words) if not word[:1].isdigit()]
    last_alpha = alpha[-1] if alpha else -1
    out = []
    for i, word in enumerate(words):
        if word in _SUFFIX_WORDS:
            as_suffix = i == last_alpha and not (word == "st" and country == "FR")
            word = _SUFFIX_WORDS[word][0 if as_suffix else 1]
        elif word in _STREET_WORDS:
            word = _STREET_WORDS[word]
        elif word in _FRENCH_WORDS and country in _FRENCH:
            word = _FRENCH_WORDS[word]
        elif word.endswith("str") and len(word) > 4 and country in (None, "DE", "AT", "CH"):
            word = word[:-3] + "strasse"
        out.append(word)
    return " ".join(out) or None


_POSTCODE_JUNK = re.compile(r"[^A-Z0-9]")
_GB = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$")
_CA = re.compile(r"^[A-Z][0-9][A-Z][0-9][A-Z][0-9]$")
_DIGITS = {"US": 5, "DE": 5, "FR": 5, "ES": 5, "IT": 5, "AU": 4, "AT": 4, "CH": 4, "BE": 4}


def postcode(value: object, country: str | None = None) -> str | None:
    """Postcode in the country's written form: ``"sw1a1aa"`` -> ``"SW1A 1AA"`` (GB),
    ``"k1a0b1"`` -> ``"K1A 0B1"`` (CA), ``"2134"`` -> ``"02134"`` and
    ``"10001-1234"`` -> ``"10001"`` (US), 4 digits for AU.

    A value that does not fit its country's pattern is returned upper-cased with
    whitespace collapsed, so it still compares equal to itself.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _text(value)
    if text is None:
        return None
    upper = _SPACES.sub(" ", text.strip().upper())
    compact = _POSTCODE_JUNK.sub("", upper)
    if country == "GB" and _GB.match(compact):
        return f"{compact[:-3]} {compact[-3:]}"
    if country == "CA" and _CA.match(compact):
        return f"{compact[:3]} {compact[3:]}"
    width = _DIGITS.get(country or "")
    if width:
        digits = compact[:width] if country == "US" and len(compact) == 9 else compact
        if digits.isdigit() and width - 2 <= len(digits) <= width:
            return digits.zfill(width)
    return upper or None


# -- dates -------------------------------------------------------------------

_NUMERIC_DATE = re.compile(r"^(\d{1,4})[-/. ](\d{1,2})[-/. ](\d{1,4})$")
_TEXT_FORMATS = ("%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y", "%Y%m%d")


def birth_date(value: object, dayfirst: bool = False) -> str | None:
    """ISO ``YYYY-MM-DD`` from a date, an ISO timestamp, ``19800131``,
    ``31.01.1980``, ``01/31/1980``, ``31/01/1980`` or ``"31 Jan 1980"``.

    A numeric day/month order is read from the values when one exceeds 12, else
    from the separator (dots are day-first) or ``dayfirst``. Impossible dates give None.
    """
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = _text(value)
    if text is None:
        return None
    text = text.strip()
    if re.match(r"^\d{4}-\d{2}-\d{2}([T ].*)?$", text):
        text = text[:10].replace("-", "/")
    match = _NUMERIC_DATE.match(text)
    try:
        if match:
            a, b, c = (int(part) for part in match.groups())
            if len(match.group(1)) == 4:
                return date(a, b, c).isoformat()
            if len(match.group(3)) != 4:
                return None
            dotted = "." in text
            day_first = a > 12 or ((dayfirst or dotted) and b <= 12)
            day, month = (a, b) if day_first else (b, a)
            return date(c, month, day).isoformat()
    except ValueError:
        return None
    cleaned = _SPACES.sub(" ", text.replace(",", " ")).strip()
    for fmt in _TEXT_FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).date().isoformat()
        except ValueError:
            continue
    return None
