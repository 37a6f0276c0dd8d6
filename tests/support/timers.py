"""The timers a test's code sets on the running loop, counted."""

from __future__ import annotations

import asyncio

import pytest


def timers_set(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """From now on (until ``monkeypatch.undo()``), each time the running loop is
    asked for a timer (``call_at``) is added to the list returned."""
    loop = asyncio.get_running_loop()
    scheduled: list[float] = []
    call_at = loop.call_at

    def counted(when: float, callback: object, *args: object, **kwargs: object) -> object:
        scheduled.append(when)
        return call_at(when, callback, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_at", counted)
    return scheduled
