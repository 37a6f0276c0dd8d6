"""The request's DataLoaders read so that a cancelled field fails no other field.

Fields asking for the same key share its future. A task cancelled while it waits
for a future cancels it (``await`` passes a cancellation on), and strawberry then
cancels the batch's read when none of its futures is left: every other field
waiting for those keys fails with ``CancelledError`` though it was not cancelled.
The loader takes a cancelled future in its cache for none, so loading the keys
again reads them; :func:`load_again` does, for a caller that was not cancelled.
Its callers call it only where a load raised ``CancelledError``: the usual read
costs nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:  # strawberry (~20 MB) is loaded by the first request that reads
    from strawberry.dataloader import DataLoader

V = TypeVar("V")


def cancelling() -> bool:
    """Whether the running task is being cancelled (else a ``CancelledError`` it sees
    comes from a future it shared with a cancelled task)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def load_again(
    loader: DataLoader[Any, V], keys: Sequence[Any], cancelled: asyncio.CancelledError
) -> list[V]:
    """``loader.load_many(keys)`` again, after a load of the keys raised ``cancelled``:
    that error when the running task is being cancelled (it is its own), else the
    keys read again (as often as a cancelled task cancels the futures it shares).
    A read whose answer is a ``CancelledError`` (a connector answered a key with
    one), no future of it cancelled, raises it: read again it would answer the same,
    at once, without the loop ever getting a turn."""
    while True:
        if cancelling():
            raise cancelled
        futures = [cast("asyncio.Future[V]", loader.load(key)) for key in keys]
        try:
            return list(await asyncio.gather(*futures))
        except asyncio.CancelledError as error:
            if not any(future.cancelled() for future in futures):
                raise
            cancelled = error
