"""``custview sar`` and ``custview erase``: data-subject requests from the
command line.

The commands run the same GraphQL fields as the HTTP API
(``customerDataReport``, ``requestErasure``), through the governed schema, as the local
operator (``cli:<user>``, who holds the config and so every role), and
writes an audit entry like any other read (channel ``cli``).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from connectors import CustviewError
from gateway.audit import JsonLinesAuditLog, create_audit_log, unavailable
from gateway.settings import LoadedSettings, load_settings
from resolvers.audit import Auditor, AuditUnavailable, Caller
from resolvers.policy import Grant

out = Console()
err = Console(stderr=True, soft_wrap=True)

REPORT = "query($id: ID, $email: String) { customerDataReport(id: $id, email: $email) }"
ERASE = """mutation($id: ID!, $reason: String!) { requestErasure(customerId: $id, reason: $reason) {
  id customerId at actor records { source table id ref relation } } }"""


async def run_governed(
    loaded: LoadedSettings,
    text: str,
    variables: dict[str, Any] | None,
    purpose: str | None = None,
    explain: bool = False,
) -> dict[str, Any]:
    """One operation through the governed, audited schema, as the local operator
    (with ``explain``, the plan in the body's ``extensions``)."""
    # the GraphQL side (strawberry), loaded by the commands that run an operation
    from gateway.operation import body_of, execute_locally
    from resolvers.governance import ReadTrail, govern
    from resolvers.schema import build_schema

    model = loaded.settings.model
    schema = govern(build_schema(model), model)
    federation = loaded.create_federation()
    user = getpass.getuser()
    caller = Caller(principal=f"cli:{user}", method="cli", purpose=purpose)
    log = create_audit_log(loaded.settings.audit)
    if isinstance(log, JsonLinesAuditLog):
        # fail closed before any source runs (an explain would show what it read)
        try:
            log.check()
        except OSError as exc:
            raise unavailable(loaded.settings.audit, exc) from None
    context = {
        "view": federation.request(),
        "actor": f"cli:{user}",
        "roles": None,
        "grant": Grant.everything(),
        "trail": ReadTrail(),
        "auditor": Auditor(log, caller, "cli"),
        "explain": explain,
    }
    try:
        result = await execute_locally(loaded, schema, federation, text, variables, context)
    finally:
        await log.aclose()
    for error in result.errors or ():
        if isinstance(error.original_error, AuditUnavailable):
            # the local operator is told the cause (a client only that there is one)
            raise unavailable(loaded.settings.audit, error.original_error.__cause__)
    return body_of(result, extensions=explain)


def _answer(
    loaded: LoadedSettings, text: str, variables: dict[str, Any], purpose: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """The operation's one root field and the whole body; errors printed, exit 1
    when the operation could not run."""
    try:
        body = asyncio.run(run_governed(loaded, text, variables, purpose))
    except CustviewError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    for error in body.get("errors", []):
        err.print(f"[bold red]error:[/] {error.get('message')}", highlight=False)
    found = next(iter((body.get("data") or {}).values()), None)
    return found, body


def _settings(config: str | None) -> LoadedSettings:
    try:
        return load_settings(config)
    except CustviewError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(2) from None


def _print_report(report: dict[str, Any]) -> None:
    out.print(f"[bold]customer {report['customerId']}[/] (report of {report['generatedAt']})")
    table = Table(title="source records")
    for column in ("ref", "values"):
        table.add_column(column, overflow="fold")
    for record in [*report["records"], *report["related"]]:
        values = ", ".join(f"{k}={v}" for k, v in record["values"].items() if v is not None)
        table.add_row(record["ref"], values)
    out.print(table)
    golden = Table(title="golden values")
    for column in ("field", "value", "from", "rule"):
        golden.add_column(column, overflow="fold")
    for entry in report["golden"]:
        golden.add_row(entry["field"], str(entry["value"]), entry["ref"], entry["rule"])
    out.print(golden)
    registry = report["registry"]
    out.print(
        f"registry: {len(registry['decisions'])} decisions, {len(registry['links'])} batch links",
        highlight=False,
    )


def sar(
    id: Annotated[str | None, typer.Option("--id", help="The customer id (cus_...).")] = None,
    email: Annotated[str | None, typer.Option(help="The person's email address.")] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", "-c", help="Settings file (default: $CUSTVIEW_CONFIG or the demo)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Subject-access report: every source record, related row, golden value and
    registry entry about one person (audited)."""
    if (id is None) == (email is None):
        err.print("[bold red]error:[/] give exactly one of --id or --email")
        raise typer.Exit(2)
    loaded = _settings(config)
    report, body = _answer(loaded, REPORT, {"id": id, "email": email})
    if report is None:
        if not body.get("errors"):
            err.print(f"no customer with {'id' if id else 'email'} {id or email}")
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_report(report)
    raise typer.Exit(1 if body.get("errors") else 0)


def erase(
    id: Annotated[str, typer.Option("--id", help="The customer id (cus_...).")],
    reason: Annotated[
        str, typer.Option(help="Why: the request's reference (goes to the audit log).")
    ],
    config: Annotated[str | None, typer.Option("--config", "-c", help="Settings file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The erasure as JSON.")] = False,
) -> None:
    """Erase a customer from custview: registry tombstones (ids only), then list the
    source records each system must delete; the customer is in no answer from now on."""
    loaded = _settings(config)
    erasure, _ = _answer(loaded, ERASE, {"id": id, "reason": reason}, reason)
    if erasure is None:
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(erasure, indent=2) + "\n")
        return
    out.print(
        f"erased customer {erasure['customerId']} (erasure {erasure['id']}, {erasure['at']}); "
        "each system must delete:",
        highlight=False,
    )
    by_source: dict[str, list[str]] = {}
    for record in erasure["records"]:
        by_source.setdefault(record["source"], []).append(record["ref"])
    for source, refs in by_source.items():
        out.print(f"  [bold]{source}[/] ({len(refs)}): " + ", ".join(refs), highlight=False)
