"""`custview serve` as a real child process on a free loopback port, for tests
of what only a process shows: signals, exit codes, several replicas."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[2]
BOUND = 60.0
"""Seconds after which a step that should happen is declared not to happen."""


class ServeProcess:
    """``custview serve`` as a child process on a free loopback port."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self.url = ""
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, config: Path, command: tuple[str, ...] = ("-m", "gateway"), **env: str
    ) -> ServeProcess:
        """``python COMMAND serve`` (``command``: another entry point, such as a
        script running custview with a bug), with ``env`` added to the environment."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, *command, "serve", "--config", str(config), "--port", "0",
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )  # fmt: skip
        gateway = cls(process)
        async with asyncio.timeout(BOUND):
            while not gateway.url:
                line = await gateway._line()
                found = re.search(r"Uvicorn running on (http://\S+)", line)
                if found:
                    gateway.url = found.group(1)
        gateway._reader = asyncio.create_task(gateway._drain())
        return gateway

    async def _line(self) -> str:
        assert self.process.stderr is not None
        raw = await self.process.stderr.readline()
        if not raw:
            raise AssertionError("custview serve stopped:\n" + "".join(self.log))
        line = raw.decode(errors="replace")
        self.log.append(line)
        return line

    async def _drain(self) -> None:
        assert self.process.stderr is not None
        while raw := await self.process.stderr.readline():
            self.log.append(raw.decode(errors="replace"))

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still running after a while."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(BOUND / 4):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await self._reader


async def custview_sessions(admin_url: str) -> int:
    """Sessions custview's pools (``application_name``) hold on ``admin_url``'s
    PostgreSQL database, as the server sees them."""
    return await _over_custview_sessions(admin_url, "count(*)")


async def end_custview_sessions(admin_url: str) -> int:
    """What a PostgreSQL shutdown does to its clients: every custview session on
    ``admin_url``'s database is ended by the server (FATAL 57P01); returns how many."""
    return await _over_custview_sessions(admin_url, "count(pg_terminate_backend(pid))")


async def _over_custview_sessions(admin_url: str, select: str) -> int:
    engine = create_async_engine(admin_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    f"SELECT {select} FROM pg_stat_activity "
                    "WHERE datname = :db AND application_name = 'custview'"
                ),
                {"db": make_url(admin_url).database},
            )
            return int(found.scalar_one())
    finally:
        await engine.dispose()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for ``check`` (another process's state: polled) to hold, at most BOUND s."""
    try:
        async with asyncio.timeout(BOUND):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what}: still not so after {BOUND:g} s") from None


def run_custview(*args: str, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS`` to its end, without the caller's ``CUSTVIEW_*``
    variables (``extra`` added), its audit log in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTVIEW_")}
    env.update(CUSTVIEW_AUDIT_LOG=str(tmp_path / "audit.jsonl"), **extra)
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=BOUND,
    )  # fmt: skip
