"""The planner's collector pause: counted, and it leaves the switch as it found it."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from resolvers import collector
from resolvers.collector import collector_paused


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


async def test_overlapping_sections_keep_it_off_until_the_last_one_ends() -> None:
    first_in, second_out = asyncio.Event(), asyncio.Event()
    seen: list[bool] = []

    async def long() -> None:
        with collector_paused():
            first_in.set()
            await second_out.wait()
            seen.append(gc.isenabled())  # the other section has ended: still off

    async def short() -> None:
        await first_in.wait()
        with collector_paused():
            seen.append(gc.isenabled())
        second_out.set()

    await asyncio.gather(long(), short())

    assert seen == [False, False]
    assert gc.isenabled()


def test_it_is_back_on_after_an_error() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")

    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass

    assert not gc.isenabled()


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_a_pause_kept_up_past_its_bound_by_overlapping_sections_collects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with collector_paused():
        with collector_paused():
            cycle = _Node()
            gone = weakref.ref(cycle)
            del cycle
        assert gone() is not None, "within the bound: nothing collected"

        monkeypatch.setattr(collector, "MAX_PAUSE", 0.0)
        with collector_paused():
            pass
        assert gone() is None, "past it: the section that ended collected"
        assert not gc.isenabled(), "and the outer section still holds the pause"

    assert gc.isenabled()


async def test_one_section_open_past_its_bound_collects_on_the_loops_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collector, "MAX_PAUSE", 0.05)
    with collector_paused():
        cycle = _Node()
        gone = weakref.ref(cycle)
        del cycle
        assert gone() is not None
        for _ in range(100):  # nothing else starts or ends a section meanwhile
            await asyncio.sleep(0.02)
            if gone() is None:
                break
        assert gone() is None, "the timer collected while the section stayed open"
        assert not gc.isenabled()
    assert gc.isenabled()
