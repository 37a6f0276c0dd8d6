"""Whole exports with pass 2 in worker processes (``exports.workers``) give what the
exporting process alone gives: the same bytes, the same governance and audit, the
same source failures; a cancelled export leaves no worker behind."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from typer.testing import CliRunner

import resolvers.export as export_rows
from connectors import ConnectorError
from gateway.app import create_app
from gateway.cli import app as cli_app
from gateway.demodata.feedback_service import DEMO_TOKEN, create_feedback_app
from gateway.export_workers import ExportWorkers, WorkerFailed
from gateway.serving import DEMO_HEADERS
from gateway.settings import DEMO_CONFIG, LoadedSettings, load_settings
from resolvers import walk
from resolvers.export import Encoded, Failures, columns, rows
from resolvers.view import Federation
from tests.e2e.conftest import leaky_demo_config, serve_in_process
from tests.support.loop import loop_gaps
from tests.support.servers import serve_in_thread

SUPPORT = {"X-API-Key": "support-key"}
EMEA = {"X-API-Key": "emea-key"}


class Noting(ExportWorkers):
    """Export workers that note how each chunk came back: its bytes or its rows."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.came: list[str] = []

    async def build(self, spec: Any, plans: Any) -> Any:
        async for done in super().build(spec, plans):
            self.came.append("rows" if done.encoded is None else "bytes")
            assert done.encoded is None or done.rows == []
            yield done


class Started:
    """The app's worker factory, keeping every export's workers to look at."""

    def __init__(self, loaded: LoadedSettings, count: int) -> None:
        self.loaded = loaded
        self.count = count
        self.made: list[Noting] = []

    def __call__(self, fmt: str | None = None, columns: Any = ()) -> Noting:
        workers = Noting(self.loaded, self.count, fmt, columns)
        self.made.append(workers)
        return workers

    def came(self) -> set[str]:
        """How the last export's chunks came back (at least one did)."""
        assert self.made[-1].came
        return set(self.made[-1].came)


@pytest.fixture()
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # ~20 chunks for the demo: several per worker, more than are ever in flight
    monkeypatch.setattr(export_rows, "CHUNK", 100)


async def _both(
    client: httpx.AsyncClient, loaded: LoadedSettings, path: str, headers: dict[str, str]
) -> tuple[bytes, bytes, Started]:
    """``path`` exported in process, then by two workers."""
    app: Any = client.app  # type: ignore[attr-defined]
    app.state.export_workers = None
    alone = await client.get(path, headers=headers)
    assert alone.status_code == 200, alone.text
    started = app.state.export_workers = Started(loaded, 2)
    farmed = await client.get(path, headers=headers)
    assert farmed.status_code == 200, farmed.text
    assert len(started.made) == 1
    # both workers built chunks and stopped when the export was done
    assert len(started.made[0].usage) == 2
    assert not any(p.is_alive() for p in started.made[0].processes)
    return alone.content, farmed.content, started


@pytest.mark.parametrize("table", ["customers", "tickets", "source_records"])
async def test_workers_export_the_same_bytes_in_every_format(
    client: httpx.AsyncClient,
    demo_settings: LoadedSettings,
    engine_layout: str,
    small_chunks: None,
    table: str,
) -> None:
    # every format on SQLite; CSV (the same rows) on PostgreSQL + MariaDB; nothing
    # masked, so the workers encode their chunks and send the bytes
    every = table == "customers" and engine_layout == "sqlite"
    for fmt in ("csv", "ndjson", "arrow", "parquet") if every else ("csv",):
        alone, farmed, started = await _both(client, demo_settings, f"/export/{table}.{fmt}", {})
        assert len(alone) > 10_000
        assert farmed == alone, f"{table}.{fmt}"
        # Parquet is written whole, from the rows
        assert started.came() == {"rows" if fmt == "parquet" else "bytes"}, fmt
    if table == "customers":  # masked: the rows come back and the exporter masks them
        path = "/export/customers.csv?columns=id,name,email,country"
        alone, farmed, started = await _both(client, demo_settings, path, SUPPORT)
        assert farmed == alone and b"***" in farmed
        assert started.came() == {"rows"}


def _audited() -> list[tuple[Any, ...]]:
    log = Path(os.environ["CUSTVIEW_AUDIT_LOG"])
    lines = log.read_text().splitlines() if log.exists() else []
    entries = [json.loads(line) for line in lines]
    return [
        (e["principal"], e["customers"], e["fields"], e["outcome"])
        for e in entries
        if e["channel"] == "export"
    ]


@pytest.mark.parametrize("engine_layout", ["sqlite"], indirect=True)
@pytest.mark.parametrize("headers", [SUPPORT, EMEA], ids=["masked", "row-rules"])
async def test_workers_keep_masking_row_rules_and_the_audit(
    client: httpx.AsyncClient,
    demo_settings: LoadedSettings,
    small_chunks: None,
    headers: dict[str, str],
) -> None:
    path = "/export/customers.ndjson?columns=id,name,email,phone,country"
    before = len(_audited())
    alone, farmed, started = await _both(client, demo_settings, path, headers)
    assert farmed == alone
    # masked: rows, masked here; the row rules mask nothing: bytes, encoded there
    assert started.came() == {"rows" if headers is SUPPORT else "bytes"}
    audited = _audited()[before:]
    half = len(audited) // 2
    assert audited[:half] == audited[half:], "the same audit entries, chunk by chunk"
    assert audited[half][3] == "started" and len(audited) - half > 5
    exported = [json.loads(line) for line in farmed.decode().splitlines()]
    assert sorted(c for entry in audited[half + 1 :] for c in entry[1]) == sorted(
        r["id"] for r in exported
    )
    if headers is SUPPORT:  # masked where the policy says so
        assert all(r["email"] is None or "***" in r["email"] for r in exported)
    else:  # only the rows the rules admit
        assert {r["country"] for r in exported} <= {"DE", "FR", "GB"}
        assert 50 < len(exported) < 1000


class _Recorder:
    """An auditor that notes what the export has yielded when each entry is written."""

    def __init__(self) -> None:
        self.entries: list[tuple[list[str], int]] = []
        self.yielded = 0

    async def record(self, customers: Any, fields: Any, outcome: str, *rest: Any) -> None:
        self.entries.append((list(customers), self.yielded))


@pytest.mark.parametrize("fmt", [None, "csv"], ids=["rows", "encoded"])
async def test_each_chunk_is_audited_by_the_exporter_before_it_is_yielded(
    demo_env: None, small_chunks: None, fmt: str | None
) -> None:
    loaded = load_settings(DEMO_CONFIG)
    model = loaded.settings.model
    federation = Federation(model, loaded.create_connectors())
    grant = loaded.policy.grant(["regional"], {"regions": "DE,FR,GB"})
    recorder = _Recorder()
    wanted = columns(model, "customers", ["id", "country"])
    chunks = 0
    try:
        async for chunk in rows(
            federation, "customers", wanted, grant=grant, auditor=recorder,  # type: ignore[arg-type]
            builders=ExportWorkers(loaded, 2, fmt, wanted),
        ):  # fmt: skip
            if fmt is None:
                assert isinstance(chunk, list)
                built = chunk
            else:  # encoded by its worker (nothing is masked): its CSV lines
                assert isinstance(chunk, Encoded) and chunk.form == "csv"
                built = list(csv.reader(io.StringIO(chunk.data.decode())))
                assert len(built) == len(chunk)
            ids, yielded_then = recorder.entries[-1]
            assert yielded_then == chunks, "written before the chunk left"
            assert ids == [row[0] for row in built]
            assert all(row[1] in {"DE", "FR", "GB"} for row in built)
            chunks += 1
            recorder.yielded = chunks
    finally:
        await federation.aclose()
    assert chunks > 5 and len(recorder.entries) == chunks


# -- a source failing mid-export -------------------------------------------------


def _failing_at(app: Any, respondent: int) -> Any:
    """The feedback service, answering HTTP 400 to any lookup of ``respondent``."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/respondents"):
            query = parse_qs(scope["query_string"].decode())
            ids = {i for value in query.get("ids", []) for i in value.split(",")}
            if str(respondent) in ids:
                await send({"type": "http.response.start", "status": 400, "headers": []})
                await send({"type": "http.response.body", "body": b"{}"})
                return
        await app(scope, receive, send)

    return wrapped


@pytest.fixture()
def failing_feedback(
    demo_dir: Path, demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    con = sqlite3.connect(demo_dir / "feedback.db")
    (last,) = con.execute("SELECT max(id) FROM respondents").fetchone()
    con.close()
    app = _failing_at(create_feedback_app(demo_dir, DEMO_TOKEN), last)
    with serve_in_thread(app) as url:
        monkeypatch.setenv("CUSTVIEW_FEEDBACK_URL", f"{url}/api")
        yield


async def _run(loaded: LoadedSettings, workers: int, failures: Failures | None) -> Any:
    """(chunks before the export stopped, the error or None)."""
    federation = Federation(loaded.settings.model, loaded.create_connectors())
    wanted = columns(loaded.settings.model, "customers")
    builders = ExportWorkers(loaded, workers) if workers else None
    got: list[Any] = []
    try:
        async for chunk in rows(
            federation, "customers", wanted, failures=failures, builders=builders
        ):
            got.append(chunk)
    except ConnectorError as exc:
        return got, exc
    finally:
        await federation.aclose()
    return got, None


async def test_a_source_failing_mid_export_fails_or_is_collected_as_in_process(
    failing_feedback: None, small_chunks: None
) -> None:
    alone, whole = await _fails_or_is_collected_as_in_process(load_settings(DEMO_CONFIG))
    assert len(alone) > 0 and len(whole) > len(alone)


async def _fails_or_is_collected_as_in_process(loaded: Any) -> tuple[Any, Any]:
    """The export with 2 workers as in process, its feedback source failing: raised
    (HTTP cuts the transfer there), after the same chunks with the same error;
    collected (the CLI), every chunk with the same failures reported. The chunks
    before the error and the chunks collected."""
    alone, error = await _run(loaded, 0, None)
    farmed, farmed_error = await _run(loaded, 2, None)
    assert error is not None and farmed_error is not None
    assert farmed == alone
    assert type(farmed_error) is type(error)
    assert (farmed_error.source, farmed_error.code, farmed_error.message) == (
        error.source, error.code, error.message,
    )  # fmt: skip
    collected, farmed_collected = Failures(), Failures()
    whole, _ = await _run(loaded, 0, collected)
    farmed, _ = await _run(loaded, 2, farmed_collected)
    assert farmed == whole
    assert dict(farmed_collected) == dict(collected) and "feedback" in collected
    return alone, whole


async def test_the_workers_read_pass_1s_tables_and_the_exporter_joins_them(
    demo_env: None, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_settings(DEMO_CONFIG)
    alone, _ = await _run(loaded, 0, None)

    async def not_here(*args: Any) -> int:
        raise AssertionError("the exporting process read a member table")

    # the workers come from the fork server's own imports: only the exporter's is patched
    monkeypatch.setattr(walk, "_scan_keys", not_here)
    farmed, error = await _run(loaded, 2, None)
    assert error is None and farmed == alone and len(alone) > 5


async def test_workers_collect_the_young_generation_rarely(demo_env: None) -> None:
    """A worker's chunks die by reference counting: collected every 700 allocations
    (CPython's default), their young objects were traversed and promoted hundreds of
    times an export for nothing (resolvers/heap.py, ``WALK_THRESHOLDS``)."""
    loaded = load_settings(DEMO_CONFIG)
    federation = Federation(loaded.settings.model, loaded.create_connectors())
    workers = ExportWorkers(loaded, 2)
    try:
        async for _ in rows(
            federation, "customers", columns(loaded.settings.model, "customers"), builders=workers
        ):
            pass
    finally:
        await federation.aclose()
    assert len(workers.usage) == 2
    assert [u["young_collections"] < 50 for u in workers.usage] == [True, True], workers.usage


def _small_spool(every: int, marks: str, *args: Any) -> None:
    """A worker whose keys are spooled every ``every`` keys of a bucket (many segments
    a bucket and table), each segment noted in the file ``marks``."""
    from gateway.export_workers import serve

    write = walk._Edges._write

    def noted(edges: Any, bucket: int, data: bytes) -> None:
        if data:
            with open(marks, "a") as fh:
                fh.write(f"{bucket}\n")
        write(edges, bucket, data)

    walk.SPOOL_EVERY = every
    walk._Edges._write = noted  # type: ignore[method-assign]
    serve(*args)


async def test_workers_spooling_each_bucket_in_many_segments_export_as_in_process(
    demo_env: None, small_chunks: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Pass 1's keys cross from the workers to the exporter as segments of their
    spool: with a few keys a segment (the 1M export's case, in small), every
    bucket of every table is many segments, joined as the in-process walk joins them."""
    import gateway.export_workers

    loaded = load_settings(DEMO_CONFIG)
    alone, _ = await _run(loaded, 0, None)
    marks = tmp_path / "segments"
    monkeypatch.setattr(gateway.export_workers, "serve", partial(_small_spool, 3, str(marks)))
    farmed, error = await _run(loaded, 2, None)
    assert error is None and farmed == alone and len(alone) > 5
    segments = marks.read_text().split()
    assert len(segments) > 10 * walk.BUCKETS, "the workers spooled many segments"
    assert len(set(segments)) == walk.BUCKETS


def _listing_fails(app: Any) -> Any:
    """The feedback service, answering HTTP 400 to the listing of respondents (pass 1's
    read of the table) and as usual to lookups by id (pass 2's)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].endswith("/respondents")
            and b"ids=" not in scope["query_string"]
        ):
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await app(scope, receive, send)

    return wrapped


async def test_a_table_failing_in_pass_1_fails_or_is_collected_as_in_process(
    demo_dir: Path, demo_env: None, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_in_thread(_listing_fails(create_feedback_app(demo_dir, DEMO_TOKEN))) as url:
        monkeypatch.setenv("CUSTVIEW_FEEDBACK_URL", f"{url}/api")
        alone, whole = await _fails_or_is_collected_as_in_process(load_settings(DEMO_CONFIG))
    assert alone == [] and len(whole) > 5


def _listings_counted(app: Any, listings: list[str]) -> Any:
    """The feedback service, noting each listing of respondents (pass 1's read)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].endswith("/respondents")
            and b"ids=" not in scope["query_string"]
        ):
            listings.append(scope["path"])
        await app(scope, receive, send)

    return wrapped


def _demo_without(
    name: str, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The demo's data without the file ``name``, as the demo's from now on."""
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data, ignore=shutil.ignore_patterns(name))
    monkeypatch.setenv("CUSTVIEW_DEMO_DIR", str(data))
    return data


async def test_a_failing_first_table_stops_pass_1_with_workers_as_in_process(
    demo_dir: Path,
    demo_env: None,
    small_chunks: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no crm.db: the first member table (crm contacts) cannot be read
    data = _demo_without("crm.db", demo_dir, tmp_path, monkeypatch)
    listings: list[str] = []
    with serve_in_thread(_listings_counted(create_feedback_app(data, DEMO_TOKEN), listings)) as url:
        monkeypatch.setenv("CUSTVIEW_FEEDBACK_URL", f"{url}/api")
        loaded = load_settings(DEMO_CONFIG)
        alone, error = await _run(loaded, 0, None)
        assert listings == []  # in process: nothing read after the failing table
        farmed, farmed_error = await _run(loaded, 2, None)
        # nor by the workers: the feedback table (the last) is never sent to them
        assert listings == []
        assert alone == farmed == []
        assert error is not None and farmed_error is not None
        assert (farmed_error.source, farmed_error.code, farmed_error.message) == (
            error.source, error.code, error.message,
        )  # fmt: skip
        # collected: every other table is read (the count sees the feedback listing)
        collected = Failures()
        await _run(loaded, 2, collected)
    assert listings and "crm" in collected


async def test_workers_hashing_differently_fail_the_export(
    demo_env: None, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    take = ExportWorkers._take

    async def another_seed(
        self: ExportWorkers, worker: int, expected: str = "chunk", *rest: Any
    ) -> Any:
        got = await take(self, worker, expected, *rest)
        if expected == "scanned" and worker == 1:
            failed, probe = got
            return failed, probe + 1
        return got

    monkeypatch.setattr(ExportWorkers, "_take", another_seed)
    loaded = load_settings(DEMO_CONFIG)
    with pytest.raises(WorkerFailed, match="hash keys differently"):
        await _run(loaded, 2, None)


async def test_a_worker_answering_out_of_turn_fails_the_export_even_under_python_O(
    demo_env: None,
) -> None:
    # a real check, not an assert (which python -O drops, handing on the wrong payload)
    workers, _ = await _started_workers(1)
    try:
        workers._send_later(0, ("scan", 1))
        with pytest.raises(WorkerFailed, match=r"answered 'scanned' while building a chunk"):
            await workers._take(0)
    finally:
        await workers.aclose()


def _breaking(at: str, how: str, table: str, *args: Any) -> None:
    """A worker that ends (``exit``) or raises a bug's error (``raise``) when it reads
    member table ``table`` (``at="read"``), or when it takes in a bucket of another
    worker's read of it (``at="keep"``: a message that is never answered, so the
    exporter is waiting for something else then)."""
    from gateway.export_workers import serve
    from resolvers.export_chunks import ChunkMaker

    def broken() -> None:
        if how == "exit":
            os._exit(3)
        raise RuntimeError("a bug in the worker")

    scan, keep = walk._scan_keys, ChunkMaker.keep

    async def breaking_read(federation: Any, member: Any, edges: Any) -> int:
        if member.spec.table == table:
            broken()
        return await scan(federation, member, edges)

    def breaking_keep(maker: ChunkMaker, rank: int, bucket: int, part: Any) -> None:
        if maker.federation.model.customer.members[rank].table == table:
            broken()
        keep(maker, rank, bucket, part)

    if at == "read":
        walk._scan_keys = breaking_read  # type: ignore[assignment]
    else:
        ChunkMaker.keep = breaking_keep  # type: ignore[method-assign]
    serve(*args)


LEADS = "member table 'leads' of source 'crm'"


@pytest.mark.parametrize(
    ("at", "how", "named"),
    [
        ("read", "exit", f"stopped (exit code 3) while reading {LEADS}"),
        ("read", "raise", f"failed while reading {LEADS}: RuntimeError: a bug in the worker"),
        # it stopped at one of the messages it had not answered, each named
        ("keep", "exit", "stopped (exit code 3) while taking in 16 buckets of the read of "),
        # the worker says what it was doing
        ("keep", "raise", f"failed while taking in a bucket of the read of {LEADS}: RuntimeError"),
    ],
)
async def test_a_failing_worker_is_named_with_what_it_was_doing(
    demo_env: None, monkeypatch: pytest.MonkeyPatch, at: str, how: str, named: str
) -> None:
    import gateway.export_workers

    monkeypatch.setattr(gateway.export_workers, "serve", partial(_breaking, at, how, "leads"))
    if at == "read":  # a wrong token fails the feedback source's read: no join after it
        monkeypatch.setenv("CUSTVIEW_FEEDBACK_TOKEN", "s3cret-feedback-token")
    with pytest.raises(WorkerFailed) as failed:
        await _run(load_settings(DEMO_CONFIG), 2, None)
    message = str(failed.value)
    assert named in message, message
    if at == "keep" and how == "exit":
        assert f"of the read of {LEADS}" in message, message
    assert "building a chunk" not in message and "s3cret" not in message


PASSWORD = "pg-pass-5ecret"
TENANT_KEY = "tenant-key-5ecret"
LEAKS = (PASSWORD, TENANT_KEY, DEMO_TOKEN)
"""A source URL's password, a REST source's header and its bearer token (all from
``${ENV}``): what an unexpected error's text may hold."""


def _leaking(message: str, *args: Any) -> None:
    """A worker whose read of member table 'leads' raises a bug's error, ``message``."""
    from gateway.export_workers import serve

    scan = walk._scan_keys

    async def leaking(federation: Any, member: Any, edges: Any) -> int:
        if member.spec.table == "leads":
            raise ValueError(message)
        return await scan(federation, member, edges)

    walk._scan_keys = leaking  # type: ignore[assignment]
    serve(*args)


@pytest.fixture()
def leaky_config(demo_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo with 2 workers, a PostgreSQL source with a password (never read) and a
    header on the feedback source, both from the environment, and workers whose
    read of 'leads' fails with an error quoting every secret."""
    import gateway.export_workers

    monkeypatch.setenv("WAREHOUSE_PASSWORD", PASSWORD)
    monkeypatch.setenv("FEEDBACK_TENANT_KEY", TENANT_KEY)
    url = f"postgresql+asyncpg://reader:{PASSWORD}@127.0.0.1:1/dw"
    message = f"{url} refused {PASSWORD!r}; token {DEMO_TOKEN}, X-Tenant-Key: {TENANT_KEY}"
    monkeypatch.setattr(gateway.export_workers, "serve", partial(_leaking, message))
    return leaky_demo_config(tmp_path, "\nexports: {workers: 2}\n")


def _clear_and_secret_free(text: str) -> None:
    for secret in LEAKS:
        assert secret not in text
    assert "export worker" in text
    assert "failed while reading member table 'leads' of source 'crm': ValueError: " in text
    assert "*** refused '***'; token ***, X-Tenant-Key: ***" in text
    assert "not a source failure but a bug" in text and "please report it" in text
    assert "in leaking" in text, "where it was raised"


def test_a_workers_unexpected_error_reaches_the_cli_clear_and_without_secrets(
    leaky_config: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "customers.csv"
    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(cli_app, ["export", "-c", str(leaky_config), "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: export worker "), result.stderr
    _clear_and_secret_free(result.stderr)
    for secret in LEAKS:
        assert secret not in result.output + caplog.text + out.read_text()


async def test_a_workers_unexpected_error_reaches_the_http_log_clear_and_without_secrets(
    leaky_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(load_settings(leaky_config))
    server_log = logging.getLogger("uvicorn.error")  # where an app's exception goes
    # the 500 leaves before uvicorn logs the error: listen until the server has stopped
    # (its handler is added once the server configured its logging, which drops it)
    with caplog.at_level(logging.DEBUG):
        try:
            with serve_in_thread(app, lifespan="on") as url:
                server_log.addHandler(caplog.handler)
                async with httpx.AsyncClient(
                    base_url=url, timeout=60, headers=DEMO_HEADERS
                ) as http:
                    response = await http.get("/export/customers.csv")
        finally:
            server_log.removeHandler(caplog.handler)
    assert response.status_code == 500
    for secret in LEAKS:
        assert secret not in response.text
    _clear_and_secret_free(caplog.text)


async def test_a_failed_exports_error_holds_no_pipe_to_its_workers(
    demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.export_workers

    warm, _ = await _started_workers(1)  # the fork server's pipes stay open: start it first
    await warm.aclose()
    pipes = _pipes()
    monkeypatch.setattr(
        gateway.export_workers, "serve", partial(_breaking, "read", "raise", "leads")
    )
    started: list[BaseProcess] = []
    start = BaseProcess.start

    def recorded(process: BaseProcess) -> None:
        started.append(process)
        start(process)

    monkeypatch.setattr(BaseProcess, "start", recorded)
    with pytest.raises(WorkerFailed) as failed:
        await _run(load_settings(DEMO_CONFIG), 2, None)
    # the error's traceback still holds the exporter and its workers' process objects
    # (no collection since): their pipes to the fork server are closed all the same
    assert failed.value.__traceback__ is not None
    assert _pipes() == pipes
    # through the public API: each worker's process object is closed (Process.close())
    assert len(started) == 2
    for process in started:
        with pytest.raises(ValueError, match="process object is closed"):
            process.is_alive()
    # and closed workers still tell how they ended (stopped unfinished, by SIGTERM)
    (stopped,) = warm.processes
    assert not stopped.is_alive() and stopped.exitcode == -signal.SIGTERM


def _pipes() -> int:
    """The pipes this process holds open."""
    return sum(1 for f in _open_files() if f.startswith("pipe:"))


def _many_tables(tmp_path: Path, count: int) -> LoadedSettings:
    """One SQLite source with ``count`` member tables of a few people each (the same
    people spread over them, stitched by email)."""
    db = tmp_path / "many.db"
    con = sqlite3.connect(db)
    for table in range(count):
        con.execute(f"CREATE TABLE people_{table} (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        con.executemany(
            f"INSERT INTO people_{table} VALUES (?, ?, ?)",
            [(i, f"Person {i}", f"p{(i + table) % 40}@example.com") for i in range(1, 21)],
        )
    con.commit()
    con.close()
    members = "".join(
        f"      - {{source: many, table: people_{table}, fields: {{name: name, email: email}}, "
        "identity: {email: [email]}}\n"
        for table in range(count)
    )
    config = tmp_path / "many.yaml"
    config.write_text(
        "version: 1\nsources:\n  many:\n    connector: sql\n"
        f'    options: {{url: "sqlite+aiosqlite:///{db}", timeout: 5}}\n'
        "model:\n  customer:\n    fields:\n      name: {type: string}\n"
        "      email: {type: string, normalize: email}\n    members:\n"
        + members
        + "  identity:\n    keys:\n      email: {normalize: email}\n"
    )
    return load_settings(config)


FILES_LIMIT = 64
"""A worker's open-files limit in the many-tables test: far below 32 spool files for
each of 40 held tables, far above what a worker needs."""


def _few_files(noted: str, *args: Any) -> None:
    """A worker allowed :data:`FILES_LIMIT` open files, noting how many it holds
    (``/proc/self/fd``) each time the exporter takes a read: every table is read
    and held by then."""
    import resource

    from gateway.export_workers import serve
    from resolvers.export_chunks import ChunkMaker

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILES_LIMIT, hard))
    header = ChunkMaker.header

    def counted(self: ChunkMaker, rank: int) -> Any:
        with open(noted, "a") as out:
            out.write(f"{len(os.listdir('/proc/self/fd'))}\n")
        return header(self, rank)

    ChunkMaker.header = counted  # type: ignore[method-assign]
    serve(*args)


async def test_a_worker_holding_many_tables_keeps_few_files_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one worker reads all 40 tables before the exporter takes the first
    import gateway.export_workers

    loaded = _many_tables(tmp_path, 40)
    noted = tmp_path / "fds.txt"
    monkeypatch.setattr(gateway.export_workers, "serve", partial(_few_files, str(noted)))
    alone, _ = await _run(loaded, 0, None)
    farmed, error = await _run(loaded, 1, None)
    assert error is None and farmed == alone
    assert sum(len(chunk) for chunk in alone) == 40
    counts = [int(n) for n in noted.read_text().split()]
    assert len(counts) == 40
    # a constant few (its pipe, its database, one spool), not one per table held
    assert max(counts) <= min(counts) + 1 < 30, counts


def _ordered(marker: str, *args: Any) -> None:
    """A worker whose read of the first member table waits until some worker's read
    of another table has failed (``marker`` exists): a later table fails first."""
    from gateway.export_workers import serve

    scan = walk._scan_keys
    failed = Path(marker)

    def wait() -> None:  # the worker reads one table at a time: nothing else waits
        deadline = time.monotonic() + 30
        while not failed.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    async def ordered(federation: Any, member: Any, edges: Any) -> int:
        if member.rank == 0:
            wait()
        try:
            return await scan(federation, member, edges)
        except ConnectorError:
            open(marker, "w").close()  # noqa: ASYNC230 (as above)
            raise

    walk._scan_keys = ordered  # type: ignore[assignment]
    serve(*args)


async def test_a_later_table_failing_before_an_earlier_one_is_read_fails_as_in_process(
    demo_dir: Path,
    demo_env: None,
    small_chunks: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no sales.db: the third member table fails while the workers still read the first
    import gateway.export_workers

    _demo_without("sales.db", demo_dir, tmp_path, monkeypatch)
    marker = tmp_path / "failed"
    monkeypatch.setattr(gateway.export_workers, "serve", partial(_ordered, str(marker)))
    answered: list[tuple[str, bool]] = []
    take = ExportWorkers._take

    async def noted(self: ExportWorkers, worker: int, expected: str = "chunk", *rest: Any) -> Any:
        got = await take(self, worker, expected, *rest)
        if expected == "scanned":
            answered.append((rest[0], got[0]))
        return got

    monkeypatch.setattr(ExportWorkers, "_take", noted)
    loaded = load_settings(DEMO_CONFIG)
    warm, _ = await _started_workers(1)  # the fork server's files stay open: start it first
    await warm.aclose()
    fds = len(_open_files())
    for collect in (False, True):
        answered.clear()
        marker.unlink(missing_ok=True)
        alone, farmed = (Failures(), Failures()) if collect else (None, None)
        chunks, error = await _run(loaded, 0, alone)
        farmed_chunks, farmed_error = await _run(loaded, 2, farmed)
        # the sales read failed first, the contacts read (the first table) ended after it
        sales = answered.index(("reading member table 'customers' of source 'sales'", True))
        assert answered.index(("reading member table 'contacts' of source 'crm'", False)) > sales
        assert farmed_chunks == chunks
        if collect:  # nothing lost: every other table's customers, the same failure
            assert error is None and farmed_error is None and len(chunks) > 5
            assert dict(farmed or {}) == dict(alone or {}) and "sales" in (alone or {})
        else:  # the sales error, as in process (none of the reads after it sent)
            assert chunks == [] and error is not None and farmed_error is not None
            assert (farmed_error.source, farmed_error.code, farmed_error.message) == (
                error.source, error.code, error.message,
            )  # fmt: skip
            assert len(answered) == 3
    # nothing left open here (the exporter's spool, pipes, threads' files), though
    # the errors returned above still hold their exporters in their tracebacks
    left = _open_files()
    assert len(left) == fds, "\n".join(left)


def _open_files() -> list[str]:
    """What this process holds open (``/proc/self/fd``)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


# -- cancellation ------------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


async def _all_gone(workers: ExportWorkers) -> None:
    """Waits (20 s at most) until both of ``workers``' processes are gone."""
    pids = [p.pid for p in workers.processes]
    assert len(pids) == 2 and all(pids)
    deadline = time.monotonic() + 20
    while not all(_gone(pid) for pid in pids if pid):
        assert time.monotonic() < deadline, "the workers outlived the export"
        await asyncio.sleep(0.05)


async def test_a_client_that_goes_away_stops_the_workers(
    demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_rows, "CHUNK", 25)
    loaded = load_settings(DEMO_CONFIG)
    app = create_app(loaded)
    started = app.state.export_workers = Started(loaded, 2)
    with serve_in_thread(app, lifespan="on") as url:
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=DEMO_HEADERS) as http:
            async with http.stream("GET", "/export/customers.csv") as response:
                assert response.status_code == 200
                async for _ in response.aiter_bytes():
                    break  # the first bytes arrived: hang up
            (workers,) = started.made
            await _all_gone(workers)
    assert workers.usage == [], "stopped, not finished"
    assert not workers.finished


def _with_workers(tmp_path: Path, count: int) -> Path:
    config = tmp_path / f"workers-{count}.yaml"
    config.write_text(DEMO_CONFIG.read_text() + f"\nexports: {{workers: {count}}}\n")
    return config


async def test_exports_workers_chooses_the_path(demo_env: None, tmp_path: Path) -> None:
    # 0 (the default) builds every chunk in the exporting process
    assert load_settings(DEMO_CONFIG).settings.exports.workers == 0
    async for client in serve_in_process(load_settings(DEMO_CONFIG)):
        assert client.app.state.export_workers is None  # type: ignore[attr-defined]
        response = await client.get("/export/customers.csv?columns=id")
        assert response.status_code == 200 and response.text.count("\n") > 1500
    loaded = load_settings(_with_workers(tmp_path, 2))
    async for client in serve_in_process(loaded):
        wanted = columns(loaded.settings.model, "customers", ["id"])
        made = client.app.state.export_workers("arrow", wanted)  # type: ignore[attr-defined]
        assert isinstance(made, ExportWorkers) and made.count == 2
        # told the format, they may encode its chunks; Parquet's they may not
        assert made.encoding == ("arrow", tuple(wanted))
        made = client.app.state.export_workers("parquet", wanted)  # type: ignore[attr-defined]
        assert made.encoding is None


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (by parent links in /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    grew = True
    while grew:
        more = {p for p, up in parents.items() if (up == pid or up in found) and p not in found}
        found |= more
        grew = bool(more)
    return found


def _slow(app: Any, seconds: float) -> Any:
    """The feedback service, taking ``seconds`` over each lookup by id (pass 2's)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and b"ids=" in scope["query_string"]:
            await asyncio.sleep(seconds)
        await app(scope, receive, send)

    return wrapped


@pytest.fixture()
def slow_feedback_url(demo_dir: Path) -> Iterator[str]:
    with serve_in_thread(_slow(create_feedback_app(demo_dir, DEMO_TOKEN), 1.0)) as url:
        yield f"{url}/api"


def test_ctrl_c_stops_a_cli_export_and_its_workers(
    demo_dir: Path, slow_feedback_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "customers.csv"
    env = {
        **os.environ,
        "CUSTVIEW_DEMO_DIR": str(demo_dir),
        "CUSTVIEW_FEEDBACK_URL": slow_feedback_url,
    }
    env["CUSTVIEW_AUDIT_LOG"] = str(tmp_path / "audit.jsonl")
    config = _with_workers(tmp_path, 2)
    cli = subprocess.Popen(
        [sys.executable, "-m", "gateway", "export", "-c", str(config), "-f", "csv", "-o", str(out)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        # the workers are up (the fork server and its two children) and rows are out
        while len(_descendants(cli.pid)) < 4 or not out.exists() or out.stat().st_size == 0:
            assert cli.poll() is None, cli.stderr.read() if cli.stderr else ""
            assert time.monotonic() < deadline, "the export never got going"
            time.sleep(0.02)
        below = _descendants(cli.pid)
        cli.send_signal(signal.SIGINT)
        cli.wait(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
    deadline = time.monotonic() + 20
    while not all(_gone(pid) for pid in below):
        assert time.monotonic() < deadline, "a worker outlived its export"
        time.sleep(0.05)
    assert cli.returncode != 0


def test_the_cli_reports_a_failed_source_with_workers_as_in_process(
    demo_dir: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CUSTVIEW_DEMO_DIR": str(demo_dir),
        "CUSTVIEW_FEEDBACK_URL": "http://127.0.0.1:1/api",  # down from the start
        "CUSTVIEW_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
    }
    results = []
    for count in (0, 2):
        out = tmp_path / f"customers-{count}.csv"
        config = _with_workers(tmp_path, count)
        args = ["export", "-c", str(config), "-f", "csv", "-o", str(out)]
        done = subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip
        warnings = [line for line in done.stderr.splitlines() if "warning:" in line]
        results.append((done.returncode, warnings, out.read_bytes()))
    assert results[1] == results[0]
    code, warnings, body = results[0]
    assert code == 1 and any("source 'feedback' failed" in w for w in warnings)
    assert body.count(b"\n") > 1000, "the other sources still export"


async def test_workers_follow_a_resolve_run_and_an_erasure_as_in_process(
    demo_env: None, tmp_path: Path, small_chunks: None
) -> None:
    # the registry is the exporter's (pass 1 and the erased customers); the workers
    # read with the probabilistic model's extra columns all the same
    from resolvers.records import RecordRef
    from resolvers.resolve import resolve
    from tests.e2e.test_steward import steward_config

    loaded = steward_config(tmp_path, probabilistic=True)
    federation = loaded.create_federation()
    await federation.open()
    try:
        assert (await resolve(federation)).links > 50
        registry = federation.registry
        assert registry is not None
        erased = next(ref for ref in registry.stored_links() for ref in ref)
        await registry.erase("steward", RecordRef.parse(erased).customer_id(), {erased})
        await registry.refresh(force=True)
        wanted = columns(loaded.settings.model, "customers")
        alone = [c async for c in rows(federation, "customers", wanted)]
        farmed = [
            c
            async for c in rows(federation, "customers", wanted, builders=ExportWorkers(loaded, 2))
        ]
    finally:
        await federation.aclose()
    assert farmed == alone and len(alone) > 5
    refs = [r[-1] for chunk in farmed for r in chunk]
    assert not any(erased in r.split(";") for r in refs), "the erased customer is left out"


# -- the event loop's shared resources -----------------------------------------------


@pytest.fixture()
def slower_feedback_url(
    demo_dir: Path, demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    with serve_in_thread(_slow(create_feedback_app(demo_dir, DEMO_TOKEN), 2.0)) as url:
        monkeypatch.setenv("CUSTVIEW_FEEDBACK_URL", f"{url}/api")
        yield


async def _first_chunks(loaded: LoadedSettings, count: int) -> int:
    federation = Federation(loaded.settings.model, loaded.create_connectors())
    wanted = columns(loaded.settings.model, "customers", ["id"])
    got = 0
    try:
        async for _ in rows(federation, "customers", wanted, builders=ExportWorkers(loaded, 1)):
            got += 1
            if got == count:
                break
    finally:
        await federation.aclose()
    return got


async def test_exports_waiting_for_slow_chunks_leave_the_default_executor_free(
    slower_feedback_url: None, small_chunks: None
) -> None:
    # the audit log's fsyncs, SIGHUP reloads and DNS look-ups use the default
    # executor: exports waiting seconds for their workers' chunks (2 s each here)
    # must not hold it. Told by what runs in the executor's threads, not by how
    # soon the loop gets a probe's answer back (a loaded machine delays that).
    loaded = load_settings(DEMO_CONFIG)
    loop = asyncio.get_running_loop()
    pool = _TimedPool(max_workers=2)
    loop.set_default_executor(pool)
    exports = [asyncio.ensure_future(_first_chunks(loaded, 2)) for _ in range(2)]
    probes = 0
    while not all(e.done() for e in exports):
        await loop.run_in_executor(None, _probe)
        probes += 1
        await asyncio.sleep(0.05)
    assert [e.result() for e in exports] == [2, 2]
    assert probes > 40, "each chunk takes seconds"
    held = [(name, ran) for name, _, ran in pool.jobs if name != "_probe" and ran >= 1.0]
    assert not held, f"the default executor was held: {held}"
    queued = max(waited for name, waited, _ in pool.jobs if name == "_probe")
    assert queued < 1.0, f"a job waited {queued:.2f} s for a thread of the default executor"


def _probe() -> None:
    """A job of no work: how long it waits for a thread tells whether one is free."""


class _TimedPool(ThreadPoolExecutor):
    """The default executor, noting each job's (name, wait for a thread, run time)."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers)
        self.jobs: list[tuple[str, float, float]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        submitted = time.monotonic()

        def timed() -> Any:
            began = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                name = getattr(fn, "__qualname__", repr(fn))
                self.jobs.append((name, began - submitted, time.monotonic() - began))

        return super().submit(timed)


# A library caller's script with no `if __name__ == "__main__"` guard, in a fresh
# interpreter (no fork server yet): it notes each run, ticks every 5 ms while its
# first export's workers start, then exports every customer with two workers.
_UNGUARDED = """
import asyncio, json, os, sys, time

with open(sys.argv[1], "a") as runs:
    runs.write(f"{os.getpid()}\\n")

from gateway.export_workers import ExportWorkers
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.export import columns, rows
from resolvers.view import Federation


async def ticking(gaps):
    last = time.monotonic()
    while True:
        await asyncio.sleep(0.005)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


async def export():
    loaded = load_settings(DEMO_CONFIG)
    gaps = []
    ticker = asyncio.ensure_future(ticking(gaps))
    await asyncio.sleep(0.05)
    workers = ExportWorkers(loaded, 2)
    workers.start()
    await workers._started()
    await asyncio.sleep(0.05)
    ticker.cancel()
    await workers.aclose()
    federation = Federation(loaded.settings.model, loaded.create_connectors())
    wanted = columns(loaded.settings.model, "customers", ["id"])
    got = 0
    try:
        async for chunk in rows(
            federation, "customers", wanted, builders=ExportWorkers(loaded, 2)
        ):
            got += len(chunk)
    finally:
        await federation.aclose()
    print(json.dumps({"rows": got, "gap": max(gaps)}))


asyncio.run(export())
"""


def test_workers_start_off_the_loop_and_leave_the_callers_script_alone(
    demo_dir: Path, feedback_url: str, tmp_path: Path
) -> None:
    script, runs = tmp_path / "unguarded.py", tmp_path / "runs.txt"
    script.write_text(_UNGUARDED)
    env = {
        **os.environ,
        "CUSTVIEW_DEMO_DIR": str(demo_dir),
        "CUSTVIEW_FEEDBACK_URL": feedback_url,
        "CUSTVIEW_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
    }
    done = subprocess.run(
        [sys.executable, str(script), str(runs)],
        capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(runs.read_text().split()) == 1, "a worker ran the caller's script again"
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["rows"] > 1500
    # starting the fork server (~1 s of imports) must not hold up the event loop
    assert found["gap"] < 0.25, f"the event loop stood still {found['gap']:.2f} s"


def _small_buffers(self: Any, duplex: bool = True) -> tuple[Any, Any]:
    """multiprocessing's pipe, each end's socket buffer ~8 KiB: a chunk's keys or
    rows no longer fit (as a large chunk's do not in the default ~200 KiB)."""
    import multiprocessing.connection
    import socket

    ends = multiprocessing.connection.Pipe(duplex)
    for end in ends:
        with socket.fromfd(end.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return ends


async def test_a_send_waiting_for_a_worker_does_not_stop_its_chunk_coming_back(
    demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one worker, chunks' keys and rows larger than the pipe's buffer: the second
    # chunk's keys wait for the worker, which first sends the first chunk back
    import multiprocessing.context
    import threading

    monkeypatch.setattr(export_rows, "CHUNK", 650)
    monkeypatch.setattr(multiprocessing.context.ForkServerContext, "Pipe", _small_buffers)
    loaded = load_settings(DEMO_CONFIG)
    workers = ExportWorkers(loaded, 1)
    # a deadlock holds the event loop in a send: only another thread can end it
    watchdog = threading.Timer(30, lambda: [p.kill() for p in workers.processes])
    watchdog.start()
    federation = Federation(loaded.settings.model, loaded.create_connectors())
    wanted = columns(loaded.settings.model, "source_records")
    got = []
    try:
        async for chunk in rows(federation, "source_records", wanted, builders=workers):
            got.append(len(chunk))
    finally:
        watchdog.cancel()
        await federation.aclose()
    assert len(got) == 4 and sum(got) > 3000
    assert len(workers.usage) == 1, "the worker finished normally"


def _stubborn(*args: Any) -> None:
    """A worker that ignores SIGTERM (as one stuck in a C call may not end at once)."""
    from gateway.export_workers import serve

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(*args)


def _ignores_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


async def test_stopping_a_cancelled_exports_workers_leaves_the_loop_running(
    demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a worker that does not end on SIGTERM is killed after 5 s; meanwhile the
    # event loop serves everyone else
    import gateway.export_workers

    monkeypatch.setattr(gateway.export_workers, "serve", _stubborn)
    workers = ExportWorkers(load_settings(DEMO_CONFIG), 1)
    workers.start()
    await workers._started()
    (process,) = workers.processes
    deadline = time.monotonic() + 30
    while not _ignores_sigterm(process.pid or 0):
        assert time.monotonic() < deadline and process.is_alive()
        await asyncio.sleep(0.02)
    async with loop_gaps(0.01) as gaps:
        began = time.monotonic()
        await workers.aclose()  # not finished: as when the export was cancelled
        took = time.monotonic() - began
        await asyncio.sleep(0.05)
    assert process.exitcode == -signal.SIGKILL, "killed after its 5 s"
    assert took > 4
    assert max(gaps) < 0.25, f"the event loop stood still {max(gaps):.2f} s"


async def test_an_aclose_cancelled_midway_still_reaps_the_workers_and_ends_its_threads(
    demo_env: None,
) -> None:
    workers, before = await _started_workers(2)
    workers.finished = True  # as after the last chunk: they are asked to stop
    await _aclose_cancelled_once_under_way(workers, before)


async def test_an_unfinished_exports_aclose_cancelled_while_a_recv_holds_its_thread_still_closes(
    demo_env: None,
) -> None:
    # a cancelled chunk's recv still runs in the pipes thread when aclose queues
    # its close behind it; a cancel of aclose meanwhile (a timeout, a cancel
    # delivered again) must not make the thread skip the close
    workers, before = await _started_workers(1)
    receiving = asyncio.ensure_future(workers._in_thread(workers.pipes[0].recv))
    await asyncio.sleep(0.05)  # the worker sends nothing: the recv waits in the thread
    receiving.cancel()  # as the export's chunk is, when the download is cancelled
    # aclose terminates the worker, then waits for its close, queued behind the recv
    await _aclose_cancelled_once_under_way(workers, before)


async def _started_workers(count: int) -> tuple[ExportWorkers, set[Any]]:
    """``count`` started workers, and the threads there were before them."""
    import threading

    before = set(threading.enumerate())
    workers = ExportWorkers(load_settings(DEMO_CONFIG), count)
    workers.start()
    await workers._started()
    return workers, before


async def _aclose_cancelled_once_under_way(workers: ExportWorkers, before: set[Any]) -> None:
    """Cancels ``workers.aclose()`` once it is under way; then its workers are reaped,
    its threads end (none left beyond ``before``) and its pipes are closed."""
    import threading

    closing = asyncio.ensure_future(workers.aclose())
    await asyncio.sleep(0)  # under way
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    deadline = time.monotonic() + 20
    while any(p.is_alive() for p in workers.processes) or set(threading.enumerate()) - before:
        assert time.monotonic() < deadline, set(threading.enumerate()) - before
        await asyncio.sleep(0.05)
    assert all(pipe.closed for pipe in workers.pipes), "the close job ran"


def _by_key_name(hash_key: Any) -> Any:
    """A key hash putting every email in bucket 0 and every other key (phones) in
    bucket 1: with two workers, one joins the emails, the other the phones."""

    def hashed(key: Any) -> int:
        value: int = hash_key(key)
        return value - value % walk.BUCKETS + (0 if key[0] == "email" else 1)

    return hashed


def _keys_split(*args: Any) -> None:
    from gateway.export_workers import serve

    walk.KEY_HASH = _by_key_name(walk.KEY_HASH)
    serve(*args)


async def test_a_customer_joined_by_keys_that_two_workers_join_is_one_customer(
    demo_env: None, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Buckets partition keys, not customers: a customer joined by an email (one
    worker's bucket) and a phone (the other's) comes out whole, as in process."""
    import gateway.export_workers

    loaded = load_settings(DEMO_CONFIG)
    alone, _ = await _run(loaded, 0, None)
    monkeypatch.setattr(gateway.export_workers, "serve", _keys_split)
    farmed, error = await _run(loaded, 2, None)
    assert error is None and farmed == alone and len(alone) > 5


def _join_waits(marker: str, *args: Any) -> None:
    """A worker that notes (``marker``) when it starts joining, then joins for ever."""
    from gateway.export_workers import serve
    from resolvers.export_chunks import ChunkMaker

    async def waiting(self: Any, task: Any) -> Any:
        open(marker, "w").close()  # noqa: ASYNC230 (a worker: no loop to hold up)
        await asyncio.Event().wait()

    ChunkMaker.join = waiting  # type: ignore[method-assign]
    serve(*args)


async def test_an_export_cancelled_while_its_workers_join_stops_them(
    demo_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.export_workers

    marker = tmp_path / "joining"
    monkeypatch.setattr(gateway.export_workers, "serve", partial(_join_waits, str(marker)))
    loaded = load_settings(DEMO_CONFIG)
    federation = Federation(loaded.settings.model, loaded.create_connectors())
    workers = ExportWorkers(loaded, 2)
    wanted = columns(loaded.settings.model, "customers")

    async def export() -> None:
        async for _ in rows(federation, "customers", wanted, builders=workers):
            raise AssertionError("a chunk came before the join was done")

    task = asyncio.ensure_future(export())
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline and not task.done(), "no worker joins"
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await federation.aclose()
    await _all_gone(workers)
    assert workers.usage == [] and not workers.finished
