"""What the config tells an error text to hide: the secrets each source's options
and the other settings hold, as the config loader reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

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
