"""The support-desk view: organizations, users, tickets and satisfaction ratings.

A help desk stores one free-text ``name`` per user, no country, and whatever
contact detail the customer used: people who only ever phoned have no email,
and the same caller is sometimes registered twice under one phone number.
Organizations mirror some businesses under the names agents typed for them.
A handful of agents share the ``users`` table with customers.
"""

from __future__ import annotations

import random

from gateway.demodata import noise, words
from gateway.demodata.clock import AS_OF_SEC, DAY, timestamp
from gateway.demodata.people import Business, Person, slug
from gateway.demodata.records import Batch, EmailNoise, Ids, count, email_for, pick, record_times

_EMAIL = EmailNoise(work=0.8, gmail=0.08, case=0.12, space=0.05)
_TICKETS = ((0, 1, 2, 3, 4, 6, 10, 16), (28.0, 27.0, 17.0, 10.0, 7.0, 6.0, 3.5, 1.5))
_OPEN = (("new", "open", "pending", "hold"), (30, 40, 20, 10))
_ALL = (("new", "open", "pending", "hold", "solved", "closed"), (3, 8, 6, 3, 25, 55))
_PRIORITY = (("low", "normal", "high", "urgent"), (25, 55, 15, 5))
_CHANNEL = (("email", "web", "phone", "chat"), (45, 25, 15, 15))
_AGENT_TIME = 30 * DAY
_SINGLE, _ORIGINAL, _DUPLICATE = "single", "original", "duplicate"


class SupportBuilder:
    """Turns chunks of people into help-desk rows with stable, growing ids."""

    def __init__(self, seed: int, customers: int) -> None:
        self._rng = random.Random(f"support:{seed}")
        self._ids = Ids()
        self._agents = min(len(words.SUPPORT_AGENTS), 4 + customers // 5000)
        self._orgs: dict[int, int] = {}

    def build(self, people: list[Person], businesses: list[Business], batch: Batch) -> None:
        rng = self._rng
        if self._agents:
            self._add_agents(batch)
        self._organizations(businesses, batch)
        users: list[tuple[tuple[int, int], Person, str]] = []
        for person in people:
            if "support" in person.systems:
                if rng.random() < 0.04:
                    users.append((record_times(rng, person, "support"), person, _ORIGINAL))
                    users.append((record_times(rng, person, "support"), person, _DUPLICATE))
                else:
                    users.append((record_times(rng, person, "support"), person, _SINGLE))
        tickets: list[tuple[int, int, int | None, bool]] = []
        for times, person, kind in sorted(users, key=lambda u: u[0][0]):
            user_id, org_id, has_email = self._user(times, person, kind, batch)
            for created in self._ticket_times(times[0], kind == _DUPLICATE):
                tickets.append((created, user_id, org_id, has_email))
        for created, user_id, org_id, has_email in sorted(tickets, key=lambda t: t[0]):
            self._ticket(created, user_id, org_id, has_email, batch)

    def _add_agents(self, batch: Batch) -> None:
        for number, name in enumerate(words.SUPPORT_AGENTS[: self._agents], start=1):
            first, last = name.split(" ", 1)
            created = self._rng.randint(0, _AGENT_TIME)
            row = (
                self._ids.take("users"),
                None,
                name,
                f"{slug(first)}.{slug(last)}@{words.AGENT_DOMAIN}",
                None,
                "en-US",
                "America/New_York",
                "agent",
                timestamp(created),
                timestamp(self._rng.randint(created, AS_OF_SEC - 60)),
            )
            batch.member("support.users", row, f"A{number:04d}", "agent")
        self._agents = 0

    def _organizations(self, businesses: list[Business], batch: Batch) -> None:
        rng = self._rng
        known = [
            b
            for b in businesses
            if any("support" in p.systems for p in b.people) and rng.random() < 0.7
        ]
        for business in sorted(known, key=lambda b: b.created):
            org_id = self._ids.take("organizations")
            self._orgs[business.bid] = org_id
            created = min(business.created + rng.randint(0, 400) * DAY, AS_OF_SEC - DAY)
            row = (
                org_id,
                noise.company_variant(rng, business.brand, business.suffix),
                business.domain if rng.random() < 0.85 else None,
                timestamp(created),
                timestamp(rng.randint(created, AS_OF_SEC - 60)),
            )
            batch.member("support.organizations", row, business.entity_id, "business")

    def _user(
        self, times: tuple[int, int], person: Person, kind: str, batch: Batch
    ) -> tuple[int, int | None, bool]:
        """Writes one user row; returns its id, organization id and whether it has an email."""
        rng = self._rng
        user_id = self._ids.take("users")
        email: str | None = email_for(rng, person, "support", _EMAIL)
        phone_rate = 1.0 if kind == _ORIGINAL else 0.55
        if kind == _DUPLICATE or rng.random() < 0.06:
            email, phone_rate = None, 1.0
        phone = person.mobile or person.landline
        if kind == _SINGLE and person.landline and rng.random() < 0.2:
            phone = person.landline
        printed = phone.random_style(rng, has_region=False) if phone else None
        if rng.random() >= phone_rate:
            printed = None
        business = person.business
        on_work_email = business is not None and email is not None and business.domain in email
        org_id = self._orgs.get(business.bid) if business and on_work_email else None
        row = (
            user_id,
            org_id,
            self._display_name(person),
            email,
            printed,
            self._locale(person.country),
            rng.choice(words.TIME_ZONES[person.country]) if rng.random() < 0.8 else None,
            "end-user",
            timestamp(times[0]),
            timestamp(times[1]),
        )
        batch.member("support.users", row, person.entity_id)
        return user_id, org_id, email is not None

    def _display_name(self, person: Person) -> str:
        rng = self._rng
        first, last = noise.name_variant(
            rng, person.first, person.last_in("support"), nick=0.15, typos=0.03
        )
        r = rng.random()
        if r < 0.10:
            return f"{last}, {first}"
        if r < 0.15:
            return f"{first} {last}".lower()
        if r < 0.18:
            return first
        return f"{first} {last}"

    def _locale(self, country: str) -> str | None:
        r = self._rng.random()
        if r < 0.05:
            return None
        language = words.LANGUAGE[country]
        if country == "CA" and r < 0.25:
            language = "fr"
        return language if r > 0.9 else f"{language}-{country}"

    def _ticket_times(self, user_created: int, duplicate: bool) -> list[int]:
        rng = self._rng
        n = rng.randint(0, 1) if duplicate else count(rng, _TICKETS)
        return [rng.randint(user_created, AS_OF_SEC - 600) for _ in range(n)]

    def _ticket(
        self,
        created: int,
        user_id: int,
        org_id: int | None,
        has_email: bool,
        batch: Batch,
    ) -> None:
        rng = self._rng
        ticket_id = self._ids.take("tickets")
        recent = created > AS_OF_SEC - 14 * DAY
        status = pick(rng, _OPEN if recent else _ALL)
        solved = status in ("solved", "closed")
        solved_at = min(created + rng.randint(600, 10 * DAY), AS_OF_SEC - 1) if solved else None
        updated = solved_at or rng.randint(created, AS_OF_SEC - 1)
        subject = rng.choice(words.TICKET_SUBJECTS).format(
            order=f"#{rng.randint(100001, 999999)}", product=rng.choice(words.PRODUCTS)[1]
        )
        row = (
            ticket_id,
            user_id,
            org_id,
            subject,
            status,
            pick(rng, _PRIORITY),
            pick(rng, _CHANNEL) if has_email else "phone",
            timestamp(created),
            timestamp(updated),
            timestamp(solved_at) if solved_at else None,
        )
        batch.rows["support.tickets"].append(row)
        if solved_at is not None and rng.random() < 0.3:
            self._rating(ticket_id, user_id, solved_at, batch)

    def _rating(self, ticket_id: int, user_id: int, solved_at: int, batch: Batch) -> None:
        rng = self._rng
        good = rng.random() < 0.78
        comments = words.RATING_COMMENTS_GOOD if good else words.RATING_COMMENTS_BAD
        row = (
            self._ids.take("satisfaction_ratings"),
            ticket_id,
            user_id,
            "good" if good else "bad",
            rng.choice(comments) if rng.random() < 0.4 else None,
            timestamp(min(solved_at + rng.randint(60, 3 * DAY), AS_OF_SEC - 1)),
        )
        batch.rows["support.satisfaction_ratings"].append(row)
