"""Where custview's time goes: cProfile of a benchmark operation, summarised three ways.

* the top functions by own time;
* wall time per area (graphql-core, strawberry, SQLAlchemy, custview's
  resolvers and connectors, the event loop waiting for the driver, ...),
  sampled by the innermost frame;
* custview's own functions by inclusive wall time, sampled (cProfile's
  cumulative times double count coroutines).

Both look at the main thread only: SQLite itself runs in aiosqlite's
worker threads and shows up as the event loop waiting. cProfile inflates
Python-heavy code, so read its shares, not its seconds. SQLAlchemy executes
inside greenlets whose stacks do not lead back to the awaiting coroutine, so
a custview function's inclusive share leaves out the SQLAlchemy execution it
triggered; the area table counts that time under SQLAlchemy.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import sysconfig
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[2]
_STDLIB = sysconfig.get_paths()["stdlib"] + "/"
TOP = 10

_AREAS: tuple[tuple[str, str], ...] = (
    ("/resolvers/", "custview resolvers"),
    ("/connectors/", "custview connectors"),
    ("/strawberry/", "strawberry"),
    ("/graphql/", "graphql-core"),
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/aiosqlite/", "aiosqlite"),
    ("/phonenumbers/", "phonenumbers"),
)
IDLE = "idle: event loop waiting for the driver threads"
OTHER = "other (stdlib: asyncio, json, ...)"


def calls_by_area(
    stats: pstats.Stats, requests: int, skip: frozenset[tuple[str, int, str]] = frozenset()
) -> dict[str, float]:
    """Function calls per request by file (custview's own and the standard
    library's by path, a package by its name, C functions as ``builtins``),
    most first: a count, so it does not move with the machine's load. The
    functions in ``skip`` (file, first line, name) are not counted."""
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    found: Counter[str] = Counter()
    for key, (_, calls, _, _, _) in entries.items():
        filename = key[0]
        if key in skip:
            continue
        if filename == "~":
            area = "builtins"
        elif "site-packages/" in filename:
            area = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif filename.startswith(_STDLIB):
            area = filename[len(_STDLIB) :]
        else:
            area = short(filename)
        found[area] += calls
    return {area: calls / requests for area, calls in found.most_common()}


def short(filename: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def profile(
    title: str, operation: Callable[[], Awaitable[None]], console: Console
) -> dict[str, Any]:
    """Run ``operation`` under cProfile, then again under the sampler; print and return both."""
    profiler = cProfile.Profile()
    profiler.enable()
    await operation()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total: float = stats.total_tt  # type: ignore[attr-defined]

    by_own = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:TOP]
    top = [
        {
            "function": f"{short(f)}:{line}({name})",
            "calls": calls,
            "own_s": round(own, 4),
            "cum_s": round(cum, 4),
            "share": round(own / total, 3) if total else 0.0,
        }
        for (f, line, name), (_, calls, own, cum, _) in by_own
    ]
    console.rule(f"profile: {title} ({total:.2f} s under cProfile)")
    table = Table(title=f"top {TOP} by own time", box=box.SIMPLE_HEAD)
    for col in ("function", "calls", "own s", "cum s", "share"):
        table.add_column(col, justify="left" if col == "function" else "right")
    for r in top:
        table.add_row(
            str(r["function"]), str(r["calls"]), f"{r['own_s']:.3f}", f"{r['cum_s']:.3f}", _pct(r)
        )
    console.print(table)
    custview, areas = await sampled(operation)
    table = Table(title="wall time by area (sampled, innermost frame)", box=box.SIMPLE_HEAD)
    table.add_column("area")
    table.add_column("share", justify="right")
    for label, share in areas.items():
        table.add_row(label, f"{share:.0%}")
    console.print(table)
    table = Table(
        title=f"custview functions, top {TOP} by inclusive wall time (sampled)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("function")
    table.add_column("share", justify="right")
    for r in custview:
        table.add_row(str(r["function"]), _pct(r))
    console.print(table)
    return {
        "total_s": round(total, 3),
        "top_own": top,
        "areas": areas,
        "custview_inclusive": custview,
    }


async def sampled(
    operation: Callable[[], Awaitable[None]], interval: float = 0.0005
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Shares of main-thread wall time: per custview function (inclusive) and per area (self).

    cProfile's cumulative times double count coroutines (every resume is a
    call), so this samples the main thread's stack from a helper thread. A
    sample counts once for every custview function on the stack, and once
    for the area of the innermost frame that belongs to one (idle when the
    event loop waits in its selector, i.e. for the driver's threads).
    """
    main = threading.get_ident()
    counts: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    samples = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal samples
        while not done.wait(interval):
            frame: FrameType | None = sys._current_frames().get(main)
            seen: set[str] = set()
            self_area = None
            if frame is not None and frame.f_code.co_filename.endswith("selectors.py"):
                self_area = IDLE
            while frame is not None:
                code = frame.f_code
                name = code.co_filename
                if "/resolvers/" in name or "/connectors/" in name:
                    seen.add(f"{short(name)}:{code.co_firstlineno}({code.co_name})")
                if self_area is None:
                    self_area = next((label for m, label in _AREAS if m in name), None)
                frame = frame.f_back
            counts.update(seen)
            areas[self_area or OTHER] += 1
            samples += 1

    switch = sys.getswitchinterval()
    sys.setswitchinterval(interval / 2)  # let the sampler in between bytecodes
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        await operation()
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(switch)
    functions = [
        {"function": name, "samples": n, "share": round(n / samples, 3)}
        for name, n in counts.most_common(TOP)
    ]
    return functions, {k: round(n / samples, 3) for k, n in areas.most_common()}


def _pct(row: dict[str, Any]) -> str:
    return f"{row['share']:.0%}"
