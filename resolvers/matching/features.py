"""The record the matcher compares: normalised attributes plus derived columns.

Training (Splink on DuckDB) and in-process scoring read the same columns, so
both build their records here. A match record is a plain dict of strings or
None; it lives only for one scoring run or one batch and is never stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from resolvers.matching import normalize
from resolvers.model import NOT_COMPANIES

__all__ = [
    "BLOCKING_KEYS",
    "COLUMNS",
    "MatchRecord",
    "blocking_keys",
    "match_record",
    "postcode_area",
]

MatchRecord = dict[str, str | None]

COLUMNS = (
    "first_name",
    "surname",
    "full_name",
    "email",
    "email_local",
    "email_number",
    "email_kind",
    "phone",
    "street",
    "postcode",
    "postcode_area",
    "city",
    "birth_date",
    "birth_month",
    "country",
    "company",
    "business_domain",
)
"""The attribute columns of a match record, besides ``unique_id`` and ``source_dataset``."""

BLOCKING_KEYS: dict[str, tuple[str, ...]] = {
    "surname_postcode": ("surname", "postcode"),
    "name": ("first_name", "surname"),
    "first_name_postcode": ("first_name", "postcode"),
    "email": ("email",),
    "phone": ("phone",),
    "birth_date": ("birth_date",),
    "email_local": ("email_local",),
}
"""Blocking key name -> the columns that must all be equal (and present) for two
records to be compared. Training predicts over the same rules."""


FREE_MAIL_DOMAINS = frozenset(
    """gmail.com yahoo.com yahoo.co.uk yahoo.ca yahoo.com.au yahoo.fr yahoo.de ymail.com
    outlook.com outlook.de outlook.fr hotmail.com hotmail.co.uk hotmail.fr hotmail.de live.com
    msn.com icloud.com me.com mac.com aol.com comcast.net att.net verizon.net gmx.de gmx.net
    gmx.com web.de t-online.de orange.fr free.fr laposte.net sfr.fr wanadoo.fr btinternet.com
    sky.com virginmedia.com shaw.ca rogers.com sympatico.ca bigpond.com optusnet.com.au
    proton.me protonmail.com mail.com zoho.com fastmail.com""".split()  # noqa: SIM905
)
"""Personal mailbox providers. Only their local parts are compared on their own:
at a company domain the local part is derived from the name (``john.smith@``),
so two John Smiths at two employers would look alike twice."""


_NOT_COMPANY_FORMS = frozenset(filter(None, (normalize.company(n) for n in NOT_COMPANIES)))


def postcode_area(code: str | None, country: str | None) -> str | None:
    """The coarse part of a normalised postcode: GB/CA outward code, US first three
    digits, else the first two characters."""
    if not code:
        return None
    if " " in code:
        return code.split(" ", 1)[0]
    return code[:3] if country == "US" else code[:2]


def match_record(
    unique_id: str,
    source_dataset: str,
    *,
    first_name: object = None,
    surname: object = None,
    name: object = None,
    email: object = None,
    phone: object = None,
    street: object = None,
    postcode: object = None,
    city: object = None,
    birth_date: object = None,
    country: object = None,
    locale: object = None,
    company: object = None,
    company_domain: object = None,
    default_region: str | None = "US",
) -> MatchRecord:
    """A match record from raw source values.

    ``name`` (free text such as ``"Smith, Bob"``) fills a missing first name or
    surname. ``country`` (ISO) or else ``locale`` (``"en-GB"``) decides how
    phones and postcodes are read; phones without one use ``default_region``.
    ``company`` is the name of the business the record works for as typed (a lead's
    company, the name of a contact's account), ``company_domain`` that business's
    domain; ``business_domain`` is the work email's domain, else ``company_domain``.
    """
    given, last = normalize.given_name(first_name), normalize.surname(surname)
    if name is not None and (given is None or last is None):
        parsed_given, parsed_last = normalize.full_name(name)
        given, last = given or parsed_given, last or parsed_last
    region = normalize.country(country) or normalize.country(locale)
    mail = normalize.email(email)
    code = normalize.postcode(postcode, region)
    born = normalize.birth_date(birth_date)
    return {
        "unique_id": unique_id,
        "source_dataset": source_dataset,
        "first_name": given,
        "surname": last,
        "full_name": f"{given} {last}" if given and last else None,
        "email": mail,
        "email_local": _personal_local(mail),
        "email_number": _personal_number(mail),
        "email_kind": _email_kind(mail),
        "phone": normalize.phone(phone, region, default_region),
        "street": normalize.street(street, region),
        "postcode": code,
        "postcode_area": postcode_area(code, region),
        "city": normalize.city(city),
        "birth_date": born,
        "birth_month": born[:7] if born else None,
        "country": region,
        "company": _company(company),
        "business_domain": _work_domain(mail) or normalize.domain(company_domain),
    }


def _company(value: object) -> str | None:
    name = normalize.company(value)
    return None if name in _NOT_COMPANY_FORMS else name


def _work_domain(mail: str | None) -> str | None:
    return mail.rpartition("@")[2] if mail and _email_kind(mail) == "work" else None


def _personal_local(mail: str | None) -> str | None:
    local, _, domain = (mail or "").rpartition("@")
    return local if local and domain in FREE_MAIL_DOMAINS else None


_NUMBER = re.compile(r"(\d+)\D*$")


def _personal_number(mail: str | None) -> str | None:
    """The last run of digits in a personal mailbox's local part (``jsmith1985`` ->
    ``1985``): people keep their number when they open another mailbox. How common
    a number is (a birth year, ``1``) is what the model's term frequencies weigh."""
    local = _personal_local(mail)
    found = _NUMBER.search(local) if local else None
    return found.group(1) if found else None


def _email_kind(mail: str | None) -> str | None:
    """``personal`` (a mailbox provider) or ``work`` (any other domain)."""
    if not mail:
        return None
    return "personal" if mail.rpartition("@")[2] in FREE_MAIL_DOMAINS else "work"


def blocking_keys(record: Mapping[str, object]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """The blocking keys ``record`` yields: ``(key name, values)`` for every key
    whose columns are all present, e.g. ``("surname_postcode", ("smith", "SW1A 1AA"))``.
    Candidates for a record are the records sharing at least one of them."""
    for key, columns in BLOCKING_KEYS.items():
        values = tuple(record.get(column) for column in columns)
        if all(isinstance(value, str) and value for value in values):
            yield key, tuple(str(value) for value in values)
