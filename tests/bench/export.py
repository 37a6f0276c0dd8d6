"""``make bench``, exports: customers/s and peak RSS exporting every demo customer.

For each size (the run's sizes; 1,000,000 added with ``BENCH_EXPORT_1M=1``)
and each format (CSV, Arrow), two contenders run in their own subprocess, so
its peak RSS (``VmHWM``, else ``ru_maxrss``) is that export's alone:

* **custview**: the export path as ``custview export`` runs it (stitching a
  chunk of seeds at a time, golden records, metrics, the format encoder),
  over the demo's three SQL systems, written to a file;
* **floor**: plain ``sqlite3`` reading every member record (the rows that
  custview stitches, same columns) and writing them in the same format with
  the same writer (``csv`` module, pyarrow record batches of 500 rows).

It prints rows/s and peak RSS of both and the ratio, and writes
``bench-data/export-results.json``. ``--registry`` first runs ``custview
resolve`` over the data (once; kept as ``export-registry.db`` next to it) and
exports with that identity registry followed, as a production deployment does.
The goal of issue 8 is >= 50,000 customers/s and <= 300 MB peak RSS at 1M
customers. ``--profile`` runs the custview export of the first size once more
under pyinstrument and prints where its time goes.

    python -m tests.bench.export [--sizes 100000] [--one-million] [--formats csv arrow]
                                 [--profile] [--registry] [--workers 0 2]

``--workers 0 2`` measures the export with ``exports.workers`` 0 (in process)
then 2; CPU s is the exporting process's plus its workers' (``RUSAGE_CHILDREN``),
and each worker's peak RSS is printed beside the exporter's.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[2]
FORMATS = ("csv", "arrow")
ONE_MILLION = 1_000_000
CHUNK = 500
REGISTRY = "export-registry.db"
"""The batch links of ``--registry``, in the data directory."""


# -- the contenders, each run in a child process ---------------------------------


async def _custview(
    data_dir: Path, fmt: str, out: Path, registry: bool = False, workers: int | None = None
) -> tuple[int, list[dict[str, float]]]:
    """The export's rows and its workers' usage (``workers``: ``exports.workers``,
    None for the setting's default)."""
    from gateway.export_workers import ExportWorkers
    from gateway.formats import encode
    from gateway.settings import load_settings
    from resolvers.export import columns, rows
    from resolvers.view import Federation
    from tests.bench.run import demo_dir_env, sql_only_config

    with demo_dir_env(data_dir):
        if registry:
            from tests.bench.identity import _config

            config = _config(data_dir, data_dir / REGISTRY)
        else:
            config = sql_only_config(data_dir)
        loaded = load_settings(config)
    model = loaded.settings.model
    if workers is None:
        workers = loaded.settings.exports.workers
    names = columns(model, "customers")
    # as the CLI's: told the format, the workers encode their chunks
    builders = ExportWorkers(loaded, workers, fmt, names) if workers else None
    if registry:
        federation = loaded.create_federation()
        await federation.open()
    else:
        federation = Federation(model, loaded.create_connectors())
    count = 0

    async def counted() -> Any:
        nonlocal count
        async for chunk in rows(federation, "customers", names, builders=builders):
            count += len(chunk)
            yield chunk

    try:
        with out.open("wb") as sink:
            async for data in encode(fmt, names, counted()):
                sink.write(data)
    finally:
        await federation.aclose()
    return count, builders.usage if builders is not None else []


def _member_rows(data_dir: Path) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """(columns, rows) of every member record of the SQL demo, 500 rows at a time."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    model, sources = config["model"], config["sources"]
    for member in model["customer"]["members"]:
        if sources[member["source"]]["connector"] != "sql":
            continue
        db = data_dir / f"{member['source']}.db"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            wanted = ["id", *member["fields"].values(), *member.get("identity", {}).values()]
            names: list[str] = []
            for item in wanted:
                for column in item if isinstance(item, list) else [item]:
                    for part in column.replace("{", " ").replace("}", " ").split():
                        if part not in names:
                            names.append(part)
            cursor = con.execute(f"SELECT {', '.join(names)} FROM {member['table']} ORDER BY id")
            while batch := cursor.fetchmany(CHUNK):
                yield names, batch
        finally:
            con.close()


def _floor(data_dir: Path, fmt: str, out: Path) -> int:
    count = 0
    with out.open("wb") as sink:
        if fmt == "csv":
            text = open(sink.fileno(), "w", closefd=False, newline="", encoding="utf-8")  # noqa: SIM115
            writer = csv.writer(text, lineterminator="\n")
            for names, batch in _member_rows(data_dir):
                if count == 0:
                    writer.writerow(names)
                writer.writerows(batch)
                count += len(batch)
            text.flush()
            return count
        import pyarrow as pa

        writers: dict[tuple[str, ...], Any] = {}
        for names, batch in _member_rows(data_dir):
            columns = list(zip(*batch, strict=True))
            arrays = [pa.array(c) for c in columns]
            arrays = [
                pa.array(c, pa.string()) if a.type == pa.null() else a
                for a, c in zip(arrays, columns, strict=True)
            ]
            record = pa.record_batch(arrays, names=names)
            key = tuple(names)
            if key not in writers:
                for previous in writers.values():
                    previous.close()
                writers = {key: pa.ipc.new_stream(sink, record.schema)}
            try:
                writers[key].write_batch(record)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                writers[key].write_batch(record.cast(writers[key].schema))
            count += len(batch)
        for writer in writers.values():
            writer.close()
    return count


def _peak_rss_kb(maxrss_kb: int) -> int:
    """This process's peak RSS. Linux keeps ``ru_maxrss`` across exec, so a child
    started by a big parent would report the parent's size; ``VmHWM`` belongs to
    the new address space alone."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return maxrss_kb


def _live_children() -> list[tuple[float, float]]:
    """(CPU seconds, peak RSS KiB) of this process's live children (the fork server)."""
    found = []
    tick = os.sysconf("SC_CLK_TCK")
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            peak = next(
                (float(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:")), 0.0
            )
            found.append(((int(stat[11]) + int(stat[12])) / tick, peak))
    return found


def child(contender: str, data_dir: Path, fmt: str, out: Path) -> dict[str, Any]:
    """Run one contender in this process; its rows, seconds and peak RSS."""
    started = time.perf_counter()
    workers: list[dict[str, float]] = []
    if contender.startswith("custview"):
        name, _, count_text = contender.partition(":w")
        chosen = int(count_text) if count_text else None
        count, workers = asyncio.run(
            _custview(data_dir, fmt, out, name == "custview+registry", chosen)
        )
    else:
        count = _floor(data_dir, fmt, out)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    # workers are the fork server's children: their own account of CPU and peak RSS,
    # and the fork server's (alive until this process ends) from /proc
    helpers = _live_children()
    worker_cpu = sum(w["cpu_seconds"] for w in workers)
    helper_cpu = children.ru_utime + children.ru_stime + sum(h[0] for h in helpers)
    return {
        "rows": count,
        "seconds": round(seconds, 2),
        # on a shared machine wall time includes waiting for a core; CPU time does not
        "cpu_seconds": round(cpu + worker_cpu + helper_cpu, 2),
        "exporter_cpu_seconds": round(cpu, 2),
        "worker_cpu_seconds": round(worker_cpu + helper_cpu, 2),
        "rows_per_s": round(count / seconds) if seconds else 0,
        "peak_rss_mb": round(_peak_rss_kb(usage.ru_maxrss) / 1024, 1),
        "workers": len(workers),
        "worker_peak_rss_mb": [round(w["peak_rss_kb"] / 1024, 1) for w in workers],
        # at the end: a worker's own pages (the rest it shares with the fork server)
        "worker_private_mb": [round(w.get("private_kb", 0) / 1024, 1) for w in workers],
        "worker_pss_mb": [round(w.get("pss_kb", 0) / 1024, 1) for w in workers],
        "worker_waited_s": [round(w.get("waited_seconds", 0), 2) for w in workers],
        "helper_peak_rss_mb": [round(h[1] / 1024, 1) for h in helpers],
        "bytes": out.stat().st_size,
    }


def _measure(contender: str, data_dir: Path, fmt: str) -> dict[str, Any]:
    out = data_dir / f"export-{contender}.{fmt}"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench.export", "--child", contender, str(data_dir), fmt],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{contender} {fmt} export failed:\n{done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    finally:
        out.unlink(missing_ok=True)


# -- the run ---------------------------------------------------------------------


def ensure_registry(data_dir: Path, console: Console) -> None:
    """``custview resolve`` over ``data_dir`` into its ``export-registry.db``, once."""
    from gateway.settings import load_settings
    from resolvers.resolve import resolve
    from tests.bench.identity import _config
    from tests.bench.run import demo_dir_env

    if (data_dir / REGISTRY).exists():
        return

    async def run() -> None:
        with demo_dir_env(data_dir):
            loaded = load_settings(_config(data_dir, data_dir / REGISTRY))
        federation = loaded.create_federation()
        await federation.open()
        try:
            report = await resolve(federation, full=True)
        finally:
            await federation.aclose()
        console.print(
            f"  custview resolve: {report.links:,} links, {report.candidates:,} candidates"
        )

    console.print(f"[bold]custview resolve[/] over {data_dir} …")
    asyncio.run(run())


def sizes_for(sizes: Sequence[int], one_million: bool = False) -> list[int]:
    wanted = list(sizes)
    if (one_million or os.environ.get("BENCH_EXPORT_1M") == "1") and ONE_MILLION not in wanted:
        wanted.append(ONE_MILLION)
    return wanted


def run(
    sizes: Sequence[int],
    data_root: Path,
    console: Console,
    formats: Sequence[str] = FORMATS,
    one_million: bool = False,
    registry: bool = False,
    workers: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Measure every size and format (and each ``exports.workers`` count of ``workers``,
    one after the other; None: the setting's default); print the table; write
    export-results.json."""
    from tests.bench.run import ensure_data

    results = []
    base = "custview+registry" if registry else "custview"
    contenders = [base] if workers is None else [f"{base}:w{n}" for n in workers]
    for customers in sizes_for(sizes, one_million):
        data_dir = ensure_data(data_root, customers, console)
        if registry:
            ensure_registry(data_dir, console)
        for fmt in formats:
            floor = _measure("floor", data_dir, fmt)
            for contender in contenders:
                console.print(f"[bold]export[/] {customers:,} customers as {fmt} ({contender}) …")
                custview = _measure(contender, data_dir, fmt)
                results.append(
                    {
                        "customers": customers,
                        "format": fmt,
                        "registry": registry,
                        "contender": contender,
                        "custview": custview,
                        "floor": floor,
                        "ratio_rows_per_s": round(floor["rows_per_s"] / custview["rows_per_s"], 1)
                        if custview["rows_per_s"]
                        else None,
                    }
                )
    report = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "exports": results}
    console.print(results_table(results))
    output = data_root / "export-results.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"export results written to {output}")
    return report


def results_table(results: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="exports: every customer, custview vs plain sqlite3 over the member rows")
    for column in (
        "customers",
        "format",
        "contender",
        "custview rows",
        "custview rows/s",
        "custview CPU s (workers)",
        "custview peak RSS MB (workers)",
        "floor rows",
        "floor rows/s",
        "floor CPU s",
        "floor peak RSS MB",
        "floor/custview rows/s",
    ):
        table.add_column(column, justify="right")
    for r in results:
        cv, fl = r["custview"], r["floor"]
        worker_cpu = f" ({cv['worker_cpu_seconds']})" if cv.get("workers") else ""
        worker_rss = cv.get("worker_peak_rss_mb") or []
        table.add_row(
            f"{r['customers']:,}",
            r["format"],
            r.get("contender", "custview"),
            f"{cv['rows']:,}",
            f"{cv['rows_per_s']:,}",
            f"{cv.get('cpu_seconds', '-')}{worker_cpu}",
            f"{cv['peak_rss_mb']}"
            + (f" ({', '.join(map(str, worker_rss))})" if worker_rss else ""),
            f"{fl['rows']:,}",
            f"{fl['rows_per_s']:,}",
            f"{fl.get('cpu_seconds', '-')}",
            f"{fl['peak_rss_mb']}",
            f"{r['ratio_rows_per_s']}x",
        )
    return table


def profile(data_dir: Path, fmt: str, console: Console) -> None:
    """Where the custview export's time goes (pyinstrument, wall-clock samples)."""
    from pyinstrument import Profiler

    out = data_dir / f"export-profile.{fmt}"
    profiler = Profiler(interval=0.005)  # the coarse clock: low overhead
    profiler.start()
    try:
        asyncio.run(_custview(data_dir, fmt, out, workers=0))
    finally:
        profiler.stop()
        out.unlink(missing_ok=True)
    console.print(profiler.output_text(unicode=True, color=console.is_terminal))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.export", description=__doc__)
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000])
    parser.add_argument(
        "--one-million", action="store_true", help="also 1,000,000 customers (as BENCH_EXPORT_1M=1)"
    )
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument(
        "--profile", action="store_true", help="then profile custview's export of the first size"
    )
    parser.add_argument(
        "--registry",
        action="store_true",
        help="export with the links of a custview resolve run (and the registry) followed",
    )
    parser.add_argument(
        "--workers",
        nargs="+",
        type=int,
        help="exports.workers counts to measure one after the other (default: the setting's)",
    )
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    parser.add_argument("--child", nargs=3, metavar=("CONTENDER", "DATA_DIR", "FORMAT"))
    args = parser.parse_args(argv)
    if args.child:
        contender, data_dir, fmt = args.child
        out = Path(data_dir) / f"export-{contender}.{fmt}"
        print(json.dumps(child(contender, Path(data_dir), fmt, out)))
        return 0
    console = Console() if sys.stdout.isatty() else Console(width=160)
    run(
        args.sizes,
        args.data_dir,
        console,
        args.formats,
        args.one_million,
        args.registry,
        args.workers,
    )
    if args.profile:
        from tests.bench.run import ensure_data

        profile(ensure_data(args.data_dir, args.sizes[0], console), args.formats[0], console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
