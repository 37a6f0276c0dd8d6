"""`custview serve` refuses an SQL endpoint on the HTTP port only where the two
could listen on the same address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import gateway.serving
from gateway.cli import app as cli_app
from gateway.settings import DEMO_CONFIG


def _serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql_host: str, http_host: str
) -> tuple[Any, list[tuple[str, int]]]:
    config = tmp_path / "sql.yaml"
    config.write_text(
        DEMO_CONFIG.read_text() + f"\nsql: {{enabled: true, host: '{sql_host}', port: 8123}}\n"
    )
    served: list[tuple[str, int]] = []
    monkeypatch.setattr(
        gateway.serving, "serve", lambda loaded, host, port: served.append((host, port))
    )
    args = ["serve", "--config", str(config), "--host", http_host, "--port", "8123"]
    return CliRunner().invoke(cli_app, args), served


@pytest.mark.parametrize(
    ("sql_host", "http_host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.2"),
        ("127.0.0.2", "0.0.0.0"),
        ("::", "127.0.0.1"),
    ],
)
def test_the_same_port_where_the_hosts_could_collide_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql_host: str, http_host: str
) -> None:
    result, served = _serve(tmp_path, monkeypatch, sql_host, http_host)
    assert result.exit_code == 2, result.output
    assert "`sql.port` 8123 is also the HTTP port" in result.output
    assert f"`sql.host` {sql_host}, HTTP host {http_host}" in result.output
    assert served == []


def test_the_same_port_on_different_hosts_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, served = _serve(tmp_path, monkeypatch, "127.0.0.2", "127.0.0.1")
    assert result.exit_code == 0, result.output
    assert served == [("127.0.0.1", 8123)]


def test_the_sql_port_is_held_from_the_check_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two custviews started at the same instant: the other one binds the SQL port
    between this one's check and its endpoint's bind. It must find the port taken
    (and say so), not find it free while this one starts half-way."""
    import errno
    import socket
    from types import SimpleNamespace

    from gateway import listeners
    from gateway.settings import load_settings
    from tests.connectors.rest_server import free_port
    from tests.support.configs import people_config

    port = free_port()
    config = tmp_path / "custview.yaml"
    base = people_config({"crm": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"})
    config.write_text(base + f"\nsql: {{enabled: true, host: 127.0.0.1, port: {port}}}\n")
    loaded = load_settings(config)
    other: list[socket.socket] = []
    refused: list[int | None] = []

    def the_other_binds(settings: object) -> None:  # right after the check
        try:
            sockets = listeners.bind("127.0.0.1", port)
        except OSError as exc:
            refused.append(exc.errno)
            return
        other.extend(sockets)
        for sock in sockets:
            sock.listen()

    ran: list[bool] = []

    def running(sockets: object) -> None:  # the port is still this process's while it serves
        probe = socket.socket()
        try:
            assert probe.connect_ex(("127.0.0.1", port)) == 0
        finally:
            probe.close()
        ran.append(True)

    monkeypatch.setattr(gateway.serving, "configure_logging", the_other_binds)
    monkeypatch.setattr(
        gateway.serving, "_server", lambda *args, **kwargs: SimpleNamespace(run=running)
    )
    try:
        gateway.serving.serve(loaded, "127.0.0.1", free_port())
    finally:
        for sock in other:
            sock.close()
    assert other == [] and refused == [errno.EADDRINUSE]
    assert ran == [True]
    with listeners.bind("127.0.0.1", port)[0] as again:  # released once it stopped
        again.listen()
