"""An HTTP port already taken stops `custview serve` and `custview demo` with one
clear line before anything starts: no source opened, no SQL endpoint listening
(uvicorn binds only after the app's start-up, then logs its error)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.settings import DEMO_CONFIG
from tests.connectors.rest_server import free_port
from tests.support.processes import run_custview


@contextmanager
def _taken() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert "application startup" not in stderr.lower(), "nothing starts: " + stderr
    (line,) = [line for line in stderr.splitlines() if "error" in line.lower()]
    return line


def test_serve_on_an_http_port_in_use_exits_with_one_line_before_starting(
    demo_dir: Path, tmp_path: Path
) -> None:
    sql = free_port()
    config = tmp_path / "sql.yaml"
    config.write_text(DEMO_CONFIG.read_text() + f"\nsql: {{enabled: true, port: {sql}}}\n")
    with _taken() as port:
        result = run_custview(
            "serve", "--config", str(config), "--port", str(port),
            tmp_path=tmp_path, CUSTVIEW_DEMO_DIR=str(demo_dir),
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    line = _one_error_line(result.stderr)
    assert line == (
        f"error: the gateway cannot listen on 127.0.0.1:{port}: address already in use "
        "(another custview or another program listens there); stop what uses that port "
        f"or choose another with --port or `server.port` in {config}"
    )
    with socket.socket() as probe:  # the SQL port was never held: it is free again
        probe.bind(("127.0.0.1", sql))


def test_demo_on_an_http_or_feedback_port_in_use_exits_with_one_line(
    demo_dir: Path, tmp_path: Path
) -> None:
    services = (("--port", "the gateway"), ("--feedback-port", "the feedback service"))
    for taken_flag, what in services:
        ports = {"--port": free_port(), "--feedback-port": free_port()}
        with _taken() as port:
            ports[taken_flag] = port
            result = run_custview(
                "demo", "--data-dir", str(demo_dir),
                *(str(a) for flag, p in ports.items() for a in (flag, p)),
                tmp_path=tmp_path,
            )  # fmt: skip
        assert result.returncode == 1, result.stderr
        line = _one_error_line(result.stderr)
        assert f"error: {what} cannot listen on 127.0.0.1:{port}: address already in use" in line
        assert line.endswith(f"choose another with {taken_flag}"), line
        assert "psql" not in result.stderr and "GraphiQL" not in result.stderr, "no banner"
