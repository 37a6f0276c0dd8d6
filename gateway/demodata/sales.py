"""The shop's view: customers, orders, order lines and refunds.

Shoppers register with personal addresses (Gmail ``+tags`` for shop mail are
common here), sometimes twice with the same email typed in another case, and
order at very different rates: most a few times, a few dozens of times.
Order totals are the sum of their lines, priced from a small catalogue in the
shopper's currency.
"""

from __future__ import annotations

import math
import random

from gateway.demodata import noise, words
from gateway.demodata.clock import AS_OF_SEC, DAY, timestamp
from gateway.demodata.people import Person
from gateway.demodata.records import Batch, EmailNoise, Ids, count, email_for, pick, record_times

_EMAIL = EmailNoise(work=0.12, gmail=0.30, case=0.12, space=0.05)
_ORDERS = ((0, 1, 2, 3, 4, 5, 7, 10, 15, 25), (20.0, 33, 17, 10, 6, 4, 4, 3, 2, 1))
_STATUS = (("paid", "fulfilled", "refunded", "cancelled", "pending"), (10, 76, 7, 5, 2))
_LINES = ((1, 2, 3, 4), (55, 25, 12, 8))
_QUANTITY = ((1, 2, 3, 5), (80, 14, 4, 2))
_FX = {"USD": 1.0, "GBP": 0.79, "EUR": 0.92, "CAD": 1.37, "AUD": 1.52}
_PRICES = {
    currency: [
        price if rate == 1.0 else math.floor(price * rate) + 0.95 for _, _, price in words.PRODUCTS
    ]
    for currency, rate in _FX.items()
}

Order = tuple[int, int, str, str]
"""``(created, customer_id, currency, status)`` before the order gets its id."""


class SalesBuilder:
    """Turns chunks of people into shop rows with stable, growing ids."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"sales:{seed}")
        self._ids = Ids()

    def build(self, people: list[Person], batch: Batch) -> None:
        rng = self._rng
        customers: list[tuple[tuple[int, int], Person, str, bool]] = []
        for person in people:
            if "sales" in person.systems:
                email = email_for(rng, person, "sales", _EMAIL)
                customers.append((record_times(rng, person, "sales"), person, email, False))
                if rng.random() < 0.04:
                    again = noise.case_variant(rng, email.strip())
                    customers.append((record_times(rng, person, "sales"), person, again, True))
        orders: list[Order] = []
        for times, person, email, duplicate in sorted(customers, key=lambda c: c[0][0]):
            customer_id = self._customer(times, person, email, batch)
            currency = words.CURRENCY[person.country]
            for created in self._order_times(times[0], duplicate):
                orders.append((created, customer_id, currency, self._status(created)))
        for order in sorted(orders):
            self._order(order, batch)

    def _customer(
        self,
        times: tuple[int, int],
        person: Person,
        email: str,
        batch: Batch,
    ) -> int:
        rng = self._rng
        customer_id = self._ids.take("customers")
        first, last = noise.name_variant(
            rng, person.first, person.last_in("sales"), nick=0.08, typos=0.03
        )
        phone = person.mobile if rng.random() < 0.6 else None
        if phone is None and person.landline and rng.random() < 0.15:
            phone = person.landline
        street, city, postcode = person.address_in("sales")
        row = (
            customer_id,
            email,
            first,
            last,
            phone.random_style(rng) if phone else None,
            street,
            city,
            postcode,
            person.country,
            1 if rng.random() < 0.45 else 0,
            timestamp(times[0]),
            timestamp(times[1]),
        )
        batch.member("sales.customers", row, person.entity_id)
        return customer_id

    def _order_times(self, customer_created: int, duplicate: bool) -> list[int]:
        rng = self._rng
        n = rng.randint(0, 1) if duplicate else count(rng, _ORDERS)
        return [rng.randint(customer_created, AS_OF_SEC - 600) for _ in range(n)]

    def _status(self, created: int) -> str:
        if created > AS_OF_SEC - 2 * DAY:
            return "pending"
        return pick(self._rng, _STATUS)

    def _order(self, order: Order, batch: Batch) -> None:
        rng = self._rng
        created, customer_id, currency, status = order
        order_id = self._ids.take("orders")
        total = 0.0
        prices = _PRICES[currency]
        for _ in range(pick_count(rng, _LINES)):
            index = rng.randrange(len(words.PRODUCTS))
            sku, name, _ = words.PRODUCTS[index]
            quantity = pick_count(rng, _QUANTITY)
            total += quantity * prices[index]
            line = (self._ids.take("order_lines"), order_id, sku, name, quantity, prices[index])
            batch.rows["sales.order_lines"].append(line)
        total = round(total, 2)
        updated = min(created + rng.randint(60, 20 * DAY), AS_OF_SEC - 1)
        row = (
            order_id,
            customer_id,
            f"#{100000 + order_id}",
            status,
            currency,
            total,
            timestamp(created),
            timestamp(updated),
        )
        batch.rows["sales.orders"].append(row)
        if status == "refunded" and rng.random() < 0.9:
            self._refund(order_id, total, created, batch)

    def _refund(self, order_id: int, total: float, created: int, batch: Batch) -> None:
        rng = self._rng
        amount = total if rng.random() < 0.7 else round(total * rng.uniform(0.2, 0.8), 2)
        row = (
            self._ids.take("refunds"),
            order_id,
            amount,
            rng.choice(words.REFUND_REASONS),
            timestamp(min(created + rng.randint(3, 40) * DAY, AS_OF_SEC - 1)),
        )
        batch.rows["sales.refunds"].append(row)


def pick_count(rng: random.Random, weighted: tuple[tuple[int, ...], tuple[int, ...]]) -> int:
    return rng.choices(*weighted)[0]
