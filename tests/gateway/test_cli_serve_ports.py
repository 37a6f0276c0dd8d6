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
