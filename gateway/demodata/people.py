"""The true population behind the demo: real people and the businesses they work for.

The three source systems only ever see *views* of these people, each with its
own noise. Generating the truth first (who exists, their one real email and
phone, where they moved, whom they married, which systems know them) and
deriving every record from it is what makes a ground truth possible.
People come in chunks of whole businesses, so memory stays bounded however
many customers are asked for.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from gateway.demodata import words
from gateway.demodata.clock import AS_OF_SEC, DAY
from gateway.demodata.phones import FIXED, MOBILE, Phone, PhoneBook

SYSTEMS = ("crm", "support", "sales")
Address = tuple[str, str, str]
"""``(street, city, postcode)``; the country lives on the person or business."""

_BUSINESS_UNIT_RATE = 0.185  # with ~3.6 employees per business: one business per ~8 people
_EMPLOYEES = ((1, 2, 3, 4, 5, 6, 8, 12), (10, 25, 25, 15, 10, 7, 5, 3))
_SYSTEM_COUNT = ((1, 2, 3), (15, 70, 15))
_ONLY_SYSTEM_WEIGHTS = (30, 30, 40)
_MISSING_OF_TWO_WEIGHTS = (321, 393, 286)  # gives crm ~67%, support ~62%, sales ~71%
_GB_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_CA_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"
_BIRTH_FIRST = date(1945, 1, 1)
_BIRTH_DAYS = [(_BIRTH_FIRST + timedelta(days=n)).isoformat() for n in range(62 * 365)]
_ASCII = str.maketrans({"ß": "ss", "ä": "ae", "ö": "oe", "ü": "ue", "'": "", " ": "", "-": ""})


def slug(text: str) -> str:
    """``text`` folded to the lower-case ASCII people use in email addresses."""
    folded = unicodedata.normalize("NFKD", text.lower().translate(_ASCII))
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum())


@dataclass(slots=True, eq=False)
class Business:
    """A real company; its main line belongs to the company, never to a person."""

    bid: int
    country: str
    brand: str
    suffix: str
    domain: str
    industry: str
    phone: Phone
    address: Address
    owner: str
    created: int
    people: list[Person] = field(default_factory=list)

    @property
    def entity_id(self) -> str:
        return f"B{self.bid:06d}"

    @property
    def name(self) -> str:
        return f"{self.brand} {self.suffix}"


@dataclass(slots=True, eq=False)
class Person:
    """A real person, with the true values every system record is derived from."""

    pid: int
    country: str
    female: bool
    first: str
    last: str
    birth: str
    address: Address
    personal_email: str
    mobile: Phone | None
    landline: Phone | None
    systems: tuple[str, ...]
    created: int
    business: Business | None = None
    work_email: str | None = None
    new_last: str | None = None
    new_address: Address | None = None
    changed_system: str | None = None
    change_sec: int = 0
    alt_email: str | None = None
    alt_system: str | None = None

    @property
    def entity_id(self) -> str:
        return f"P{self.pid:07d}"

    def last_in(self, system: str) -> str:
        """The last name ``system`` knows (the married name only where it was updated)."""
        return self.new_last if self.new_last and system == self.changed_system else self.last

    def address_in(self, system: str) -> Address:
        """The address ``system`` knows (the new one only where the move was recorded)."""
        if self.new_address and system == self.changed_system:
            return self.new_address
        return self.address


def street(rng: random.Random, country: str) -> str:
    language = words.LANGUAGE[country]
    name = rng.choice(words.STREET_NAMES[language])
    kind = rng.choice(words.STREET_SUFFIX[country])
    number = rng.randint(1, 120) if language != "en" else rng.randint(1, 9999)
    if country == "DE":
        return f"{name}{kind} {number}" if kind.islower() else f"{name} {kind} {number}"
    if country == "FR":
        return f"{number} {kind} {name}"
    if country == "GB":
        return f"{rng.randint(1, 240)} {name} {kind}"
    return f"{number} {name} {kind}"


def postcode(rng: random.Random, country: str, prefix: str) -> str:
    if country == "GB":
        letters = rng.choice(_GB_LETTERS) + rng.choice(_GB_LETTERS)
        return f"{prefix} {rng.randint(1, 9)}{letters}"
    if country == "CA":
        return f"{prefix} {rng.randint(1, 9)}{rng.choice(_CA_LETTERS)}{rng.randint(0, 9)}"
    free = {"US": 2, "AU": 2}.get(country, 3)
    return prefix + str(rng.randrange(10**free)).zfill(free)


def address(rng: random.Random, country: str) -> Address:
    city, prefix = rng.choice(words.CITIES[country])
    return street(rng, country), city, postcode(rng, country, prefix)


class Population:
    """Yields the true people (and their businesses) in bounded chunks."""

    def __init__(self, seed: int, total: int, phones: PhoneBook) -> None:
        self.total = total
        self._rng = random.Random(f"people:{seed}")
        self._phones = phones
        self._next_pid = 1
        self._next_bid = 1
        self._domains: set[str] = set()

    def chunks(self, size: int) -> Iterator[tuple[list[Person], list[Business]]]:
        """Lists of people (about ``size``) and the businesses they belong to."""
        while self._next_pid <= self.total:
            people: list[Person] = []
            businesses: list[Business] = []
            while len(people) < size and self._next_pid <= self.total:
                if self._rng.random() < _BUSINESS_UNIT_RATE:
                    business = self._business()
                    businesses.append(business)
                    people.extend(business.people)
                else:
                    people.append(self._person(self._country()))
            yield people, businesses

    def _country(self) -> str:
        return self._rng.choices(words.COUNTRIES, words.COUNTRY_WEIGHTS)[0]

    def _business(self) -> Business:
        rng = self._rng
        country = self._country()
        brand, domain = self._brand(country)
        business = Business(
            bid=self._next_bid,
            country=country,
            brand=brand,
            suffix=rng.choice(words.COMPANY_SUFFIX[country]),
            domain=domain,
            industry=rng.choice(words.INDUSTRIES),
            phone=self._phones.allocate(country, FIXED),
            address=address(rng, country),
            owner=rng.choice(words.SALES_REPS),
            created=int(AS_OF_SEC * (0.05 + 0.9 * rng.random())),
        )
        self._next_bid += 1
        employees = rng.choices(*_EMPLOYEES)[0]
        employees = min(employees, self.total - self._next_pid + 1)
        locals_taken: set[str] = set()
        for _ in range(employees):
            person = self._person(country)
            person.business = business
            person.work_email = self._work_email(person, domain, locals_taken)
            business.people.append(person)
        return business

    def _brand(self, country: str) -> tuple[str, str]:
        rng = self._rng
        for attempt in range(50):
            head = rng.choice(words.BRAND_HEAD)
            if rng.random() < 0.5:
                head += rng.choice(words.BRAND_TAIL)
            brand = f"{head} {rng.choice(words.SECTOR_WORD)}"
            if rng.random() < 0.15:
                brand = f"{rng.choice(words.LAST['en'])} & {rng.choice(words.LAST['en'])}"
            domain = f"{slug(brand)}{attempt // 10 or ''}.{words.TLD[country]}"
            if domain not in self._domains:
                self._domains.add(domain)
                return brand, domain
        raise RuntimeError("ran out of business names")  # pragma: no cover

    def _person(self, country: str) -> Person:
        rng = self._rng
        pid = self._next_pid
        self._next_pid += 1
        language = words.LANGUAGE[country]
        female = rng.random() < 0.5
        first = rng.choice((words.FEMALE if female else words.MALE)[language])
        last = rng.choice(words.LAST[language])
        person = Person(
            pid=pid,
            country=country,
            female=female,
            first=first,
            last=last,
            birth=rng.choice(_BIRTH_DAYS),
            address=address(rng, country),
            personal_email=self._personal_email(pid, first, last, country),
            mobile=self._phones.allocate(country, MOBILE) if rng.random() < 0.93 else None,
            landline=None,
            systems=self._systems(),
            created=int(AS_OF_SEC * (0.1 + 0.88 * rng.random() ** 0.5)),
        )
        self._life_events(person)
        return person

    def _systems(self) -> tuple[str, ...]:
        rng = self._rng
        count = rng.choices(*_SYSTEM_COUNT)[0]
        if count == 3:
            return SYSTEMS
        if count == 1:
            return (rng.choices(SYSTEMS, _ONLY_SYSTEM_WEIGHTS)[0],)
        missing = rng.choices(SYSTEMS, _MISSING_OF_TWO_WEIGHTS)[0]
        return tuple(s for s in SYSTEMS if s != missing)

    def _life_events(self, person: Person) -> None:
        """Moves, marriages and second email addresses, recorded in only one system."""
        rng = self._rng
        if person.mobile is None or rng.random() < 0.3:
            person.landline = self._phones.allocate(person.country, FIXED)
        if len(person.systems) < 2:
            return
        person.changed_system = rng.choice(person.systems)
        person.change_sec = AS_OF_SEC - rng.randint(5, 400) * DAY
        if rng.random() < 0.10:
            person.new_address = address(rng, person.country)
        if person.female and rng.random() < 0.08:
            others = words.LAST[words.LANGUAGE[person.country]]
            person.new_last = rng.choice([n for n in others[:40] if n != person.last])
        if rng.random() < 0.10:
            person.alt_system = rng.choice(person.systems)
            person.alt_email = self._personal_email(
                person.pid, person.first, person.last, person.country, avoid=person.personal_email
            )

    def _personal_email(
        self, pid: int, first: str, last: str, country: str, avoid: str = ""
    ) -> str:
        """A personal address, unique because it ends in the person's number."""
        rng = self._rng
        f, la = slug(first), slug(last)
        local = rng.choice((f"{f}.{la}", f"{f}{la}", f"{f[0]}{la}", f"{f}_{la}", f"{la}.{f}", f))
        domains, weights = zip(*words.PERSONAL_DOMAINS[country], strict=True)
        while True:
            email = f"{local}{pid}@{rng.choices(domains, weights)[0]}"
            if email.rpartition("@")[2] != avoid.rpartition("@")[2]:
                return email

    def _work_email(self, person: Person, domain: str, taken: set[str]) -> str:
        f, la = slug(person.first), slug(person.last)
        local = self._rng.choice((f"{f}.{la}", f"{f[0]}{la}", f"{f}", f"{f}.{la[0]}"))
        candidate, n = local, 1
        while candidate in taken:
            n += 1
            candidate = f"{local}{n}"
        taken.add(candidate)
        return f"{candidate}@{domain}"
