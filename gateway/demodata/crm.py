"""The CRM view of the population: accounts, contacts, leads and opportunities.

A CRM knows businesses best: B2B people are contacts of their company's
account, with work emails and direct lines; consumers appear as contacts
without an account. Some people are only leads, and some are both a lead and
a contact (an unconverted duplicate), as in real sales teams' data.
"""

from __future__ import annotations

import random

from gateway.demodata import noise, words
from gateway.demodata.clock import AS_OF_SEC, DAY, date, timestamp
from gateway.demodata.people import Business, Person
from gateway.demodata.records import (
    Batch,
    EmailNoise,
    Ids,
    count,
    email_for,
    pick,
    record_times,
    styled,
)

_EMAIL = EmailNoise(work=0.95, gmail=0.08, case=0.15, space=0.06)
_LEAD_EMAIL = EmailNoise(work=0.9, gmail=0.08, case=0.12, space=0.05)
_B2B_STAGES = (
    ("lead", "marketing_qualified", "sales_qualified", "opportunity", "customer", "evangelist"),
    (10, 10, 15, 25, 35, 5),
)
_BUYER_STAGES = (("customer", "evangelist", "opportunity", "sales_qualified"), (75, 8, 9, 8))
_PROSPECT_STAGES = (
    ("subscriber", "lead", "marketing_qualified", "sales_qualified"),
    (40, 35, 15, 10),
)
_LEAD_STATUS = (("new", "working", "nurturing", "qualified", "unqualified"), (25, 25, 20, 15, 15))
_LEAD_SOURCE = (
    ("web", "referral", "event", "partner", "cold_call", "advertisement", "trade_show"),
    (35, 15, 12, 10, 10, 10, 8),
)
_OPP_STAGES = (
    ("prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"),
    (12, 12, 12, 9, 35, 20),
)
_OPPORTUNITIES = ((0, 1, 2, 3, 5), (35.0, 30.0, 18.0, 10.0, 7.0))
Times = tuple[int, int]


def _created(item: tuple[Times, object] | tuple[Times, object, object]) -> int:
    return item[0][0]


class CrmBuilder:
    """Turns chunks of people into CRM rows with stable, growing ids."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"crm:{seed}")
        self._ids = Ids()

    def build(self, people: list[Person], businesses: list[Business], batch: Batch) -> None:
        rng = self._rng
        roles = {p.pid: self._role(p) for p in people if "crm" in p.systems}
        accounts = self._accounts(businesses, roles, batch)
        contacts: list[tuple[Times, Person]] = []
        leads: list[tuple[Times, Person, str]] = []
        for person in people:
            role = roles.get(person.pid)
            if role in ("contact", "contact+lead", "contact*2"):
                contacts.append((record_times(rng, person, "crm"), person))
            if role == "contact*2":
                contacts.append((record_times(rng, person, "crm"), person))
            if role in ("lead", "contact+lead"):
                status = "converted" if role == "contact+lead" else pick(rng, _LEAD_STATUS)
                leads.append((record_times(rng, person, "crm"), person, status))
        account_contacts = self._contacts(sorted(contacts, key=_created), accounts, batch)
        for times, person, status in sorted(leads, key=_created):
            self._lead(times, person, status, batch)
        for business in businesses:
            if business.bid in accounts:
                self._opportunities(business, accounts[business.bid], account_contacts, batch)

    def _role(self, person: Person) -> str:
        r = self._rng.random()
        lead_only = 0.12 if person.business else 0.22
        if r < lead_only:
            return "lead"
        if r < lead_only + 0.05:
            return "contact+lead"
        if r < lead_only + 0.07:
            return "contact*2"
        return "contact"

    def _accounts(
        self, businesses: list[Business], roles: dict[int, str], batch: Batch
    ) -> dict[int, int]:
        """Account ids by business id, for businesses the CRM knows."""
        chosen = []
        for business in businesses:
            member_roles = [roles[p.pid] for p in business.people if p.pid in roles]
            has_contact = any(role != "lead" for role in member_roles)
            if has_contact or self._rng.random() < (0.4 if member_roles else 0.25):
                chosen.append(business)
        ids: dict[int, int] = {}
        for business in sorted(chosen, key=lambda b: b.created):
            ids[business.bid] = self._account(business, batch)
        return ids

    def _account(self, business: Business, batch: Batch) -> int:
        rng = self._rng
        account_id = self._ids.take("accounts")
        street, city, postcode = business.address
        row = (
            account_id,
            business.name,
            business.domain if rng.random() < 0.9 else None,
            business.industry,
            business.phone.random_style(rng) if rng.random() < 0.85 else None,
            street,
            city,
            postcode,
            business.country,
            business.owner,
            timestamp(business.created),
            timestamp(rng.randint(business.created, AS_OF_SEC - 60)),
        )
        batch.member("crm.accounts", row, business.entity_id, "business")
        return account_id

    def _contacts(
        self, contacts: list[tuple[Times, Person]], accounts: dict[int, int], batch: Batch
    ) -> dict[int, list[int]]:
        """Writes contact rows; returns contact ids per account id."""
        per_account: dict[int, list[int]] = {}
        for times, person in contacts:
            business = person.business
            account_id = accounts.get(business.bid) if business else None
            contact_id = self._contact(times, person, account_id, batch)
            if account_id is not None:
                per_account.setdefault(account_id, []).append(contact_id)
        return per_account

    def _contact(self, times: Times, person: Person, account_id: int | None, batch: Batch) -> int:
        rng = self._rng
        contact_id = self._ids.take("contacts")
        first, last = noise.name_variant(
            rng, person.first, person.last_in("crm"), nick=0.10, typos=0.03
        )
        email = email_for(rng, person, "crm", _EMAIL) if rng.random() >= 0.03 else None
        mobile = styled(rng, person.mobile, 0.75)
        phone = styled(rng, person.landline, 0.65)
        if phone is None and mobile is None:
            phone = styled(rng, person.mobile, 0.4)
        street, city, postcode = person.address_in("crm") if rng.random() < 0.8 else (None,) * 3
        owner = person.business.owner if person.business else rng.choice(words.SALES_REPS)
        row = (
            contact_id,
            account_id,
            first,
            last,
            email,
            phone,
            mobile,
            street,
            city,
            postcode,
            person.country,
            person.birth if rng.random() < 0.45 else None,
            self._stage(person),
            owner,
            timestamp(times[0]),
            timestamp(times[1]),
        )
        batch.member("crm.contacts", row, person.entity_id)
        return contact_id

    def _stage(self, person: Person) -> str:
        if person.business:
            return pick(self._rng, _B2B_STAGES)
        return pick(self._rng, _BUYER_STAGES if "sales" in person.systems else _PROSPECT_STAGES)

    def _lead(self, times: Times, person: Person, status: str, batch: Batch) -> None:
        rng = self._rng
        first, last = noise.name_variant(
            rng, person.first, person.last_in("crm"), nick=0.12, typos=0.04
        )
        business = person.business
        if business:
            company: str | None = noise.company_variant(rng, business.brand, business.suffix)
        else:
            company = "Self-employed" if rng.random() < 0.1 else None
        phone = styled(rng, person.mobile or person.landline, 0.7, has_region=False)
        row = (
            self._ids.take("leads"),
            first,
            last,
            company,
            email_for(rng, person, "crm", _LEAD_EMAIL),
            phone,
            status,
            pick(rng, _LEAD_SOURCE),
            rng.choice(words.SALES_REPS),
            timestamp(times[0]),
            timestamp(times[1]),
        )
        batch.member("crm.leads", row, person.entity_id)

    def _opportunities(
        self,
        business: Business,
        account_id: int,
        account_contacts: dict[int, list[int]],
        batch: Batch,
    ) -> None:
        rng = self._rng
        contacts = account_contacts.get(account_id, [])
        for _ in range(count(rng, _OPPORTUNITIES)):
            stage = pick(rng, _OPP_STAGES)
            created = rng.randint(business.created, AS_OF_SEC - DAY)
            if stage.startswith("closed"):
                close = rng.randint(created, AS_OF_SEC - 60)
            else:
                close = AS_OF_SEC + rng.randint(1, 180) * DAY
            amount = round(rng.lognormvariate(9.5, 1.0), -1) + rng.choice((0.0, 0.5, 0.99))
            row = (
                self._ids.take("opportunities"),
                account_id,
                rng.choice(contacts) if contacts and rng.random() < 0.85 else None,
                f"{business.brand} - {rng.choice(words.OPPORTUNITY_PRODUCTS)}",
                stage,
                round(amount, 2),
                words.CURRENCY[business.country],
                date(close),
                business.owner,
                timestamp(created),
                timestamp(min(max(created, close), AS_OF_SEC - 60)),
            )
            batch.rows["crm.opportunities"].append(row)
