"""``custview resolve``: probabilistic links across every source, stored as ids.

A run reads every member table through its connector (streamed, for this
run only), turns each row into a match record, and scores candidate pairs
with the trained model:

* a **full** run (the first one, or ``--full``) hands all records to Splink
  (DuckDB, embedded), which blocks and scores every pair its rules generate;
* an **incremental** run scores only records changed since the last run (by
  the member's ``updated_at``, or a key above the last one seen) against
  every record sharing a blocking key, with the same trained parameters in
  process (they agree with Splink to 1e-9; a test proves it).

Pairs at or above the ``candidate`` threshold are written to the registry
as ``(ref, ref, probability)`` — the registry diff only: new pairs, changed
scores and retractions. Attribute values are dropped with the run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import multiprocessing as mp
import os
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from connectors import Filter, QueryError, Row, ScanRequest
from resolvers.coerce import coerce
from resolvers.fuzzy import account_link, input_mapping, match_row, resolve_model_path, with_account
from resolvers.matching import MatchRecord, blocking_keys
from resolvers.model import BusinessAccountSpec, UnifiedModel
from resolvers.view import Federation

Progress = Callable[[str, int, int | None], None]
"""``(phase, done, total)``: phases ``read``, ``score``, ``write``."""

MAX_BLOCK = 1_000
"""Incremental runs skip a blocking value shared by more records than this."""


@dataclass(slots=True)
class ResolveReport:
    mode: str
    records: int = 0
    changed: int = 0
    pairs_scored: int = 0
    links: int = 0
    """Pairs at or above ``link`` after the run."""
    candidates: int = 0
    """Pairs between ``candidate`` and ``link`` after the run."""
    written: int = 0
    """Registry rows written (new, changed and retracted pairs)."""
    run: int = 0
    model: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        total = sum(self.seconds.values())
        return self.records / total if total else 0.0


def _model_version(path: str) -> str:
    digest = hashlib.sha256(resolve_model_path(path).read_bytes()).hexdigest()
    return f"sha256:{digest[:16]}"


def _watermark_time(since: str) -> dt.datetime:
    """A watermark's ``updated_at`` as the naive time a source filter compares.

    A naive stamp is the source's own wall time and is compared as it was read
    (never shifted by this host's time zone); an aware one becomes naive UTC.
    """
    stamp = dt.datetime.fromisoformat(since)
    if stamp.tzinfo is None:
        return stamp
    return stamp.astimezone(dt.UTC).replace(tzinfo=None)


def _stamp(value: Any) -> str | None:
    parsed = coerce(value, "datetime")
    return parsed.isoformat() if isinstance(parsed, dt.datetime) else None


_CHUNK = 5_000
_POOL_AFTER = 50_000
"""Rows read in process before worker processes start (spawning costs seconds)."""
_worker_model: UnifiedModel | None = None


def _match_rows(
    model: UnifiedModel, member_id: str, rows: list[dict[str, Any]]
) -> list[MatchRecord]:
    """Match records of ``rows`` of one member table (in a worker, or in process)."""
    spec = model.identity.probabilistic
    assert spec is not None
    member = next(m for m in model.customer.members if m.id == member_id)
    mapping = input_mapping(member, spec, model.business)
    region = model.identity.default_region or "US"
    prefix = f"{member.source}/{member.table}/"
    return [
        match_row(f"{prefix}{row[member.key]}", member_id, mapping, row, region) for row in rows
    ]


def _init(model: UnifiedModel) -> None:
    global _worker_model
    _worker_model = model


def _match_worker(member_id: str, rows: list[dict[str, Any]]) -> list[MatchRecord]:
    assert _worker_model is not None
    return _match_rows(_worker_model, member_id, rows)


@dataclass(slots=True)
class _Accounts:
    """The account tables the member tables point at (``business``), read once a run."""

    rows: dict[str, dict[str, Row]] = field(default_factory=dict)
    """Account table id -> str(key) -> row (company names and domains)."""
    changed: dict[str, set[str]] = field(default_factory=dict)
    """Account table id -> keys of the rows changed since the last run's watermark."""
    watermark: dict[str, Any] = field(default_factory=dict)
    """``account:<id>`` -> the newest ``updated_at`` seen, for the next run."""


def _account_mark(spec: BusinessAccountSpec) -> str:
    return f"account:{spec.id}"


def _account_tables(model: UnifiedModel) -> list[BusinessAccountSpec]:
    wanted = {
        link[0].id: link[0]
        for m in model.customer.members
        if (link := account_link(m, model.business))
    }
    return list(wanted.values())


async def _account_rows(federation: Federation, marks: dict[str, Any]) -> _Accounts:
    """Every row of the account tables, and which changed since ``marks`` (rows of
    an account table without ``updated_at`` never count as changed)."""
    accounts = _Accounts()
    for spec in _account_tables(federation.model):
        columns = spec.columns()
        if spec.updated_at:
            columns = [*columns, spec.updated_at]
        since = marks.get(_account_mark(spec), {}).get("updated_at")
        newest = since
        rows: dict[str, Row] = {}
        changed: set[str] = set()
        async for row in federation.connectors[spec.source].scan(
            ScanRequest(spec.table, list(dict.fromkeys(columns)))
        ):
            key = str(row[spec.key])
            rows[key] = row
            stamp = _stamp(row.get(spec.updated_at)) if spec.updated_at else None
            if stamp is not None:
                if since is not None and stamp > since:
                    changed.add(key)
                if newest is None or stamp > newest:
                    newest = stamp
        accounts.rows[spec.id] = rows
        accounts.changed[spec.id] = changed
        if spec.updated_at:
            accounts.watermark[_account_mark(spec)] = {"updated_at": newest}
    return accounts


async def _anything_new(federation: Federation, marks: dict[str, Any]) -> bool:
    """Whether any member table holds a record changed since the watermark, asked of
    the sources with pushed-down filters (one row at most each); True when a
    source cannot say."""
    for member in federation.model.customer.members:
        seen = marks.get(member.id)
        if not seen:
            return True
        connector = federation.connectors[member.source]
        caps = connector.capabilities_for(member.table)
        probes: list[Filter] = []
        since, top = seen.get("updated_at"), seen.get("key")
        if member.updated_at:
            if since is None or not caps.can_filter(member.updated_at, "gt"):
                return True
            stamp = _watermark_time(since)
            probes.append(Filter(member.updated_at, "gt", stamp))
        if member.key_type == "int" and top is not None:
            if not caps.can_filter(member.key, "gt"):
                return True
            probes.append(Filter(member.key, "gt", top))
        if not probes:
            return True  # nothing tells what changed: read it again
        for probe in probes:
            request = ScanRequest(member.table, [member.key], [probe], limit=1)
            async for _row in connector.scan(request):
                return True
    for spec in _account_tables(federation.model):
        if not spec.updated_at:
            continue  # only a full run notices a renamed account (documented)
        since = marks.get(_account_mark(spec), {}).get("updated_at")
        connector = federation.connectors[spec.source]
        if since is None or not connector.capabilities_for(spec.table).can_filter(
            spec.updated_at, "gt"
        ):
            return True
        stamp = _watermark_time(since)
        request = ScanRequest(
            spec.table, [spec.key], [Filter(spec.updated_at, "gt", stamp)], limit=1
        )
        async for _row in connector.scan(request):
            return True
    return False


async def resolve(
    federation: Federation,
    *,
    full: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
) -> ResolveReport:
    """Runs one resolution over every member table; see the module docstring."""
    registry, matcher = federation.registry, federation.matcher
    spec = federation.model.identity.probabilistic
    if registry is None:
        raise QueryError("custview resolve needs an identity registry ('registry' in the config)")
    if matcher is None or spec is None:
        raise QueryError(
            "custview resolve needs a trained model: set model.identity.probabilistic "
            "(see docs/identity.md)"
        )
    report_progress: Progress = progress or (lambda phase, done, total: None)
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    await registry.refresh(force=True)
    last = registry.last_run
    mode = "full" if full or last is None else "incremental"
    report = ResolveReport(mode, model=_model_version(spec.model))
    marks: dict[str, Any] = dict(last.watermark) if last and mode == "incremental" else {}

    if mode == "incremental" and not await _anything_new(federation, marks):
        await registry.ledger.finish_run(
            await registry.ledger.start_run(report.model, mode),
            0,
            len(registry.stored_links()),
            marks,
        )
        await registry.refresh(force=True)
        links = registry.stored_links()
        report.links = sum(1 for p in links.values() if p >= spec.link)
        report.candidates = len(links) - report.links
        return report

    # -- read: rows stream from the sources; match records are built by a
    # process pool (normalising names and phones is CPU-bound) while reading goes on
    started = time.perf_counter()
    chunks: list[asyncio.Future[list[MatchRecord]]] = []
    changed: list[int] = []
    watermark: dict[str, Any] = {}
    stitcher = federation.stitcher
    model = federation.model
    loop = asyncio.get_running_loop()
    pools: list[ProcessPoolExecutor] = []

    def pool() -> ProcessPoolExecutor | None:
        """Worker processes once the run is big enough to repay starting them."""
        if workers > 1 and not pools and read >= _POOL_AFTER:
            context = mp.get_context("spawn")
            pools.append(ProcessPoolExecutor(workers, context, _init, (model,)))
        return pools[0] if pools else None

    read = 0
    accounts = await _account_rows(federation, marks)
    watermark.update(accounts.watermark)
    try:
        for member in model.customer.members:
            connector = federation.connectors[member.source]
            request = ScanRequest(member.table, stitcher.columns(member))
            link = account_link(member, model.business)
            pointed = accounts.rows[link[0].id] if link else {}
            renamed = accounts.changed[link[0].id] if link else set()
            seen = marks.get(member.id, {})
            newest, top = seen.get("updated_at"), seen.get("key")
            since, above = newest, top
            chunk: list[dict[str, Any]] = []

            def flush(rows: list[dict[str, Any]], member_id: str = member.id) -> None:
                executor = pool()
                if executor is None:
                    future = loop.create_future()
                    future.set_result(_match_rows(model, member_id, rows))
                else:
                    future = asyncio.wrap_future(executor.submit(_match_worker, member_id, rows))
                chunks.append(future)

            async for row in connector.scan(request):
                account = None
                if link is not None and row.get(link[1]) is not None:
                    account = str(row[link[1]])
                    row = with_account(row, pointed.get(account), link[0])
                chunk.append(row)
                stamp = _stamp(row.get(member.updated_at)) if member.updated_at else None
                key = row[member.key]
                if (
                    mode == "full"
                    or account in renamed
                    or not member.updated_at
                    or (stamp is not None and (since is None or stamp > since))
                    or (isinstance(key, int) and (above is None or key > above))
                ):
                    changed.append(read)
                read += 1
                if stamp is not None and (newest is None or stamp > newest):
                    newest = stamp
                if isinstance(key, int) and (top is None or key > top):
                    top = key
                if len(chunk) >= _CHUNK:
                    flush(chunk)
                    chunk = []
                    report_progress("read", read, None)
            if chunk:
                flush(chunk)
            watermark[member.id] = {"updated_at": newest, "key": top}
        records = [record for part in await asyncio.gather(*chunks) for record in part]
    finally:
        for executor in pools:
            executor.shutdown(cancel_futures=True)
    report.records, report.changed = len(records), len(changed)
    report_progress("read", len(records), len(records))
    report.seconds["read"] = time.perf_counter() - started

    # -- score --------------------------------------------------------------
    started = time.perf_counter()
    threshold = spec.candidate
    scored: dict[tuple[str, str], float] = {}
    if mode == "full":
        from resolvers.matching.train import predict_pairs

        report_progress("score", 0, None)
        for a, b, p in predict_pairs(records, resolve_model_path(spec.model), threshold):
            scored[(a, b) if a < b else (b, a)] = p
        report.pairs_scored = len(scored)
    else:
        index: dict[tuple[str, tuple[str, ...]], list[int]] = defaultdict(list)
        for i, mr in enumerate(records):
            for key in blocking_keys(mr):
                index[key].append(i)
        scorer = matcher.model
        for n, i in enumerate(changed):
            mr = records[i]
            candidates: set[int] = set()
            for key in blocking_keys(mr):
                block = index.get(key, [])
                if len(block) <= MAX_BLOCK:
                    candidates.update(block)
            candidates.discard(i)
            for j in candidates:
                p = scorer.score(mr, records[j]).probability
                report.pairs_scored += 1
                if p >= threshold:
                    a, b = str(mr["unique_id"]), str(records[j]["unique_id"])
                    scored[(a, b) if a < b else (b, a)] = p
            if n % 1_000 == 0:
                report_progress("score", n, len(changed))
    report_progress("score", len(changed), len(changed))
    report.seconds["score"] = time.perf_counter() - started

    # -- write the registry diff --------------------------------------------
    started = time.perf_counter()
    ids = {str(records[i]["unique_id"]) for i in changed} if mode == "incremental" else None
    records.clear()
    rows: list[tuple[str, str, float | None]] = []
    known = registry.stored_links()
    for pair in known:
        touched = ids is None or pair[0] in ids or pair[1] in ids
        if touched and pair not in scored:
            rows.append((pair[0], pair[1], None))  # retracted
    for pair, p in scored.items():
        if known.get(pair) != p:
            rows.append((pair[0], pair[1], p))
    run = await registry.ledger.start_run(report.model, mode)
    report.run = run
    report.written = await registry.ledger.append_links(run, rows)
    await registry.ledger.finish_run(run, report.records, len(scored), watermark)
    await registry.refresh(force=True)
    links = registry.stored_links()
    report.links = sum(1 for p in links.values() if p >= spec.link)
    report.candidates = len(links) - report.links
    report_progress("write", report.written, report.written)
    report.seconds["write"] = time.perf_counter() - started
    return report
