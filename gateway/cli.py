"""The ``custview`` command: demo, serve, check, query, explain, export and demo-data.

Every command turns custview's own errors into one clear line on stderr
and a non-zero exit code, never a traceback:
0 success, 1 a source is unreachable or a query returned errors,
2 invalid configuration or arguments.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import sys
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors import CustviewError, FilterOp, QueryError, WriteAccess
from gateway.export_cli import export as export_command
from gateway.rights_cli import erase as erase_command
from gateway.rights_cli import sar as sar_command
from gateway.settings import DEMO_CONFIG, LoadedSettings, load_settings
from gateway.unexpected import RedactingFilter, report
from resolvers.cache_control import Cleared, clear_cache

app = typer.Typer(
    name="custview",
    help="A live, federated Customer 360 over the systems you already run.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    str | None,
    typer.Option("--config", "-c", help="Settings file (default: $CUSTVIEW_CONFIG or the demo)."),
]

SAMPLE = "{ customers(first: 25) { nodes { email phone sourceRecords { source } } } }"


def _examples(loaded: LoadedSettings) -> str:
    """Example queries using a real email and phone from the sources."""
    try:
        body = asyncio.run(_query(loaded, SAMPLE, None))
        nodes = body["data"]["customers"]["nodes"]
    except (CustviewError, KeyError, TypeError):
        nodes = []
    rich = [n for n in nodes if n["email"] and n["phone"]]
    best = max(rich, key=lambda n: len(n["sourceRecords"]), default=None)
    email = best["email"] if best else "someone@example.com"
    phone = best["phone"] if best else "+14155550123"
    return (
        "  { customers(first: 5) { nodes { id name email sourceRecords { ref } } } }\n"
        f'  {{ customer(email: "{email}") {{ name phone provenance {{ field ref rule }}\n'
        "      tickets { subject status } orders { orderNumber total } } }\n"
        f'  {{ customer(phone: "{phone}") {{ id name sourceRecords {{ ref }} }} }}\n'
        "  { sources { name status latencyMs } }"
    )


def _fail(error: CustviewError, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {error.message}", highlight=False)
    return typer.Exit(code)


def _settings(config: str | None) -> LoadedSettings:
    try:
        return load_settings(config)
    except CustviewError as exc:
        raise _fail(exc) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"custview {dist_version('custview')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """custview: one governed, live view of every customer."""


def _generate(out_dir: Path, customers: int, seed: int, households: bool = True) -> None:
    from gateway.demodata.generate import generate

    with Progress(
        TextColumn("generating demo sources"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task("generate", total=customers)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = generate(out_dir, customers, seed, households=households, progress=report)
    err.print(f"wrote {out_dir} in {summary.seconds:.1f}s ({customers} customers, seed {seed})")


DEMO_SEED = 42
"""The seed of ``custview demo`` and ``custview demo-data``: the README's examples
(e.g. the tour's ``support/users/18``) are records of the files it makes."""
DEMO_SIZE = 5000


@app.command("demo-data")
def demo_data(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder to write the databases to.")
    ] = Path("demo-data"),
    customers: Annotated[int, typer.Option(min=1, help="Real customers to generate.")] = DEMO_SIZE,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = DEMO_SEED,
    households: Annotated[
        bool,
        typer.Option(
            "--households/--no-households",
            help="Partners who share a home with some people (after every other record).",
        ),
    ] = True,
) -> None:
    """Generate the demo source databases and their ground truth."""
    _generate(out_dir, customers, seed, households)


def _serve(loaded: LoadedSettings, host: str | None, port: int | None) -> None:
    from gateway.serving import serve

    server = loaded.settings.server
    port = port if port is not None else server.port
    host = host if host is not None else server.host
    sql = loaded.settings.sql
    if sql.enabled and sql.port == port != 0 and _hosts_may_collide(sql.host, host):
        err.print(
            f"[bold red]error:[/] {loaded.path}: `sql.port` {port} is also the HTTP port "
            f"(`sql.host` {sql.host}, HTTP host {host}): give the SQL endpoint a port of its "
            "own, or hosts that are different interfaces",
            highlight=False,
        )
        raise typer.Exit(2)
    serve(loaded, host, port)


_WILDCARDS = frozenset({"", "*", "0.0.0.0", "::"})


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses ``host`` (an address or a name) stands for; none when a name
    does not resolve (binding it then fails with its own error)."""
    try:
        return {ipaddress.ip_address(host)}
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return set()
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


def _hosts_may_collide(a: str, b: str) -> bool:
    """Whether listening on the same port at hosts ``a`` and ``b`` could clash: the
    same host (or addresses), or either one every interface (0.0.0.0, ::)."""
    a, b = a.strip().strip("[]").lower(), b.strip().strip("[]").lower()
    if a == b or a in _WILDCARDS or b in _WILDCARDS:
        return True
    first, second = _addresses(a), _addresses(b)
    if any(address.is_unspecified for address in first | second):
        return True
    return bool(first & second)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Serve the gateway: /graphql, /healthz, /readyz, /metrics, /export."""
    loaded = _settings(config)
    if loaded.settings.auth.mode == "disabled":
        err.print(
            "[bold yellow]warning:[/] authentication is disabled: every caller can read every "
            "customer; add an `auth` section (docs/configuration.md) before exposing this port"
        )
    _serve(loaded, host, port)


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the demo databases live.")] = Path(
        "demo-data"
    ),
    customers: Annotated[int, typer.Option(min=1, help="Size when generating.")] = DEMO_SIZE,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    feedback_port: Annotated[
        int, typer.Option(help="Loopback port of the demo's feedback REST service.")
    ] = 8001,
    sql_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Also serve SQL for BI tools (PostgreSQL wire protocol) on this port.",
        ),
    ] = None,
) -> None:
    """Generate the demo sources if missing and serve them with GraphiQL."""
    from gateway.serving import serve_demo

    if sql_port is not None and sql_port in (port, feedback_port):
        other = "--port" if sql_port == port else "--feedback-port"
        err.print(
            f"[bold red]error:[/] --sql-port {sql_port} is also {other}: "
            "give the SQL endpoint a port of its own",
            highlight=False,
        )
        raise typer.Exit(2)
    if not _demo_complete(data_dir):
        _generate(data_dir, customers, DEMO_SEED)
    os.environ["CUSTVIEW_DEMO_DIR"] = str(data_dir.resolve())
    os.environ.setdefault("CUSTVIEW_FEEDBACK_URL", f"http://127.0.0.1:{feedback_port}/api")
    loaded = _with_sql_port(_settings(str(DEMO_CONFIG)), sql_port)
    sql = loaded.settings.sql
    sql_line = (
        f"  SQL:       PGPASSWORD=demo-key psql -h {sql.host} -p {sql.port} -U bi custview\n"
        if sql.enabled
        else ""
    )

    def banner() -> None:
        err.print(
            f"\n[bold]custview demo[/] on the sources in {data_dir}\n"
            f"  Customer 360: http://{host}:{port}/\n"
            f"  GraphiQL:  http://{host}:{port}/graphql\n"
            f"  health:    http://{host}:{port}/healthz  http://{host}:{port}/readyz\n"
            f"  feedback:  {os.environ['CUSTVIEW_FEEDBACK_URL']} (REST, read by custview)\n"
            f"{sql_line}"
            f"Try these queries:\n{_examples(loaded)}\n",
            highlight=False,
        )

    serve_demo(loaded, host, port, data_dir, feedback_port, banner)


def _with_sql_port(loaded: LoadedSettings, sql_port: int | None) -> LoadedSettings:
    """``loaded`` with the SQL endpoint on at ``sql_port`` (unchanged without one)."""
    if sql_port is None:
        return loaded
    sql = loaded.settings.sql.model_copy(update={"enabled": True, "port": sql_port})
    settings = loaded.settings.model_copy(update={"sql": sql})
    changed = LoadedSettings(loaded.path, settings, loaded.connectors)
    changed.persisted = loaded.persisted
    return changed


def _demo_complete(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a finished demo set of this version (all four systems)."""
    try:
        manifest = json.loads((data_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    files = manifest.get("files", ())
    return all((data_dir / name).exists() for name in files) and {
        "feedback.db",
        "quality_truth.csv",
    } <= set(files)


async def _check(
    loaded: LoadedSettings,
) -> tuple[list[Any], dict[str, WriteAccess], str | None]:
    """Source statuses, write access, and the registry's state (None when it answers)."""
    federation = loaded.create_federation()
    try:
        statuses = await federation.sources()
        reachable = {s.name for s in statuses if s.health.ok}
        access = await federation.write_access()
        problem = None
        try:
            await federation.open()
        except CustviewError as exc:
            problem = str(exc)
        return statuses, {n: a for n, a in access.items() if n in reachable}, problem
    finally:
        await federation.aclose()


def _registry_line(problem: str | None) -> str:
    if problem is not None:
        return f"[red]identity registry unreachable:[/] {problem}"
    return "identity registry reachable"


def _writes(access: WriteAccess | None) -> str:
    if access is None or access.can_write is None:
        return "-"
    return "[bold yellow]yes[/]" if access.can_write else "no"


@app.command()
def check(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Validate the config and reach every source."""
    loaded = _settings(config)
    statuses, access, registry_problem = asyncio.run(_check(loaded))
    ok = all(s.health.ok and all(s.health.tables.values()) for s in statuses)
    ok = ok and registry_problem is None
    writable = {name: a for name, a in access.items() if a.can_write}
    if as_json:
        out.print_json(
            data=[
                {
                    "source": s.name,
                    "kind": s.kind,
                    "reachable": s.health.ok,
                    "latency_ms": s.health.latency_ms,
                    "detail": s.health.detail,
                    "tables": dict(s.health.tables),
                    "write_access": _access_json(access.get(s.name)),
                }
                for s in statuses
            ]
        )
    else:
        table = Table(title=f"custview check — {loaded.path}")
        columns = ("source", "kind", "reachable", "latency", "tables found", "missing", "can write")
        for column in columns:
            table.add_column(column)
        for s in statuses:
            found = [t for t, present in s.health.tables.items() if present]
            missing = [t for t, present in s.health.tables.items() if not present]
            table.add_row(
                s.name,
                s.kind,
                "[green]yes[/]" if s.health.ok else f"[red]no[/] {s.health.detail}",
                f"{s.health.latency_ms:.1f} ms" if s.health.latency_ms is not None else "-",
                ", ".join(found) or "-",
                f"[red]{', '.join(missing)}[/]" if missing else "-",
                _writes(access.get(s.name)),
            )
        out.print(table)
        out.print(_registry_line(registry_problem))
        out.print("[green]config OK, every source reachable[/]" if ok else "[red]problems found[/]")
    for name, risky in writable.items():
        err.print(
            f"[bold yellow]warning:[/] source '{name}': {risky.detail}. custview only reads; "
            "give it a role that may only SELECT (README, Deployment)",
            highlight=False,
        )
    raise typer.Exit(0 if ok else 1)


def _access_json(access: WriteAccess | None) -> dict[str, Any] | None:
    if access is None:
        return None
    return {
        "can_write": access.can_write,
        "detail": access.detail,
        "tables": {t: list(p) for t, p in access.tables.items()},
    }


@app.command("connectors")
def connectors(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the installed connector kinds: package, version, module, capabilities."""
    from connectors.registry import installed

    plugins = installed()
    if as_json:
        out.print_json(
            data=[
                {
                    "kind": p.kind,
                    "package": p.package,
                    "version": p.version,
                    "module": p.module,
                    "description": p.description,
                    "capabilities": p.capabilities,
                    "error": p.error,
                }
                for p in plugins
            ]
        )
    else:
        table = Table(title="custview connectors (entry-point group custview.connectors)")
        for column in ("kind", "package", "version", "module", "capabilities"):
            table.add_column(column, no_wrap=column in ("kind", "version"), overflow="fold")
        for p in plugins:
            caps = p.capabilities
            if p.error is not None:
                summary = f"[red]failed to load:[/] {p.error}"
            elif caps is None:
                summary = "declared per source"
            else:
                named = ("sort", "keyset", "limit", "aggregates", "filtered_aggregates")
                flags = [f for f in named if caps.get(f)]
                lookups = ",".join(caps["lookup_transforms"]) if caps.get("batch_lookup") else "-"
                ops = caps["filter_operators"]
                filters = "all" if len(ops) == len(get_args(FilterOp)) else " ".join(ops) or "-"
                summary = f"lookups: {lookups}; filters: {filters}; {' '.join(flags) or '-'}"
            table.add_row(p.kind, p.package or "(registered)", p.version or "-", p.module, summary)
        out.print(table)
    raise typer.Exit(1 if any(p.error for p in plugins) else 0)


async def _query(
    loaded: LoadedSettings, text: str, variables: dict[str, Any] | None, explain: bool = False
) -> Any:
    """One operation as the local operator: every field, audited (channel ``cli``)."""
    from gateway.rights_cli import run_governed

    return await run_governed(loaded, text, variables, explain=explain)


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="A GraphQL query.")],
    config: ConfigOption = None,
    variables: Annotated[str | None, typer.Option(help="Variables as JSON.")] = None,
) -> None:
    """Run one GraphQL query and print the JSON result."""
    loaded = _settings(config)
    try:
        body = asyncio.run(_query(loaded, text, _variables(variables)))
    except CustviewError as exc:  # the audit log cannot be written: nothing is answered
        raise _fail(exc, 1) from None
    sys.stdout.write(json.dumps(body, indent=2, default=str) + "\n")
    raise typer.Exit(1 if body.get("errors") else 0)


def _variables(variables: str | None) -> dict[str, Any] | None:
    try:
        parsed: dict[str, Any] | None = json.loads(variables) if variables else None
    except json.JSONDecodeError as exc:
        err.print(f"[bold red]error:[/] --variables is not valid JSON: {exc.msg}")
        raise typer.Exit(2) from None
    return parsed


async def _resolve(loaded: LoadedSettings, full: bool, quiet: bool) -> Any:
    from resolvers.resolve import resolve

    federation = loaded.create_federation()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    ) as progress:
        tasks: dict[str, Any] = {}

        def report(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                labels = {"read": "reading records", "score": "scoring", "write": "writing links"}
                tasks[phase] = progress.add_task(labels.get(phase, phase), total=total)
            progress.update(tasks[phase], completed=done, total=total)

        try:
            await federation.open()
            return await resolve(federation, full=full, progress=report)
        finally:
            await federation.aclose()


@app.command("resolve")
def resolve_command(
    config: ConfigOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="Re-score every record, not only changed ones.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Link records across all sources with the trained model; store ids and scores."""
    loaded = _settings(config)
    try:
        report = asyncio.run(_resolve(loaded, full, as_json))
    except CustviewError as exc:
        raise _fail(exc) from None
    summary = {
        "mode": report.mode,
        "run": report.run,
        "model": report.model,
        "records": report.records,
        "changed": report.changed,
        "pairs_scored": report.pairs_scored,
        "links": report.links,
        "candidates": report.candidates,
        "written": report.written,
        "seconds": {k: round(v, 2) for k, v in report.seconds.items()},
        "records_per_second": round(report.records_per_second),
    }
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    err.print(
        f"{report.mode} run {report.run}: {report.records} records ({report.changed} changed), "
        f"{report.pairs_scored} pairs scored, {report.links} links and {report.candidates} "
        f"possible duplicates stored ({report.written} registry rows written) in "
        f"{sum(report.seconds.values()):.1f}s ({summary['records_per_second']} records/s)"
    )


@app.command()
def explain(
    text: Annotated[str, typer.Argument(help="A GraphQL query.")],
    config: ConfigOption = None,
    variables: Annotated[str | None, typer.Option(help="Variables as JSON.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The plan as JSON.")] = False,
) -> None:
    """Run one query and show its plan: per source the statements or requests
    sent, rows returned and time spent, then what was done in memory."""
    loaded = _settings(config)
    try:
        body = asyncio.run(_query(loaded, text, _variables(variables), explain=True))
    except CustviewError as exc:  # the audit log cannot be written: no plan either
        raise _fail(exc, 1) from None
    plan = body.get("extensions", {}).get("explain", {})
    for error in body.get("errors", []):
        err.print(f"[bold red]error:[/] {error.get('message')}", highlight=False)
    if as_json:
        sys.stdout.write(json.dumps(plan, indent=2, default=str) + "\n")
    else:
        _print_plan(plan)
    raise typer.Exit(1 if body.get("errors") else 0)


def _print_plan(plan: dict[str, Any]) -> None:
    for source in plan.get("sources", []):
        out.print(
            f"[bold]{source['source']}[/]: {len(source['calls'])} calls, "
            f"{source['sent']} sent, {source['rows']} rows, {source['ms']} ms",
            highlight=False,
        )
        for call in source["calls"]:
            out.print(
                f"  {call['operation']} {call['table']} {call['detail']} "
                f"-> {call['rows']} rows, {call['ms']} ms",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            for sent in call["sent"]:
                out.print(f"    {sent}", style="dim", highlight=False, markup=False, soft_wrap=True)
    out.print("[bold]in memory[/]:", highlight=False)
    for step in plan.get("memory", []):
        out.print(f"  {step}", highlight=False, markup=False)
    out.print(f"[bold]total[/]: {plan.get('totalMs')} ms", highlight=False)


app.command("export")(export_command)
app.command("sar")(sar_command)
app.command("erase")(erase_command)


cache_app = typer.Typer(help="Manage the source-call cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


async def _clear(
    loaded: LoadedSettings, source: str | None, table: str | None, customer: str | None
) -> Cleared:
    federation = loaded.create_federation()
    try:
        if customer is not None:
            await federation.open()  # stitching follows the registry's decisions
        return await clear_cache(federation, source=source, table=table, customer=customer)
    finally:
        await federation.aclose()


@cache_app.command("clear")
def cache_clear(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    table: Annotated[str | None, typer.Option(help="Only this table of the source(s).")] = None,
    customer: Annotated[
        str | None,
        typer.Option(help="Only what was read about this customer id (not with --table)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Invalidate cached source answers (every replica sharing the Redis cache sees it)."""
    loaded = _settings(config)
    if source is not None and source not in loaded.settings.sources:
        known = ", ".join(loaded.settings.sources)
        err.print(f"[bold red]error:[/] no source '{source}' in {loaded.path} (known: {known})")
        raise typer.Exit(2)
    try:
        cleared = asyncio.run(_clear(loaded, source, table, customer))
    except QueryError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(2) from None
    if not cleared.customer_found:
        err.print(f"no customer with id '{customer}'; nothing to clear")
        raise typer.Exit(1)
    if not cleared.sources:
        err.print("no cached source matched; nothing to clear (turn caching on with cache.ttl)")
        raise typer.Exit(1)
    names = ", ".join(cleared.sources)
    if customer is not None:
        keys = sum(int(n) for n in cleared.sources.values())
        out.print(
            f"cleared what the cache holds about customer {customer} ({keys} keys in {names})"
        )
        return
    what = f"table '{table}' of " if table else ""
    out.print(f"cleared the cache of {what}{names}")


policy_app = typer.Typer(help="Inspect the access policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

_SHOWN = {"allow": "[green]allow[/]", "deny": "[red]deny[/]"}


@policy_app.command("explain")
def policy_explain(
    role: Annotated[str, typer.Option("--role", "-r", help="The role to explain.")],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print what a role can see: every field (allow, mask, deny) and its row rules."""
    loaded = _settings(config)
    spec = loaded.settings.policy
    if spec is None:
        err.print(f"[bold red]error:[/] {loaded.path} has no policy section: every caller "
                  "reads everything")  # fmt: skip
        raise typer.Exit(2)
    if role not in spec.roles:
        known = ", ".join(spec.roles)
        err.print(f"[bold red]error:[/] no role '{role}' in {loaded.path} (known: {known})")
        raise typer.Exit(2)
    explained = loaded.policy.explain(role)
    if as_json:
        out.print_json(data=explained)
        return
    table = Table(title=f"role {role}: {explained['description']}".rstrip(": "))
    for column in ("type", "field", "access"):
        table.add_column(column)
    for name, action in explained["customer"].items():
        table.add_row("Customer", name, _SHOWN.get(action, f"[yellow]{action}[/]"))
    for entity, fields in explained["entities"].items():
        for name, action in fields.items():
            table.add_row(entity, name, _SHOWN.get(action, f"[yellow]{action}[/]"))
    out.print(table)
    out.print("rows: " + "; ".join(explained["rows"]), highlight=False)


@app.command("audit")
def audit(
    customer: Annotated[str | None, typer.Option(help="Only reads of this customer id.")] = None,
    principal: Annotated[str | None, typer.Option(help="Only reads by this principal.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only reads since: ISO date/time, or 30m, 2h, 7d.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most recent N entries.")] = 100,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines out.")] = False,
) -> None:
    """Query the audit log: who read which customers and fields, when, why, with what outcome."""
    from gateway.audit import create_audit_log, parse_since, query_log

    loaded = _settings(config)
    try:
        after = parse_since(since) if since else None
    except ValueError:
        err.print(f"[bold red]error:[/] --since '{since}' is not a date, a time or 30m/2h/7d")
        raise typer.Exit(2) from None
    log = create_audit_log(loaded.settings.audit)
    try:
        entries = query_log(log, customer, principal, after, limit)
    except CustviewError as exc:
        raise _fail(exc, 1) from None
    if as_json:
        for entry in entries:
            sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return
    where = loaded.settings.audit.path if loaded.settings.audit.url is None else "audit table"
    table = Table(title=f"custview audit — {where}")
    for column in ("at", "principal", "client", "purpose", "channel", "customers", "fields",
                   "outcome"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for e in entries:
        ids = e.get("customers", [])
        shown = ", ".join(ids[:3]) + (f" (+{len(ids) - 3})" if len(ids) > 3 else "")
        table.add_row(
            e["at"], e["principal"], e.get("client") or "-", e.get("purpose") or "-",
            e["channel"], shown or "-", ", ".join(e.get("fields", [])), e["outcome"],
        )  # fmt: skip
    out.print(table)


def main() -> None:
    """The command; an error custview did not expect ends it with its traceback
    and exit code 1, without any secret (:mod:`gateway.unexpected`)."""
    if logging.lastResort is not None:  # prints a command's warnings
        logging.lastResort.addFilter(RedactingFilter())
    try:
        app()
    except Exception as exc:
        err.print(report(exc), highlight=False, markup=False)
        raise SystemExit(1) from None
