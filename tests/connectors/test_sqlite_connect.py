"""A SQLite file that cannot be opened (here a folder, which fails as root too):
the failure says which source and what to do, and the thread aiosqlite started for
the connect has ended before the error is raised. It used to end later, after the
event loop that asked for it had closed, and died on "Event loop is closed"."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Generator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import SAWarning

from connectors import SourceUnavailable, sqlite_connect
from connectors.ledger import Ledger
from connectors.sql import SQLConnector, SQLOptions

FOLDER = (
    "(the configured SQLite file: it is a folder, not a database file; "
    "set the source's url to the file)"
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
    """A path is looked at before any connect, a ``file:`` URI's too."""
    folder = tmp_path / "registry.db"
    folder.mkdir()
    url = f"sqlite:///file:{folder}?uri=true" if uri else f"sqlite:///{folder}"
    assert _in_closing_loops(partial(_open_registry, url), thread_failures) == (
        f"source 'registry': the registry database {folder} cannot be opened: it is a "
        "folder, not a database file; set `registry.url` to the file"
    )


def test_a_registry_that_fails_to_connect_leaves_no_thread(
    tmp_path: Path, thread_failures: list[str]
) -> None:
    """A read-only URI naming no file: nothing in its path says it cannot be
    opened, and its connect fails."""
    url = f"sqlite:///file:{tmp_path / 'registry.db'}?mode=ro&uri=true"
    assert _in_closing_loops(partial(_open_registry, url), thread_failures) == (
        "source 'registry': the registry database is unavailable (OperationalError)"
    )


async def _open_registry(url: str) -> str:
    ledger = Ledger(url)
    try:
        with pytest.raises(SourceUnavailable) as caught:
            await ledger.open()
    finally:
        await ledger.aclose()
    return str(caught.value)


async def test_a_failed_connect_waits_for_its_thread_with_the_loop_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait for the connect's thread lets the loop run: joined on the loop's
    thread, it held every request for as long as the thread took to stop (up to
    0.5 s while other threads held the GIL). Here the thread ends only once the
    loop has run other work."""
    loop_ran = threading.Event()

    class StoppingSlowly:
        """aiosqlite's connection as a failed open leaves it: its thread still ending."""

        def __init__(self) -> None:
            self._thread = threading.Thread(target=loop_ran.wait, args=(10,))

        def __await__(self) -> Generator[Any, None, None]:
            self._thread.start()
            raise sqlite3.OperationalError("unable to open database file")
            yield  # a generator, as an awaitable's __await__ is

    made: list[StoppingSlowly] = []

    def connect(*args: object, **kwargs: object) -> StoppingSlowly:
        made.append(StoppingSlowly())
        return made[-1]

    monkeypatch.setattr(sqlite_connect.aiosqlite, "connect", connect)
    monkeypatch.setattr(sqlite_connect, "STOP_WAIT", 3.0)

    async def other_work() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        loop_ran.set()

    other = asyncio.create_task(other_work())
    try:
        with pytest.raises(sqlite3.OperationalError):
            await sqlite_connect.connect("x.db")
        assert loop_ran.is_set(), "the loop ran other work while the connect waited"
        assert not made[0]._thread.is_alive(), "the thread ended before the error was raised"
    finally:
        loop_ran.set()
        await other


async def test_a_registry_url_option_the_driver_ignores_is_warned_about_once(
    tmp_path: Path,
) -> None:
    """The connections are made with the arguments the engine's dialect made from
    the URL; making them again for the connect warned a second time."""
    with pytest.warns(SAWarning) as caught:
        ledger = Ledger(f"sqlite:///{tmp_path / 'registry.db'}?journal=wal")
    try:
        await ledger.open()
    finally:
        await ledger.aclose()
    assert [str(w.message)[:50] for w in caught] == [
        "Query string argument(s) 'journal' are not accepte"
    ]
    assert (tmp_path / "registry.db").is_file(), "the file the URL names was opened"


@pytest.mark.parametrize("authority", ["", "localhost"])
async def test_a_registry_file_uri_with_an_authority_sqlite_takes_opens(
    tmp_path: Path, authority: str
) -> None:
    """``file://localhost/path`` and ``file:///path`` name ``/path``, as SQLite reads
    them (not a folder ``/localhost``): the registry opens there and stays there."""
    target = tmp_path / "registry.db"
    ledger = Ledger(f"sqlite:///file://{authority}{target}?uri=true")
    try:
        await ledger.open()
    finally:
        await ledger.aclose()
    assert target.is_file()


@pytest.mark.parametrize(
    ("database", "named"),
    [
        ("file://localhost/var/x.db?mode=ro", "/var/x.db"),
        ("file:///var/x.db", "/var/x.db"),
        ("file:/var/x%20y.db", "/var/x y.db"),
        ("file://elsewhere/var/x.db", None),
        ("file:memdb?mode=memory&cache=shared", None),
        (":memory:", None),
    ],
)
def test_the_file_a_sqlite_url_names(database: str, named: str | None) -> None:
    from sqlalchemy.engine import make_url

    found = sqlite_connect.named_file(make_url(f"sqlite:///{database}"))
    assert found == (Path(named) if named else None)
