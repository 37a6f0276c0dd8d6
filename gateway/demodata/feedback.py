"""The demo's customer-feedback service data: survey respondents and their
NPS/CSAT responses.

Like a SaaS survey tool, it stores respondents' emails lower-cased and
trimmed. Respondents are drawn from people who bought or asked for help,
with their own random stream so adding this system leaves the other three
unchanged for a given seed.
"""

from __future__ import annotations

import random

from gateway.demodata.clock import AS_OF_SEC, DAY, timestamp
from gateway.demodata.people import Person
from gateway.demodata.records import Batch, Ids

_RESPONSES = ((1, 2, 3, 4, 6), (45.0, 25.0, 15.0, 10.0, 5.0))
_NPS = (tuple(range(11)), (2, 1, 1, 2, 2, 4, 6, 10, 18, 24, 30))
_CSAT = ((1, 2, 3, 4, 5), (5, 8, 15, 35, 37))
_CHANNEL = (("email", "in_app", "web"), (55, 25, 20))
_COMMENTS = {
    "low": ("Delivery took far too long.", "Support never got back to me.", "Too expensive."),
    "mid": ("It's fine.", "Does the job, nothing special.", "Checkout was confusing."),
    "high": ("Great service!", "Fast delivery, will order again.", "Support was very helpful."),
}


class FeedbackBuilder:
    """Turns chunks of people into respondents and survey responses."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"feedback:{seed}")
        self._ids = Ids()

    def build(self, people: list[Person], batch: Batch) -> None:
        rng = self._rng
        for person in people:
            if not {"sales", "support"} & set(person.systems) or rng.random() >= 0.4:
                continue
            email = person.work_email if person.work_email and rng.random() < 0.5 else None
            email = (email or person.personal_email).strip().lower()
            created = min(AS_OF_SEC - DAY, person.created + rng.randint(DAY, 400 * DAY))
            respondent = self._ids.take("respondents")
            name = f"{person.first} {person.last}" if rng.random() < 0.7 else None
            batch.member(
                "feedback.respondents",
                (respondent, email, name, timestamp(created), timestamp(created)),
                person.entity_id,
            )
            count = rng.choices(*_RESPONSES)[0]
            for _ in range(count):
                self._response(rng, respondent, created, batch)

    def _response(self, rng: random.Random, respondent: int, start: int, batch: Batch) -> None:
        survey = "nps" if rng.random() < 0.6 else "csat"
        score = rng.choices(*(_NPS if survey == "nps" else _CSAT))[0]
        band = score / (10 if survey == "nps" else 5)
        mood = "low" if band < 0.6 else "mid" if band < 0.85 else "high"
        comment = rng.choice(_COMMENTS[mood]) if rng.random() < 0.4 else None
        when = rng.randint(start, AS_OF_SEC - 1)
        batch.rows["feedback.responses"].append(
            (
                self._ids.take("responses"),
                respondent,
                survey,
                score,
                comment,
                rng.choices(*_CHANNEL)[0],
                timestamp(when),
            )
        )
