"""Where audit entries go — an append-only JSON-lines file, or a database
table when ``audit.url`` is set — and how ``custview audit`` reads them back.

Each entry is one line written with a single ``write`` to a file opened in
append mode (``O_APPEND``), under a lock, so replicas and threads sharing a
file never interleave lines. Nothing ever rewrites or truncates the file.
The table (:class:`connectors.audit_table.AuditTable`) is insert-only the
same way, and replicas on several hosts can share it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import logging
import os
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator
from starlette.requests import Request

from connectors.audit_table import AuditTable
from resolvers.audit import Auditor, AuditUnavailable, Caller

if TYPE_CHECKING:
    from gateway.auth import Principal

_log = logging.getLogger("custview.audit")

PURPOSE_HEADER = "x-purpose"
_MAX_PURPOSE = 200


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["jsonl", "database"] = "jsonl"
    path: Path = Path("custview-audit.jsonl")
    """The append-only JSON-lines file."""
    fsync: bool = False
    """Force every entry to disk before answering (slower; survives a power cut)."""
    url: str | None = None
    """A database for the ``custview_audit`` table (SQLite, PostgreSQL, MySQL/MariaDB);
    setting it selects the ``database`` backend (``backend`` may say so too)."""

    @model_validator(mode="after")
    def _backend(self) -> AuditSettings:
        if self.url is not None and self.backend == "jsonl" and "backend" in self.model_fields_set:
            raise ValueError("url is for the database backend; remove backend: jsonl or the url")
        if self.backend == "database" and not self.url:
            raise ValueError("backend database needs a url (e.g. postgresql://.../audit)")
        return self


class JsonLinesAuditLog:
    """Appends entries as JSON lines; raises when the file cannot be written."""

    def __init__(self, path: Path, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self._lock = threading.Lock()
        self._torn = False
        """A write failed part-way (disk full, file size limit): the next entry starts
        on a line of its own, so the torn line never swallows it."""

    def _write(self, line: bytes) -> None:
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                rest = memoryview(b"\n" + line if self._torn else line)
                while rest:
                    # a short write (disk full, file size limit) leaves a torn line
                    # until the rest is out; the rest is tried, and then fails loudly
                    written = os.write(fd, rest)
                    if written <= 0:
                        raise OSError(errno.EIO, f"could not append to the audit log {self.path}")
                    rest = rest[written:]
                    self._torn = bool(rest)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def check(self) -> None:
        """Raise :class:`OSError` when the file cannot be appended to. A file that does
        not exist yet is not created (its first entry creates it): its folder must
        exist and be writable. Creating and removing it instead could remove an entry
        another process appended in between."""
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))
            return
        except FileNotFoundError:
            pass
        folder = self.path.parent
        if not folder.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(folder))
        effective = os.access in os.supports_effective_ids
        if not os.access(folder, os.W_OK | os.X_OK, effective_ids=effective):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))

    async def append(self, entry: dict[str, Any]) -> None:
        """The entry is in the file (with ``fsync``, on disk) when this returns."""
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode()
        if self.fsync:
            # forcing it to disk takes milliseconds: not on the event loop
            await asyncio.to_thread(self._write, line)
        else:
            # one write(2) into the page cache, as the access log's line per request:
            # a thread hop cost more (0.1-0.6 ms of CPU a request at 10 concurrent)
            self._write(line)

    async def aclose(self) -> None:
        """Nothing to release: every entry opens and closes the file."""

    def read(self) -> Iterator[dict[str, Any]]:
        """Every entry, in order. A line torn by a write that failed part-way (its
        answer was refused, so it records nothing that happened) is skipped with a
        warning naming the file and line."""
        try:
            with self.path.open(encoding="utf-8", errors="replace") as fh:
                for number, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        entry = None
                    if not isinstance(entry, dict):
                        _log.warning(
                            "audit log %s line %d is not a whole entry (a write that failed "
                            "part-way, whose answer was refused): skipped",
                            self.path,
                            number,
                        )
                        continue
                    yield entry
        except FileNotFoundError:
            return


AuditStore = JsonLinesAuditLog | AuditTable


def create_audit_log(settings: AuditSettings) -> AuditStore:
    if settings.url is not None:
        return AuditTable(settings.url)
    return JsonLinesAuditLog(settings.path, settings.fsync)


def unavailable(settings: AuditSettings, cause: BaseException | None) -> AuditUnavailable:
    """The audit failure for the local operator (the command line), with its cause:
    the file and the OS error, or the table's error kind (never its URL or message,
    which may hold credentials)."""
    if settings.url is None:
        reason = (cause.strerror if isinstance(cause, OSError) else None) or (
            type(cause).__name__ if cause is not None else "unknown error"
        )
        return AuditUnavailable(
            f"the audit log {settings.path} cannot be written ({reason}), so nothing is "
            "read or answered; make it writable or set `audit.path`"
        )
    reason = type(cause).__name__ if cause is not None else "unknown error"
    return AuditUnavailable(
        f"the audit table (`audit.url`) cannot be written ({reason}), so nothing is "
        "answered; check that database (the gateway log of `custview serve` names the cause)"
    )


def query_log(
    log: AuditStore,
    customer: str | None = None,
    principal: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The most recent ``limit`` entries that match (``custview audit``): a file is
    read as it streams, a table is asked for what it can filter (then closed)."""
    if isinstance(log, JsonLinesAuditLog):
        return list(deque(matching(log.read(), customer, principal, since), maxlen=limit))

    async def fetch() -> list[dict[str, Any]]:
        try:
            return await log.entries(principal, since, None if customer else limit)
        finally:
            await log.aclose()

    return list(deque(matching(asyncio.run(fetch()), customer), maxlen=limit))


def auditor_for(request: Request, log: AuditStore, channel: str) -> Auditor:
    """The auditor of one request: its principal, client address and purpose."""
    return auditor_of(
        log,
        channel,
        getattr(request.state, "principal", None),
        request.client.host if request.client else None,
        request.headers.get(PURPOSE_HEADER),
    )


def auditor_of(
    log: AuditStore,
    channel: str,
    principal: Principal | None,
    client: str | None,
    purpose: str | None,
) -> Auditor:
    """The auditor of a request by ``principal`` from ``client`` (its address),
    with the ``X-Purpose`` it gave."""
    caller = Caller(
        principal=principal.name if principal else "unknown",
        method=principal.method if principal else "none",
        roles=tuple(sorted(principal.roles)) if principal else (),
        client=client,
        purpose=purpose[:_MAX_PURPOSE] if purpose else None,
    )
    return Auditor(log, caller, channel)


_RELATIVE = re.compile(r"^(\d+)([smhd])$")


def parse_since(text: str) -> dt.datetime:
    """``2026-11-30``, ``2026-11-30T08:00:00+00:00`` or relative: ``30m``, ``2h``, ``7d``."""
    match = _RELATIVE.match(text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{unit: int(match.group(1))})
    parsed = dt.datetime.fromisoformat(text.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def matching(
    entries: Iterable[dict[str, Any]],
    customer: str | None = None,
    principal: str | None = None,
    since: dt.datetime | None = None,
) -> Iterator[dict[str, Any]]:
    for entry in entries:
        if customer is not None and customer not in entry.get("customers", ()):
            continue
        if principal is not None and entry.get("principal") != principal:
            continue
        if since is not None and dt.datetime.fromisoformat(entry["at"]) < since:
            continue
        yield entry
