"""``custview export``: stream a table of the unified view to a file, with a
progress bar on a terminal and a summary (rows, seconds, sources, any source
that failed) on stderr.

Exit codes as every command: 0 success, 1 a source failed (its data is
missing, the rest is exported), 2 bad arguments (an unknown table or column,
a bad filter).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from connectors import CustviewError, QueryError
from gateway.export_workers import WorkerFailed
from gateway.settings import LoadedSettings, load_settings
from resolvers.export import Chunk
from resolvers.expr import Expr, Order

err = Console(stderr=True, soft_wrap=True)


def _fail(error: CustviewError, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {error.message}", highlight=False)
    return typer.Exit(code)


def operator_auditor(loaded: LoadedSettings, table: str, fmt: str) -> Any:
    """The CLI reads as the operator (it holds the sources' credentials), audited all the
    same, as ``cli:<user>``."""
    import getpass

    from gateway.audit import create_audit_log
    from resolvers.audit import Auditor, Caller

    caller = Caller(f"cli:{getpass.getuser()}", "cli", client="local")
    extra = {"table": table, "format": fmt}
    return Auditor(create_audit_log(loaded.settings.audit), caller, "export", extra)


@dataclass
class _Exported:
    rows: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)


async def _export(
    loaded: LoadedSettings,
    table: str,
    fmt: str,
    wanted: list[str] | None,
    filter_json: str | None,
    order_json: str | None,
    segment: str | None,
    out_file: Path | None,
    done: _Exported,
) -> None:
    from gateway.export_workers import factory
    from gateway.formats import encode, spool_parquet
    from resolvers.export import Failures, columns, rows

    model = loaded.settings.model
    names = columns(model, table, wanted)
    expr: Expr | None = None
    order: list[Order] = []
    if filter_json is not None or order_json is not None or segment is not None:
        # checked against the schema's input types: loads strawberry, which a
        # whole export does not need
        from gateway.export import json_parameter
        from resolvers.inputs import parse_json_filter
        from resolvers.schema import build_schema

        expr, order = parse_json_filter(
            build_schema(model),
            model,
            json_parameter("--filter", filter_json),
            json_parameter("--order-by", order_json),
            segment,
        )
    federation = loaded.create_federation()
    failures = Failures()
    started = time.perf_counter()
    progress = Progress(
        SpinnerColumn(),
        TextColumn(f"exporting {table}"),
        BarColumn(),
        TextColumn("{task.completed} rows ({task.fields[rate]} rows/s)"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = progress.add_task("export", total=None, rate="-")

    auditor = operator_auditor(loaded, table, fmt)
    workers = factory(loaded)

    async def counted() -> AsyncIterator[Chunk]:
        await auditor.record((), [c.name for c in names], "started")
        async for chunk in rows(
            federation, table, names, expr, order, failures=failures, auditor=auditor,
            builders=workers(fmt, names) if workers is not None else None,
        ):  # fmt: skip
            done.rows += len(chunk)
            rate = done.rows / max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done.rows, rate=f"{rate:.0f}")
            yield chunk

    try:
        await federation.open()
        with progress:
            if fmt == "parquet" and out_file is not None:
                await spool_parquet(names, counted(), str(out_file))
            else:
                sink = out_file.open("wb") if out_file else sys.stdout.buffer
                try:
                    async for data in encode(fmt, names, counted()):
                        sink.write(data)
                    sink.flush()
                finally:
                    if out_file:
                        sink.close()
    finally:
        await federation.aclose()
        await auditor.log.aclose()
        done.seconds = time.perf_counter() - started
        done.failures = dict(failures)


def export(
    table: Annotated[
        str,
        typer.Argument(help="customers, a relation (tickets, orders, ...) or source_records."),
    ] = "customers",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="csv, ndjson, arrow or parquet.")
    ] = "csv",
    out_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated columns (default: all).")
    ] = None,
    filter_json: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help='The customers(filter:) input as JSON, e.g. \'{"country": {"eq": "DE"}}\'.',
        ),
    ] = None,
    order_json: Annotated[
        str | None,
        typer.Option(
            "--order-by",
            help='The customers(orderBy:) input as JSON, e.g. \'[{"field": "lifetimeValue", '
            '"direction": "DESC"}]\'.',
        ),
    ] = None,
    segment: Annotated[
        str | None, typer.Option(help="Only members of this configured segment.")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", "-c", help="Settings file (default: $CUSTVIEW_CONFIG or the demo)."
        ),
    ] = None,
) -> None:
    """Export the unified customers, or rows of a related entity keyed by customer id, for BI."""
    from gateway.formats import FORMATS

    if fmt not in FORMATS:
        err.print(f"[bold red]error:[/] --format must be one of {', '.join(FORMATS)}, not '{fmt}'")
        raise typer.Exit(2)
    try:
        loaded = load_settings(config)
    except CustviewError as exc:
        raise _fail(exc, 2) from None
    done = _Exported()
    wanted = columns.split(",") if columns else None
    try:
        asyncio.run(
            _export(loaded, table, fmt, wanted, filter_json, order_json, segment, out_file, done)
        )
    except QueryError as exc:
        raise _fail(exc, 2) from None
    except CustviewError as exc:
        raise _fail(exc, 1) from None
    except WorkerFailed as exc:  # what a worker hit (redacted, located), not a traceback here
        err.print("[bold red]error:[/] ", end="")
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
    where = str(out_file) if out_file else "stdout"
    rate = done.rows / done.seconds if done.seconds else 0.0
    sources = ", ".join(sorted(loaded.settings.model.sources() & set(loaded.settings.sources)))
    err.print(
        f"exported {done.rows} rows of {table} as {fmt} to {where} in {done.seconds:.1f}s "
        f"({rate:.0f} rows/s) from {sources}",
        highlight=False,
    )
    for source, reason in done.failures.items():
        err.print(
            f"[bold yellow]warning:[/] source '{source}' failed, its data is missing: {reason}",
            highlight=False,
        )
    raise typer.Exit(1 if done.failures else 0)
