"""What every system builder shares: row batches, id counters and record-level choices.

The CRM, support and sales builders each turn true people into their own
rows, but they agree on how a record's timestamps follow a person's life
(a move or a marriage is recorded late, in one system only), on how an email
is picked and corrupted, and on how rows and ground truth travel to the writer.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from gateway.demodata import noise
from gateway.demodata.clock import AS_OF_SEC, DAY
from gateway.demodata.people import Person
from gateway.demodata.phones import Phone

Row = tuple[object, ...]
TruthRow = tuple[str, str, str, str, str]
"""``(source, table, record_id, entity_id, kind)`` as written to ground_truth.csv."""


@dataclass(slots=True)
class Batch:
    """Rows of one chunk, keyed by ``"system.table"``, plus their ground truth."""

    rows: defaultdict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    truth: list[TruthRow] = field(default_factory=list)

    def member(self, table: str, row: Row, entity_id: str, kind: str = "person") -> None:
        """Adds a row that stands for a real person or business, and its truth."""
        self.rows[table].append(row)
        system, _, name = table.partition(".")
        self.truth.append((system, name, str(row[0]), entity_id, kind))


class Ids:
    """Next primary key per table; ids keep growing across chunks."""

    def __init__(self) -> None:
        self._next: defaultdict[str, int] = defaultdict(lambda: 1)

    def take(self, table: str) -> int:
        value = self._next[table]
        self._next[table] = value + 1
        return value


@dataclass(frozen=True, slots=True)
class EmailNoise:
    """How one system corrupts emails: rates of work-over-personal, Gmail variants, case, space."""

    work: float
    gmail: float
    case: float
    space: float


def record_times(rng: random.Random, person: Person, system: str) -> tuple[int, int]:
    """``(created, updated)`` of a person's record in ``system``.

    When the person moved or married, only ``person.changed_system`` was updated
    after the change; every other system's record predates it.
    """
    created = min(person.created + rng.randint(0, 240 * DAY), AS_OF_SEC - 2 * DAY)
    if person.new_address is None and person.new_last is None:
        return created, rng.randint(created, AS_OF_SEC - 60)
    created = min(created, person.change_sec - 2 * DAY)
    if system == person.changed_system:
        return created, rng.randint(person.change_sec, AS_OF_SEC - 60)
    return created, rng.randint(created, person.change_sec - DAY)


def base_email(rng: random.Random, person: Person, system: str, work: float) -> str:
    """The address ``person`` gave ``system``, before any typing noise."""
    if person.alt_email is not None and person.alt_system == system:
        return person.alt_email
    if person.work_email is not None and rng.random() < work:
        return person.work_email
    return person.personal_email


def email_for(rng: random.Random, person: Person, system: str, rates: EmailNoise) -> str:
    """The address as stored in ``system``: chosen, then maybe re-spelled and mistyped."""
    email = base_email(rng, person, system, rates.work)
    if rng.random() < rates.gmail and noise.is_gmail(email):
        email = noise.gmail_variant(rng, email)
    return noise.noisy_email(rng, email, case=rates.case, space=rates.space)


def styled(
    rng: random.Random, phone: Phone | None, rate: float, *, has_region: bool = True
) -> str | None:
    """``phone`` in a realistic print style with probability ``rate``, else None."""
    if phone is None or rng.random() >= rate:
        return None
    return phone.random_style(rng, has_region=has_region)


def pick(rng: random.Random, weighted: tuple[tuple[str, ...], tuple[int, ...]]) -> str:
    return rng.choices(*weighted)[0]


def count(rng: random.Random, weighted: tuple[tuple[int, ...], tuple[float, ...]]) -> int:
    """A skewed count: draws a bucket and then a value up to the next bucket's start."""
    values, weights = weighted
    index = rng.choices(range(len(values)), weights)[0]
    low = values[index]
    high = values[index + 1] - 1 if index + 1 < len(values) else low + low // 2
    return rng.randint(low, max(low, high))
