"""An export worker's log lines follow the exporting process's policy: its log
format, no secret (:func:`gateway.export_workers.serve`)."""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import DEMO_CONFIG, load_settings

SECRET = "worker-tenant-5ecret"


def _fresh_worker(pipe: Connection, path: Path, settings: Any, connectors: Any) -> None:
    """serve() as a worker forked from the fork server runs it: nothing hidden yet,
    no log handler; a connector warns while the worker starts."""
    import gateway.unexpected as unexpected
    import resolvers.export_chunks as chunks
    from gateway.export_workers import serve

    unexpected._hidden.clear()
    unexpected._pattern = None
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    made = chunks.ChunkMaker

    def warning_maker(*args: Any) -> Any:
        logging.getLogger("connectors.cache").warning("cache unreachable; header %s", SECRET)
        return made(*args)

    chunks.ChunkMaker = warning_maker  # type: ignore[misc,assignment]
    serve(pipe, path, settings, connectors)


def test_a_workers_log_lines_are_redacted_and_formatted_as_the_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_TENANT", SECRET)
    text = DEMO_CONFIG.read_text().replace(
        "      health_path: /health\n",
        '      headers: {X-Tenant: "${WORKER_TENANT}"}\n      health_path: /health\n',
        1,
    )
    config = tmp_path / "custview.yaml"
    config.write_text(text + "\nlogging: {format: json}\n")
    loaded = load_settings(config)
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_fresh_worker, args=(theirs, loaded.path, loaded.settings, loaded.connectors)
    )
    process.start()
    theirs.close()
    try:
        ours.send(None)  # stop
        assert ours.poll(30)
        assert ours.recv()[0] == "usage"
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
    err = capfd.readouterr().err
    assert "cache unreachable" in err
    assert SECRET not in err
    assert '"message": "cache unreachable; header ***"' in err
    assert '"logger": "connectors.cache"' in err
