"""A SQLite file that cannot be opened (here a folder, which fails as root too):
the failure says which source and what to do, and the thread aiosqlite started for
the connect has ended before the error is raised. It used to end later, after the
event loop that asked for it had closed, and died on "Event loop is closed"."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from connectors import SourceUnavailable
from connectors.ledger import Ledger
from connectors.sql import SQLConnector, SQLOptions

FOLDER = (
    "(the configured SQLite path is a folder, not a database file; "
    "point the source's url at the file)"
)


@pytest.fixture
def thread_failures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What threads die of during the test."""
    seen: list[str] = []

    def record(args: threading.ExceptHookArgs) -> None:
        seen.append(f"{args.thread.name if args.thread else '?'}: {args.exc_value!r}")

    monkeypatch.setattr(threading, "excepthook", record)
    return seen


def _in_closing_loops(fail: Callable[[], Awaitable[str]], thread_failures: list[str]) -> str:
    """``fail()``'s last answer, run in a few event loops, each closed as soon as it
    returns: no thread outlives a call, so none dies once its loop is closed."""
    before = set(threading.enumerate())
    answer, outlived = "", set()
    for _ in range(5):
        answer = asyncio.run(fail())  # type: ignore[arg-type]
        outlived |= set(threading.enumerate()) - before
    for thread in outlived:
        thread.join(1)
    assert thread_failures == [], "a thread died after its loop closed"
    assert not outlived, "a thread outlived its loop"
    return answer


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "engine"])
def test_a_folder_as_a_sqlite_source_is_named_and_leaves_no_thread(
    tmp_path: Path, thread_failures: list[str], direct: bool
) -> None:
    folder = tmp_path / "crm.db"
    folder.mkdir()
    options = SQLOptions(url=f"sqlite+aiosqlite:///{folder}", timeout=3, sqlite_direct=direct)

    async def health() -> str:
        connector = SQLConnector("crm", options)
        try:
            checked = await connector.health(["contacts"])
        finally:
            await connector.aclose()
        assert not checked.ok
        return checked.detail or ""

    async def lookup() -> str:
        connector = SQLConnector("crm", options)
        try:
            with pytest.raises(SourceUnavailable) as caught:
                await connector.lookup_many("contacts", "id", [1], ["id"])
        finally:
            await connector.aclose()
        return str(caught.value)

    assert _in_closing_loops(health, thread_failures).endswith(FOLDER)
    message = _in_closing_loops(lookup, thread_failures)
    assert message.startswith("source 'crm': OperationalError: ") and message.endswith(FOLDER)


@pytest.mark.parametrize("uri", [False, True], ids=["path", "file-uri"])
def test_a_folder_as_the_registry_is_named_and_leaves_no_thread(
    tmp_path: Path, thread_failures: list[str], uri: bool
) -> None:
    """A path is looked at before any connect; a ``file:`` URI is not: its connect
    fails, and leaves no thread either."""
    folder = tmp_path / "registry.db"
    folder.mkdir()
    url = f"sqlite:///file:{folder}?uri=true" if uri else f"sqlite:///{folder}"

    async def open_registry() -> str:
        ledger = Ledger(url)
        try:
            with pytest.raises(SourceUnavailable) as caught:
                await ledger.open()
        finally:
            await ledger.aclose()
        return str(caught.value)

    assert _in_closing_loops(open_registry, thread_failures) == (
        "source 'registry': the registry database is unavailable (OperationalError)"
        if uri
        else f"source 'registry': the registry database {folder} cannot be opened: it is a "
        "folder, not a database file; set `registry.url` to a file"
    )
