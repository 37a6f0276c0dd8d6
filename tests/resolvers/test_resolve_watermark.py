"""The incremental resolve's watermark compares a source's times as the source wrote them."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from resolvers.resolve import _watermark_time


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This host in New York (UTC-5 in January), as a server outside UTC would be."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_naive_source_time_is_not_shifted_by_the_host_zone(new_york: None) -> None:
    # the demo's updated_at columns are naive: a record changed at 03:00 must be
    # newer than a watermark of 00:00 on a host whose local zone is not UTC
    # (shifting the mark by the host's offset made it 05:00 and lost the change)
    mark = _watermark_time("2031-01-01T00:00:00")
    assert mark == dt.datetime(2031, 1, 1, 0, 0)
    assert dt.datetime(2031, 1, 1, 3, 0) > mark


def test_an_aware_source_time_becomes_naive_utc(new_york: None) -> None:
    assert _watermark_time("2031-01-01T01:00:00+01:00") == dt.datetime(2031, 1, 1, 0, 0)
    assert _watermark_time("2031-01-01T00:00:00-05:00") == dt.datetime(2031, 1, 1, 5, 0)
