"""The identity registry: steward decisions and batch links, identifiers only.

Everything here is a source record reference (``source/table/key``) or a
number: who decided, when, which pair, which score. No name, email or other
attribute value is ever stored (a test inspects the tables).

State is a fold of the ledger's append-only rows:

* **decisions** (``link``, ``unlink``, ``not_duplicate``, ``undo``), replayed
  in order; an ``undo`` cancels the event it names (an undo of an undo
  restores it);
* **erasure tombstones** (``erase``): one event per record of an erased
  customer (``a`` the record, ``b`` the customer id). They are final: no
  undo, and no decision may name an erased record again;
* **batch links** written by ``custview resolve``: the latest score per pair.

Each process keeps the fold in memory and follows the ledger incrementally:
its own decisions apply at once; other replicas' decisions after at most
``refresh_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from connectors import QueryError
from connectors.ledger import EventRow, Ledger, RunRow

__all__ = ["ACTIONS", "Decision", "Erased", "IdentityRegistry"]

ACTIONS = ("link", "unlink", "not_duplicate", "undo")
ERASE = "erase"


@dataclass(frozen=True, slots=True)
class Decision(EventRow):
    """One steward decision as recorded, and whether it still holds."""

    undone: bool = False


class Erased(QueryError):
    """A decision names a record of an erased customer."""


@dataclass(slots=True)
class _State:
    manual: dict[str, set[str]]
    detached: set[str]
    not_dup: dict[str, set[str]]
    undone: set[int]
    erased: dict[str, EventRow]
    """Erased record ref -> its tombstone."""


def _fold(events: Iterable[EventRow]) -> _State:
    ordered = sorted(events, key=lambda e: e.seq)
    undone: set[int] = set()
    for event in reversed(ordered):
        if event.seq not in undone and event.action == "undo" and event.target is not None:
            undone.add(event.target)
    manual: dict[str, set[str]] = defaultdict(set)
    detached: set[str] = set()
    not_dup: dict[str, set[str]] = defaultdict(set)
    erased: dict[str, EventRow] = {}
    for event in ordered:
        if event.action == ERASE:
            erased.setdefault(event.a, event)
            continue
        if event.seq in undone or event.action == "undo":
            continue
        a, b = event.a, event.b
        if event.action == "link" and b is not None:
            manual[a].add(b)
            manual[b].add(a)
            not_dup[a].discard(b)
            not_dup[b].discard(a)
        elif event.action == "unlink":
            detached.add(a)
            for other in manual.pop(a, set()):
                manual[other].discard(a)
        elif event.action == "not_duplicate" and b is not None:
            not_dup[a].add(b)
            not_dup[b].add(a)
            manual[a].discard(b)
            manual[b].discard(a)
    return _State(dict(manual), detached, dict(not_dup), undone, erased)


class IdentityRegistry:
    """Decisions and batch links over source record references."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._events: list[EventRow] = []
        self._event_seq = 0
        self._link_seq = 0
        self._state = _fold(())
        self._machine: dict[str, dict[str, float]] = {}
        self.last_run: RunRow | None = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        await self.ledger.open()
        await self.refresh(force=True)

    async def aclose(self) -> None:
        await self.ledger.aclose()

    async def refresh(self, *, force: bool = False) -> None:
        """Follows the ledger: new decisions, new batch links, the latest run."""
        if not force and self._clock() - self._checked < self.refresh_seconds:
            return
        async with self._lock:
            if not force and self._clock() - self._checked < self.refresh_seconds:
                return
            self._checked = self._clock()
            new = await self.ledger.events_after(self._event_seq)
            if new:
                self._events.extend(new)
                self._event_seq = new[-1].seq
                self._state = _fold(self._events)
            while True:
                rows = await self.ledger.links_after(self._link_seq)
                if not rows:
                    break
                for row in rows:
                    self._apply_link(row.a, row.b, row.score)
                self._link_seq = rows[-1].seq
            self.last_run = await self.ledger.last_run()

    def _apply_link(self, a: str, b: str, score: float | None) -> None:
        if score is None:
            self._machine.get(a, {}).pop(b, None)
            self._machine.get(b, {}).pop(a, None)
            return
        self._machine.setdefault(a, {})[b] = score
        self._machine.setdefault(b, {})[a] = score

    # -- what stitching asks -------------------------------------------------

    def manual_edges(self, ref: str) -> set[str]:
        return self._state.manual.get(ref, set())

    def machine_edges(self, ref: str) -> dict[str, float]:
        """Batch links of ``ref`` (other ref -> probability); none for detached or
        erased records."""
        state = self._state
        if ref in state.detached or ref in state.erased:
            return {}
        return {
            other: score
            for other, score in self._machine.get(ref, {}).items()
            if other not in state.detached and other not in state.erased
        }

    def followed_links(self, threshold: float) -> list[tuple[str, str, float]]:
        """Every batch link stitching follows: at or above ``threshold``, neither record
        detached nor erased; as ``(a, b, probability)`` with ``a < b``."""
        gone = self._state.detached | self._state.erased.keys()
        return [
            (a, b, score)
            for (a, b), score in self.stored_links().items()
            if score >= threshold and a not in gone and b not in gone
        ]

    def manual_links(self) -> list[tuple[str, str]]:
        """Every steward link that holds, as ``(a, b)`` with ``a < b``."""
        return [(a, b) for a, others in self._state.manual.items() for b in others if a < b]

    def not_duplicate_pairs(self) -> list[tuple[str, str]]:
        """Every pair a steward marked as not duplicates, as ``(a, b)`` with ``a < b``."""
        return [(a, b) for a, others in self._state.not_dup.items() for b in others if a < b]

    def detached_refs(self) -> frozenset[str]:
        """The records a steward unlinked (they follow no key and no batch link)."""
        return frozenset(self._state.detached)

    def stored_links(self) -> dict[tuple[str, str], float]:
        """Every batch link as ``(a, b) -> probability`` with ``a < b``."""
        return {
            (a, b): score
            for a, others in self._machine.items()
            for b, score in others.items()
            if a < b
        }

    def links_of(self, refs: Iterable[str]) -> list[tuple[str, str, float]]:
        """Every batch link touching ``refs``, as ``(a, b, probability)`` with ``a < b``."""
        found = {
            (min(ref, other), max(ref, other)): score
            for ref in refs
            for other, score in self._machine.get(ref, {}).items()
        }
        return [(a, b, score) for (a, b), score in sorted(found.items())]

    def is_erased(self, ref: str) -> bool:
        return ref in self._state.erased

    def tombstone(self, ref: str) -> EventRow | None:
        """The erasure event of ``ref``, if its customer was erased."""
        return self._state.erased.get(ref)

    def refuse_erased(self, *refs: str | None) -> None:
        for ref in refs:
            found = self._state.erased.get(ref or "")
            if found is not None:
                raise Erased(
                    f"'{ref}' belongs to a customer erased on {found.at:%Y-%m-%d} "
                    f"(erasure {found.seq}); erased records cannot be linked or decided on"
                )

    def is_detached(self, ref: str) -> bool:
        return ref in self._state.detached

    def not_duplicates(self, ref: str) -> set[str]:
        return self._state.not_dup.get(ref, set())

    def blocked(self, left: Iterable[str], right: set[str]) -> bool:
        """Whether a steward said a record of ``left`` is not the same as one of ``right``."""
        return any(not right.isdisjoint(self.not_duplicates(ref)) for ref in left)

    @property
    def has_run(self) -> bool:
        return self.last_run is not None

    @property
    def stats(self) -> dict[str, int]:
        return {
            "decisions": sum(e.action != ERASE for e in self._events),
            "erasures": len(self._state.erased),
            "links": sum(len(v) for v in self._machine.values()) // 2,
        }

    # -- decisions -----------------------------------------------------------

    def decisions(self, refs: Iterable[str] | None = None) -> list[Decision]:
        """Decisions (newest first) touching any of ``refs``, or all of them; none that
        names an erased record (the decision log is an answer too)."""
        wanted = None if refs is None else set(refs)
        by_seq = {e.seq: e for e in self._events}
        out = []
        for event in reversed(self._events):
            if event.action == ERASE:
                continue  # tombstones are not identity decisions
            touched = {event.a, event.b}
            if event.action == "undo" and event.target in by_seq:
                target = by_seq[event.target]
                touched |= {target.a, target.b}
            if wanted is not None and wanted.isdisjoint(touched):
                continue
            if any(ref in self._state.erased for ref in touched if ref):
                continue
            out.append(
                Decision(
                    event.seq,
                    event.at,
                    event.actor,
                    event.action,
                    event.a,
                    event.b,
                    event.target,
                    event.seq in self._state.undone,
                )
            )
        return out

    async def decide(self, actor: str, action: str, a: str, b: str | None = None) -> Decision:
        if action not in ACTIONS or action == "undo":
            raise QueryError(f"unknown decision '{action}'")
        if b is not None and a == b:
            raise QueryError("a decision needs two different records")
        await self.refresh(force=True)  # another replica may have erased one of them
        self.refuse_erased(a, b)
        row = await self.ledger.append_event(actor, action, a, b)
        await self.refresh(force=True)
        return Decision(row.seq, row.at, row.actor, row.action, row.a, row.b, None)

    async def undo(self, actor: str, seq: int) -> Decision:
        await self.refresh(force=True)
        target = next((e for e in self._events if e.seq == seq), None)
        if target is None:
            raise QueryError(f"there is no identity decision {seq}")
        if target.action == ERASE:
            raise QueryError(f"event {seq} is an erasure; erasures cannot be undone")
        if seq in self._state.undone:
            raise QueryError(f"decision {seq} is already undone; undo the undo to restore it")
        self.refuse_erased(target.a, target.b)
        row = await self.ledger.append_event(actor, "undo", target.a, target.b, seq)
        await self.refresh(force=True)
        return Decision(row.seq, row.at, row.actor, row.action, row.a, row.b, seq)

    async def erase(self, actor: str, customer_id: str, refs: Iterable[str]) -> list[EventRow]:
        """Tombstones for every record of an erased customer: from now on no answer
        shows a customer holding one of them, and no decision may name one."""
        await self.refresh(force=True)
        wanted = sorted(set(refs))
        self.refuse_erased(*wanted)
        rows = await self.ledger.append_events(actor, ERASE, [(r, customer_id) for r in wanted])
        await self.refresh(force=True)
        return rows
