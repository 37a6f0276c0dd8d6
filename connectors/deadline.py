"""A deadline shared by every source call made for one piece of work.

Whoever starts the work (the gateway, for one GraphQL request) opens a
:func:`deadline_scope`; every source call made inside it, and in tasks
started inside it, stops when the deadline passes — each connector's own
``timeout`` is cut to the time left (:func:`time_left`), and the resilience
wrapper stops waiting at the bulkhead, retrying and backing off.

A call cut short by the deadline raises :class:`~connectors.errors.DeadlineExceeded`
(a ``SOURCE_TIMEOUT``); it does not count against the source's circuit
breaker, because the time may have been spent on other sources.

Outside a scope (exports, ``custview check``) there is no deadline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from connectors.errors import DeadlineExceeded


@dataclass(frozen=True, slots=True)
class Deadline:
    at: float
    """When it passes, on :func:`time.monotonic`'s clock."""
    seconds: float
    """The whole budget, for messages."""

    def left(self) -> float:
        return self.at - time.monotonic()

    def exceeded(self, source: str) -> DeadlineExceeded:
        """For a call the deadline cut short: this source was the slow one."""
        return DeadlineExceeded(
            f"no answer before the request's deadline ({self.seconds:g} s)", source=source
        )

    def passed(self, source: str) -> DeadlineExceeded:
        """For a call not even started: the time went to other calls."""
        return DeadlineExceeded(
            f"not asked: the request's deadline ({self.seconds:g} s) had passed", source=source
        )


_current: ContextVar[Deadline | None] = ContextVar("custview_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The deadline of the work in progress, if there is one."""
    return _current.get()


@contextlib.contextmanager
def deadline_scope(seconds: float | None) -> Iterator[Deadline | None]:
    """Source calls inside (and in tasks started inside) end ``seconds`` from now;
    ``None`` opens no deadline."""
    deadline = None if seconds is None else Deadline(time.monotonic() + seconds, seconds)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        with contextlib.suppress(ValueError):  # left in another context: nothing to undo
            _current.reset(token)


def time_left(timeout: float) -> tuple[float, Deadline | None]:
    """The seconds a call may take — its own ``timeout`` or the time left before
    the deadline, whichever is shorter — and the deadline when that is what binds.

    A connector uses it wherever it applies its timeout: with no time left it
    raises ``deadline.passed(source)`` without calling the source, and when the
    deadline cuts a call, ``deadline.exceeded(source)``.
    """
    deadline = _current.get()
    if deadline is None:
        return timeout, None
    left = deadline.left()
    if left < timeout:
        return max(left, 0.0), deadline
    return timeout, None
