"""Pass 1's buckets joined apart (by several joiners) and merged give the customers
one join of every bucket gives: a customer whose records share keys in different
buckets is one customer, under its lowest record."""

from __future__ import annotations

import random
from array import array

import pytest

from resolvers.identity import KeyNode
from resolvers.walk import NUMBER
from resolvers.walk_join import Forest, forest, join_bucket, merge

Pair = tuple[int, KeyNode]
"""(record number, identity key) of one member."""


async def _joined(buckets: list[list[list[Pair]]], total: int, fanout: int = 50) -> array[int]:
    """One union-find over ``buckets`` (each a list of members' pairs), flattened."""
    parent = array(NUMBER, range(total))
    for members in buckets:
        await _join_one(members, parent, fanout)
    forest(parent)
    return parent


async def _join_one(members: list[list[Pair]], parent: array[int], fanout: int) -> None:
    hashes, numbers, keys, starts = array("q"), array(NUMBER), [], []
    for pairs in members:
        starts.append(len(hashes))
        for number, key in pairs:
            hashes.append(hash(key))
            numbers.append(number)
            keys.append(key)
    await join_bucket(hashes, numbers, keys, starts, parent, fanout, ())


async def _apart(
    buckets: list[list[list[Pair]]], total: int, joiners: int, fanout: int = 50
) -> array[int]:
    """The buckets joined by ``joiners`` (bucket ``b`` by joiner ``b % joiners``),
    each into a forest of its own, the forests merged in ``order``."""
    forests: list[Forest] = []
    for joiner in range(joiners):
        own = array(NUMBER, range(total))
        for members in buckets[joiner::joiners]:
            await _join_one(members, own, fanout)
        forests.append(forest(own))
    parent = array(NUMBER, range(total))
    for at, joined in enumerate(reversed(forests)):
        await merge(parent, joined, fresh=at == 0)
    forest(parent)
    return parent


async def test_a_customer_joined_through_keys_in_two_buckets_is_one_customer() -> None:
    # record 2 shares an email with record 1 (bucket 0) and a phone with record 0
    # (bucket 1): neither joiner sees all three together
    email, phone = ("email", "a@example.com"), ("phone", "+15550100")
    buckets = [[[(1, email), (2, email)]], [[(0, phone), (2, phone)]]]
    assert list(await _apart(buckets, 4, joiners=2)) == [0, 0, 0, 3]
    assert list(await _joined(buckets, 4)) == [0, 0, 0, 3]


@pytest.mark.parametrize("joiners", [2, 3, 5])
async def test_buckets_joined_apart_and_merged_give_the_customers_of_one_join(
    joiners: int,
) -> None:
    rng = random.Random(joiners)
    for _ in range(60):
        total = rng.randrange(1, 80)
        keys = [("email", f"k{n}") for n in range(rng.randrange(1, 40))]
        buckets: list[list[list[Pair]]] = [[[], []] for _ in range(8)]
        for number in range(total):
            member = number * 2 // total  # two members, numbered in order
            for key in rng.sample(keys, min(len(keys), rng.randrange(0, 3))):
                buckets[hash(key) % 8][member].append((number, key))
        fanout = rng.choice([1, 2, 50])
        one = await _joined(buckets, total, fanout)
        assert await _apart(buckets, total, joiners, fanout) == one
        assert all(one[n] <= n and one[one[n]] == one[n] for n in range(total))


@pytest.mark.parametrize(
    ("numbers", "roots"),
    [([3], [4]), ([3, 4], [0]), ([9], [0])],
    ids=["root-above", "sizes", "past-the-end"],
)
async def test_a_forest_that_does_not_fit_is_refused(numbers: list[int], roots: list[int]) -> None:
    parent = array(NUMBER, range(5))
    joined = Forest(array(NUMBER, numbers).tobytes(), array(NUMBER, roots).tobytes())
    with pytest.raises(ValueError, match="does not fit"):
        await merge(parent, joined, fresh=True)
    assert list(parent) == [0, 1, 2, 3, 4], "nothing taken in"
