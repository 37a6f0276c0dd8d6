"""What the config tells an error text to hide: the secrets each source's options
and the other settings hold, as the config loader reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, SecretBytes

from connectors.redaction import describe_error, secret_values
from gateway.settings import DEMO_CONFIG, load_settings


def _config(tmp_path: Path, headers: str) -> Path:
    text = DEMO_CONFIG.read_text()
    text = text.replace(
        "      health_path: /health\n", f"      headers: {headers}\n      health_path: /health\n", 1
    )
    config = tmp_path / "custview.yaml"
    config.write_text(text)
    return config


def test_a_header_from_the_environment_is_a_secret_whatever_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDBACK_TENANT", "tenant-7781")
    config = _config(
        tmp_path,
        '{X-Tenant: "${FEEDBACK_TENANT}", X-Region: "eu-west-1", Accept: application/json}',
    )
    _, options = load_settings(config).connectors["feedback"]
    secrets = options.secrets()
    assert "tenant-7781" in secrets
    assert "eu-west-1" not in secrets and "application/json" not in secrets


def test_the_export_workers_hide_the_passwords_of_url_settings_and_secret_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_PASSWORD", "reg-p%40ss%2F1")  # reg-p@ss/1
    config = _config(tmp_path, "{Accept: application/json}")
    settings = (
        "registry:\n"
        '  url: "postgresql+asyncpg://reg:${REGISTRY_PASSWORD}@127.0.0.1:1/reg"\n'
        "audit:\n"
        '  url: "postgresql://audit@127.0.0.1:1/audit?sslmode=disable&password=audit-pw-9"\n'
        "cache:\n"
        '  url: "redis://:redis-pw-7@127.0.0.1:1/0"\n'
    )
    text = config.read_text().replace("sources:\n", settings + "sources:\n", 1)
    config.write_text(text)
    hidden = load_settings(config).secrets()
    message = (
        "connect as reg with reg-p@ss/1 (reg-p%40ss%2F1) failed; password=audit-pw-9, "
        "AUTH redis-pw-7; sslmode=disable"
    )
    assert describe_error(RuntimeError(message), hidden) == (
        "RuntimeError: connect as reg with *** (***) failed; password=***, AUTH ***; "
        "sslmode=disable"
    )
    assert "disable" not in hidden and "application/json" not in hidden


def test_secret_bytes_are_secrets_too() -> None:
    class Keys(BaseModel):
        salt: SecretBytes
        plain: str = "nothing to hide"

    assert secret_values(Keys(salt=SecretBytes(b"salty-bytes"))) == ["salty-bytes"]
