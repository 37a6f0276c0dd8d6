"""Streaming, cancellation, timeouts, health and closing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tracemalloc
from typing import Any

import pytest

from connectors._base import Connector, ScanRequest, Sort
from connectors.conformance._support import SuiteBase, collect
from connectors.errors import SourceTimeout

STREAM_MEMORY_BUDGET = 8 * 1024 * 1024
"""Bytes one scan may hold at its peak while streaming rows of a large table
(holding 50,000 rows of ``large_rows`` takes about 14 MB)."""
STREAMED_ROWS = 50_000
CANCELLATIONS = 12
"""More than a typical pool holds: a connection leaked per cancel would exhaust it."""


class LifecycleTests(SuiteBase):
    async def assert_still_works(self, connector: Connector) -> None:
        """The connector answers promptly and correctly, and reports healthy."""
        async with asyncio.timeout(max(connector.options.timeout, 1) * 3):
            rows = await collect(connector, self.request())
            health = await connector.health([self.table])
        self.assert_rows(rows, self.dataset.rows)
        assert health.ok, f"unhealthy after the test: {health.detail}"

    @pytest.mark.asyncio
    async def test_scan_yields_before_the_source_is_exhausted(self, connector: Connector) -> None:
        stream = connector.scan(self.request())
        aclose = getattr(stream, "aclose", None)
        assert aclose is not None, "scan must return an async generator (it needs aclose)"
        first = await anext(stream)
        assert set(first) == set(self.columns)
        await aclose()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        await self.assert_still_works(connector)

    @pytest.mark.asyncio
    async def test_scan_streams_a_large_table_in_bounded_memory(self, connector: Connector) -> None:
        large = self.large_table
        if large is None:
            pytest.skip("no large_table given (the suite's large_table setting)")
        request = ScanRequest(large.name, ["id", "label"])
        warm_up: Any = connector.scan(request)  # connections, compiled statements, caches
        await anext(warm_up)
        await warm_up.aclose()
        wanted = min(large.rows, STREAMED_ROWS)
        seen = 0
        gc.collect()
        tracemalloc.start()
        stream: Any = connector.scan(request)
        try:
            async with asyncio.timeout(60):
                async for _ in stream:
                    seen += 1
                    if seen >= wanted:
                        break
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            await stream.aclose()
        assert seen == wanted
        assert peak < STREAM_MEMORY_BUDGET, f"scanning {seen} rows peaked at {peak} bytes"
        await self.assert_still_works(connector)

    @pytest.mark.asyncio
    async def test_cancelled_calls_leave_the_connector_working(self, connector: Connector) -> None:
        caps = self.caps(connector)
        for i in range(CANCELLATIONS):
            if i % 2 and caps.can_lookup(self.key):
                call: Any = connector.lookup_many(self.table, self.key, [1, 2, 3], self.columns)
            else:
                call = collect(connector, self.request())
            task = asyncio.ensure_future(call)
            for _ in range(i // 2):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
        for _ in range(CANCELLATIONS):
            stream = connector.scan(self.request(order_by=self.key_order(connector)))
            await anext(stream)
            await stream.aclose()  # type: ignore[attr-defined]
        await self.assert_still_works(connector)

    def key_order(self, connector: Connector) -> list[Sort]:
        return [Sort(self.key)] if self.caps(connector).can_sort(self.key) else []

    @pytest.mark.asyncio
    async def test_cancelling_a_slow_read_frees_the_connector(self, connector: Connector) -> None:
        slow = self.slow_table
        if slow is None:
            pytest.skip("no slow_table given (the suite's slow_table setting)")
        for _ in range(3):
            task = asyncio.ensure_future(
                collect(connector, ScanRequest(slow.name, [slow.column], limit=1))
            )
            await asyncio.sleep(0.2)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                async with asyncio.timeout(connector.options.timeout + 5):
                    await task
            assert task.cancelled(), "the slow read finished instead of being cancelled"
        await self.assert_still_works(connector)

    @pytest.mark.asyncio
    async def test_a_slow_source_times_out(self, connector: Connector) -> None:
        slow = self.slow_table
        if slow is None:
            pytest.skip("no slow_table given (the suite's slow_table setting)")
        timeout = connector.options.timeout
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(SourceTimeout) as caught:
            async with asyncio.timeout(timeout * 3 + 5):
                await collect(connector, ScanRequest(slow.name, [slow.column], limit=1))
        assert caught.value.source == connector.name
        assert loop.time() - started < timeout + 5, "the timeout fired late"
        await self.assert_still_works(connector)

    @pytest.mark.asyncio
    async def test_health_reports_tables_present_and_missing(self, connector: Connector) -> None:
        health = await connector.health([self.table, self.missing_table])
        assert health.ok, health.detail
        assert dict(health.tables) == {self.table: True, self.missing_table: False}
        assert (await connector.health()).ok

    @pytest.mark.asyncio
    async def test_aclose_is_idempotent(self, connector: Connector) -> None:
        await connector.aclose()
        await connector.aclose()
