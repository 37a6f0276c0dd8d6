"""How long the event loop stood still: for tests that something runs off the loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def loop_gaps(every: float = 0.005) -> AsyncIterator[list[float]]:
    """The time between turns of a task that sleeps ``every`` seconds, while the
    block runs (a long gap: something held the loop)."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []

    async def tick() -> None:
        while True:
            before = loop.time()
            await asyncio.sleep(every)
            gaps.append(loop.time() - before)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(every * 2)  # ticking before the block starts
    try:
        yield gaps
    finally:
        await asyncio.sleep(every * 2)  # the tick the block held back is counted
        ticker.cancel()
