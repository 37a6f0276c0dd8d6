"""Households: partners who share a home (address and surname) with a real person.

Added on top of the population without changing any record it already
produced: the people who get a partner are picked with their own random
stream while the chunks go by, and the partners themselves (with their own
phones and emails, never shared ones, so deterministic keys still separate
them) are made only after the last chunk. Their records therefore come last
in every table, and a given seed still yields the same records as before,
plus these.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.demodata import words
from gateway.demodata.clock import AS_OF_SEC
from gateway.demodata.people import SYSTEMS, Person, slug
from gateway.demodata.phones import FIXED, MOBILE, PhoneBook

_RATE = 0.07
"""Share of eligible people (consumers who never moved or changed name) with a partner."""
_SYSTEM_COUNT = ((1, 2, 3), (20, 60, 20))
_SECOND_PARTNER = 0.15
"""Households of three (an adult child)."""


@dataclass(frozen=True, slots=True)
class Household:
    hid: int
    head: Person
    partners: tuple[Person, ...]

    @property
    def entity_id(self) -> str:
        return f"H{self.hid:06d}"

    def people(self) -> tuple[Person, ...]:
        return (self.head, *self.partners)


class Households:
    """Chooses household heads chunk by chunk, then makes their partners."""

    def __init__(self, seed: int, total: int) -> None:
        self._rng = random.Random(f"households:{seed}")
        self._heads: list[Person] = []
        self._next_pid = total + 1

    def observe(self, people: list[Person]) -> None:
        """Picks heads among one chunk's people (their records are already final)."""
        for person in people:
            eligible = (
                person.business is None and person.new_address is None and person.new_last is None
            )
            if eligible and self._rng.random() < _RATE:
                self._heads.append(person)

    def build(self, phones: PhoneBook) -> Iterator[Household]:
        """The households, partners included; call once, after the last chunk."""
        for hid, head in enumerate(self._heads, start=1):
            count = 2 if self._rng.random() < _SECOND_PARTNER else 1
            partners = tuple(self._partner(head, phones) for _ in range(count))
            yield Household(hid, head, partners)

    def _partner(self, head: Person, phones: PhoneBook) -> Person:
        rng = self._rng
        pid = self._next_pid
        self._next_pid += 1
        language = words.LANGUAGE[head.country]
        female = rng.random() < 0.5
        first = rng.choice((words.FEMALE if female else words.MALE)[language])
        while first == head.first:
            first = rng.choice((words.FEMALE if female else words.MALE)[language])
        mobile = phones.allocate(head.country, MOBILE) if rng.random() < 0.9 else None
        landline = phones.allocate(head.country, FIXED) if mobile is None else None
        count = rng.choices(*_SYSTEM_COUNT)[0]
        return Person(
            pid=pid,
            country=head.country,
            female=female,
            first=first,
            last=head.last,
            birth=f"{rng.randint(1950, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            address=head.address,
            personal_email=self._email(rng, pid, first, head.last, head.country),
            mobile=mobile,
            landline=landline,
            systems=tuple(sorted(rng.sample(SYSTEMS, count), key=SYSTEMS.index)),
            created=int(AS_OF_SEC * (0.3 + 0.65 * rng.random())),
        )

    @staticmethod
    def _email(rng: random.Random, pid: int, first: str, last: str, country: str) -> str:
        f, la = slug(first), slug(last)
        local = rng.choice((f"{f}.{la}", f"{f}{la}", f"{f[0]}{la}"))
        domains, weights = zip(*words.PERSONAL_DOMAINS[country], strict=True)
        return f"{local}{pid}@{rng.choices(domains, weights)[0]}"
