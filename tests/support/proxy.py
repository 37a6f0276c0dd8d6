"""A TCP proxy for fault tests: forwards to a real database and, on command,
refuses connections, adds latency or cuts every open connection.

Runs in the test's event loop on 127.0.0.1 only; everything it does is
bounded by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["pass", "refuse", "slow"]


@dataclass
class FaultProxy:
    target_host: str
    target_port: int
    mode: Mode = "pass"
    delay: float = 0.0
    accepted: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    delayed: int = 0
    """Chunks held back in ``slow`` mode so far (a request is in flight when it grows)."""
    endings: list[bytes] = field(default_factory=list)
    """For each finished connection, the last bytes the client sent (to see how it said goodbye)."""
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection, mid-query or not."""
        for task in list(self._pipes):
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "refuse":
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        tail = [b""]
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            await asyncio.gather(self._pipe(reader, up_writer, tail), self._pipe(up_reader, writer))
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        finally:
            self.endings.append(tail[0])
            self.in_flight -= 1
            self._pipes.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                up_writer.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tail: list[bytes] | None = None,
    ) -> None:
        while data := await reader.read(65536):
            if tail is not None:
                tail[0] = (tail[0] + data)[-64:]
            if self.mode == "slow" and self.delay:
                self.delayed += 1
                await asyncio.sleep(self.delay)
            writer.write(data)
            await writer.drain()
        writer.close()
