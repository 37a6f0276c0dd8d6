"""Pass 1's join of one hash bucket, and the join split among several joiners.

The export walk (:mod:`resolvers.walk`) joins the records sharing an identity
key with a union-find over record numbers, a hash bucket of keys at a time.
Buckets partition the keys, not the customers: one customer's records may be
joined by an email in one bucket and a phone in another. So buckets joined
apart (by export workers, :class:`JoinTask`) each give a forest over every
record (:class:`Forest`), and the joining process merges the forests. Union by
the lower root makes a customer's root its lowest record number whatever the
order of the unions, so the merged forests give the same customers, and the
same listing records, as one join of every bucket in order.
"""

from __future__ import annotations

import asyncio
from array import array
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from itertools import pairwise
from operator import lt

from resolvers.identity import KeyNode
from resolvers.walk_registry import union

YIELD_EVERY = 50_000
"""CPU-bound loops give the event loop a turn this often (other requests, cancellation)."""


@dataclass(slots=True)
class JoinTask:
    """What a joiner needs to join some buckets of pass 1's keys."""

    members: list[tuple[int, int]]
    """(rank, first record number) of every member table read fine, in rank order."""
    total: int
    """Member records in all (the forest's size)."""
    fanout: int
    """``identity.max_key_fanout``."""
    detached: frozenset[int] = frozenset()
    """Records that join by no key (unlinked by a steward)."""
    buckets: list[int] = field(default_factory=list)
    """The buckets this joiner joins."""


@dataclass(slots=True)
class Forest:
    """A joiner's union-find, flattened: each record that is not its group's lowest,
    and that lowest record (``array`` bytes of the walk's record numbers)."""

    numbers: bytes
    roots: bytes


async def join_bucket(
    hashes: array[int],
    numbers: array[int],
    keys: list[KeyNode],
    starts: list[int],
    parent: array[int],
    fanout: int,
    detached: Collection[int],
) -> None:
    """Union-find over the records sharing a key of one bucket: its (key hash, record
    number) pairs and their keys, each member's pairs from its ``starts`` entry on.
    Records are paired by the key's hash and joined only when their keys are equal:
    two keys whose hashes collide stay two keys. ``detached`` records join by no key
    (but count towards a key's fan-out)."""
    first: dict[int, int] = {}
    """Key hash -> the pair of its first holder (an index into this bucket)."""
    collided: dict[KeyNode, int] = {}
    """Key -> its first holder's pair, for keys whose hash another key had first."""
    steps = 0
    for lo, hi in pairwise([*starts, len(hashes)]):
        suspects, crowded = _crowded(hashes, keys, lo, hi, fanout)
        for at, key_hash in enumerate(hashes[lo:hi], lo):
            if key_hash in suspects and keys[at] in crowded:
                continue
            if detached and numbers[at] in detached:
                continue
            other = first.setdefault(key_hash, at)
            if other == at:
                continue
            if keys[other] != keys[at]:
                other = collided.setdefault(keys[at], at)
                if other == at:
                    continue
            union(parent, numbers[other], numbers[at])
        steps += hi - lo
        if steps >= YIELD_EVERY:
            steps = 0
            await asyncio.sleep(0)


def _crowded(
    hashes: array[int], keys: list[KeyNode], lo: int, hi: int, fanout: int
) -> tuple[set[int], set[KeyNode]]:
    """The keys held by more than ``fanout`` records of one member (pairs ``lo:hi``),
    and their hashes: counted by hash, then, for a hash past the limit, by key."""
    counts = Counter(hashes[lo:hi])
    suspects = {h for h, n in counts.items() if n > fanout}
    del counts
    if not suspects:
        return suspects, set()
    by_key = Counter(keys[at] for at in range(lo, hi) if hashes[at] in suspects)
    return suspects, {key for key, n in by_key.items() if n > fanout}


def forest(parent: array[int]) -> Forest:
    """``parent`` flattened (union by the lower number keeps ``parent[x] <= x``, so
    one forward pass does it), as the records that are not their group's root."""
    numbers, roots = array(parent.typecode), array(parent.typecode)
    for number, up in enumerate(parent):
        if up != number:
            root = parent[up]
            parent[number] = root
            numbers.append(number)
            roots.append(root)
    return Forest(numbers.tobytes(), roots.tobytes())


async def merge(parent: array[int], joined: Forest, fresh: bool) -> None:
    """Joins ``joined``'s groups into ``parent``; ``fresh``: nothing is joined in
    ``parent`` yet, so the flattened forest is taken as it is."""
    numbers, roots = array(parent.typecode), array(parent.typecode)
    numbers.frombytes(joined.numbers)
    roots.frombytes(joined.roots)
    # each record above its root, within the walk's records: else the forward pass
    # that flattens ``parent`` would leave groups split
    if (
        len(numbers) != len(roots)
        or not all(map(lt, roots, numbers))
        or (numbers and max(numbers) >= len(parent))
    ):
        raise ValueError(
            f"a joined forest does not fit: {len(numbers)} records for {len(roots)} roots, "
            f"not each above its root or past the walk's {len(parent)} records"
        )
    if fresh:
        for number, root in zip(numbers, roots, strict=True):
            parent[number] = root
        return
    for step, (number, root) in enumerate(zip(numbers, roots, strict=True), 1):
        union(parent, number, root)
        if step % YIELD_EVERY == 0:
            await asyncio.sleep(0)
