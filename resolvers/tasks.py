"""Concurrent work for one request that ends together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def gather_or_cancel(*work: Awaitable[Any]) -> list[Any]:
    """``asyncio.gather(*work)``, except that when one fails (or the caller is
    cancelled) the others are cancelled instead of running on after the answer
    (``gather`` leaves them running: source reads for nobody). The first failure
    is raised as it is, not wrapped as a ``TaskGroup`` would wrap it. (graphql-core's
    ``gather_with_cancel`` does the same, but exports must not import graphql.)

    Only for work that owns what it waits for (a source call): a task cancelled
    while it awaits a DataLoader's future cancels that future, which other fields
    of the request share, and they would fail with ``CancelledError``."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
