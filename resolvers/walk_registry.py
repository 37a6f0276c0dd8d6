"""The identity registry's decisions and batch links over pass 1's record numbers.

Read-time stitching (:mod:`resolvers.identity`) follows the registry edge by
edge from a seed; the whole-view walk (:mod:`resolvers.walk`) applies all of
it at once to its union-find over record numbers, with the same outcome:

* records a steward **unlinked** join no other record by a key (they still
  count towards a key's fan-out, as a lookup still finds them);
* **steward links** join their two records like a shared key;
* then **batch links** at or above the link threshold join those groups, in
  :func:`resolvers.identity.link_order`, unless a steward marked a record of
  one group as **not a duplicate** of a record of the other. A not-duplicate
  mark stops batch links only: two records that share a key (or a steward
  link) are one customer whatever it says, at read time and here.

A link naming a record that no member table holds joins nothing. Erased
customers are left out by the walk itself.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from resolvers.identity import link_order
from resolvers.registry import IdentityRegistry

Locate = Callable[[str], int | None]
"""A record reference -> its record number, or None when no member table holds it."""


def find(parent: array[int], x: int) -> int:
    """The root of ``x`` (path halving)."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def union(parent: array[int], x: int, y: int) -> int:
    """Joins the groups of ``x`` and ``y`` under the lower root (so a customer's root
    stays its listing record); returns that root."""
    a, b = find(parent, x), find(parent, y)
    if a < b:
        parent[b] = a
        return a
    parent[a] = b
    return b


@dataclass(slots=True)
class RegistryLinks:
    """What pass 1 follows from the registry, as record numbers."""

    detached: set[int] = field(default_factory=set)
    manual: list[tuple[int, int]] = field(default_factory=list)
    model: list[tuple[int, int]] = field(default_factory=list)
    """Batch links in the order they are followed."""
    apart: dict[int, set[int]] = field(default_factory=dict)
    """Record -> the records a steward said it is not a duplicate of."""

    @classmethod
    def read(
        cls, registry: IdentityRegistry, threshold: float | None, locate: Locate
    ) -> RegistryLinks:
        found = cls()
        for ref in registry.detached_refs():
            number = locate(ref)
            if number is not None:
                found.detached.add(number)
        found.manual = _pairs(registry.manual_links(), locate)
        if threshold is not None:
            links = sorted(
                registry.followed_links(threshold), key=lambda t: link_order(t[2], *t[:2])
            )
            found.model = _pairs([(a, b) for a, b, _ in links], locate)
        for a, b in _pairs(registry.not_duplicate_pairs(), locate):
            found.apart.setdefault(a, set()).add(b)
            found.apart.setdefault(b, set()).add(a)
        return found

    async def join(self, parent: array[int], yield_every: int) -> None:
        """Steward links, then batch links, into ``parent`` (keys already joined)."""
        for step, (a, b) in enumerate(self.manual, 1):
            union(parent, a, b)
            if step % yield_every == 0:
                await asyncio.sleep(0)
        # per group, its records that a steward set apart from others
        marked: dict[int, set[int]] = {}
        for number in self.apart:
            marked.setdefault(find(parent, number), set()).add(number)
        for step, (a, b) in enumerate(self.model, 1):
            left, right = find(parent, a), find(parent, b)
            if left != right and not self._blocked(parent, marked.get(left, ()), right):
                root = union(parent, left, right)
                held = marked.pop(left, set()) | marked.pop(right, set())
                if held:
                    marked[root] = held
            if step % yield_every == 0:
                await asyncio.sleep(0)

    def _blocked(self, parent: array[int], marked: set[int] | tuple[()], right: int) -> bool:
        """Whether a record of one group (its ``marked`` records) was set apart from a
        record of the group rooted at ``right``."""
        return any(find(parent, other) == right for n in marked for other in self.apart[n])


def _pairs(refs: list[tuple[str, str]], locate: Locate) -> list[tuple[int, int]]:
    """The pairs whose two records both exist, as record numbers (order kept)."""
    out = []
    for a, b in refs:
        x, y = locate(a), locate(b)
        if x is not None and y is not None:
            out.append((x, y))
    return out
