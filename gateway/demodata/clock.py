"""The demo's fixed clock and fast timestamp formatting.

Every date in the demo is relative to ``AS_OF`` instead of ``now()`` so one
seed always produces the same files. Times are kept as integer seconds since
``EPOCH`` while generating and formatted through precomputed day and time
strings, which is far cheaper than ``datetime`` arithmetic for millions of rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

AS_OF = datetime(2026, 11, 1)
"""The moment the demo data describes; nothing happens after it (except planned close dates)."""

EPOCH = datetime(2015, 1, 1)
"""The earliest moment a demo record may be created."""

DAY = 86_400
AS_OF_SEC = int((AS_OF - EPOCH).total_seconds())
_FUTURE_DAYS = 400

_DAYS = [
    (EPOCH + timedelta(days=n)).strftime("%Y-%m-%d") for n in range(AS_OF_SEC // DAY + _FUTURE_DAYS)
]
_TIMES = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]


def timestamp(sec: int) -> str:
    """``sec`` seconds after ``EPOCH`` as ``'YYYY-MM-DD HH:MM:SS'``."""
    day, rest = divmod(sec, DAY)
    return f"{_DAYS[day]} {_TIMES[rest]}"


def date(sec: int) -> str:
    """The day of ``sec`` seconds after ``EPOCH`` as ``'YYYY-MM-DD'``."""
    return _DAYS[sec // DAY]
