"""What the config tells an error text to hide: the secrets each source's options
and the other settings hold, as the config loader reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, SecretBytes

import connectors
from connectors import ConnectorOptions
from connectors.redaction import describe_error, secret_values
from gateway.settings import DEMO_CONFIG, load_settings
from tests.connectors.test_conformance_helpers import MemoryConnector
from tests.support.logs import logged as _logged


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
        '{X-Tenant: "${FEEDBACK_TENANT}", User-Agent: "eu-west-1", Accept: application/json}',
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


def test_a_rest_resources_credential_and_environment_params_are_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDBACK_TENANT", "tenant-7781")
    config = _config(tmp_path, "{Accept: application/json}")
    params = (
        "          path: /respondents\n"
        '          params: {tenant: "${FEEDBACK_TENANT}", api_key: literal-key-42, lang: en-GB}\n'
    )
    text = config.read_text().replace("          path: /respondents\n", params, 1)
    config.write_text(text)
    loaded = load_settings(config)
    _, options = loaded.connectors["feedback"]
    secrets = options.secrets()
    assert "tenant-7781" in secrets and "literal-key-42" in secrets
    assert "en-GB" not in secrets
    message = "GET /respondents?tenant=tenant-7781&api_key=literal-key-42&lang=en-GB failed"
    assert describe_error(RuntimeError(message), loaded.secrets()) == (
        "RuntimeError: GET /respondents?tenant=***&api_key=***&lang=en-GB failed"
    )


class DsnOptions(ConnectorOptions):
    """A plugin's options holding a libpq or ODBC connection string."""

    dsn: str


class DsnConnector(MemoryConnector):
    kind = "dsn-test"
    options_model = DsnOptions


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("host=db user=reader password=${DSN_PASSWORD} dbname=crm", "pw-from-env-1"),
        ("host=db password='${DSN_PASSWORD} x' sslmode=require", "'pw-from-env-1 x'"),
        ("Server=db;Uid=reader;Pwd={${DSN_PASSWORD};x};Database=crm", "{pw-from-env-1;x}"),
    ],
)
def test_the_password_of_a_key_value_connection_string_is_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsn: str, shown: str
) -> None:
    monkeypatch.setenv("DSN_PASSWORD", "pw-from-env-1")
    connectors.register("dsn-test", DsnConnector)
    try:
        config = _config(tmp_path, "{Accept: application/json}")
        source = f'sources:\n  warehouse:\n    connector: dsn-test\n    options: {{dsn: "{dsn}"}}\n'
        config.write_text(config.read_text().replace("sources:\n", source, 1))
        loaded = load_settings(config)
    finally:
        connectors.unregister("dsn-test")
    written = dsn.replace("${DSN_PASSWORD}", "pw-from-env-1")
    message = f"could not connect with {written}: password {shown} refused"
    described = describe_error(RuntimeError(message), loaded.secrets())
    assert "pw-from-env-1" not in described
    assert "host=db" in described or "Server=db" in described, "the rest stays"


def test_an_unexpected_error_while_loading_hides_the_values_it_may_quote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.rest.options import RESTOptions
    from gateway.unexpected import report

    def quoting(cls: type, obj: object, *args: object, **kwargs: object) -> None:
        raise TypeError(f"cannot take options {obj!r}")  # a plugin's bug

    monkeypatch.setattr(RESTOptions, "model_validate", classmethod(quoting))
    monkeypatch.setenv("FEEDBACK_TENANT", "tenant-key-5ecret")
    config = _config(tmp_path, '{X-Tenant: "${FEEDBACK_TENANT}"}')
    text = config.read_text()
    text = text.replace(
        "      timeout: 5\n      max_concurrency",
        "      password: lit-pw-4471\n      timeout: 5\n      max_concurrency",
        1,
    )
    config.write_text(text)
    with pytest.raises(TypeError) as caught:
        load_settings(config)
    assert "tenant-key-5ecret" in str(caught.value), "the error quotes them"
    shown = report(caught.value) + _logged("not reloaded: %s", caught.value)
    for secret in ("tenant-key-5ecret", "demo-feedback-token", "lit-pw-4471"):
        assert secret not in shown
    assert "'X-Tenant': '***'" in shown


def test_a_failed_load_hides_its_values_where_its_error_shows_not_in_every_later_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load that fails unexpectedly hides every value it took from the environment
    wherever its error is shown; a plain value (a team name) stays readable in the
    process's other log lines, and so does the file's plain text."""
    from connectors.rest.options import RESTOptions
    from gateway.unexpected import report

    def quoting(cls: type, obj: object, *args: object, **kwargs: object) -> None:
        raise TypeError(f"cannot take options {obj!r}")  # a plugin's bug

    monkeypatch.setattr(RESTOptions, "model_validate", classmethod(quoting))
    monkeypatch.setenv("FEEDBACK_TENANT", "tenant-key-8ecret")
    monkeypatch.setenv("FEEDBACK_TEAM", "team-plain-9031")
    config = _config(tmp_path, '{X-Tenant: "${FEEDBACK_TENANT}", X-Team: "${FEEDBACK_TEAM}"}')
    with pytest.raises(TypeError) as caught:
        load_settings(config)
    error = caught.value
    assert "tenant-key-8ecret" in str(error) and "team-plain-9031" in str(error)
    shown = [
        report(error),
        _logged("configuration not reloaded: %s", error),
        _logged("configuration not reloaded", exc_info=error),
    ]
    try:
        raise RuntimeError("while reporting it") from error
    except RuntimeError as later:
        shown.append(_logged("failed", exc_info=later))  # its cause is shown: hidden there too
    for text in shown:
        assert "tenant-key-8ecret" not in text and "team-plain-9031" not in text, text
    assert "on call: team-plain-9031" in _logged("on call: %s", "team-plain-9031")


def test_a_literal_value_under_a_custom_header_is_a_secret_whatever_its_name(
    tmp_path: Path,
) -> None:
    """Any header but the plain ones (content negotiation, the client's name, an API
    version) may carry a key custview cannot tell by its name (``X-Tenant``,
    ``X-Partner``), so its value is kept out of errors and log lines."""
    config = _config(
        tmp_path,
        "{X-Tenant: tnt-literal-5521, X-Token: tok-literal-5522, X-Partner: prt-literal-5523,"
        " Accept: application/json, User-Agent: custview-probe/1.0,"
        " Stripe-Version: '2024-06-20'}",
    )
    loaded = load_settings(config)
    secrets = loaded.connectors["feedback"][1].secrets()
    for literal in ("tnt-literal-5521", "tok-literal-5522", "prt-literal-5523"):
        assert literal in secrets and literal in loaded.secrets()
    for plain in ("application/json", "custview-probe/1.0", "2024-06-20"):
        assert plain not in secrets
    message = "GET /surveys with X-Partner prt-literal-5523 failed (application/json)"
    assert describe_error(RuntimeError(message), loaded.secrets()) == (
        "RuntimeError: GET /surveys with X-Partner *** failed (application/json)"
    )


def test_a_failed_load_hides_literal_header_values_where_its_error_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.rest.options import RESTOptions
    from gateway.unexpected import report

    def quoting(cls: type, obj: object, *args: object, **kwargs: object) -> None:
        raise TypeError(f"cannot take options {obj!r}")  # a plugin's bug

    monkeypatch.setattr(RESTOptions, "model_validate", classmethod(quoting))
    config = _config(
        tmp_path, "{X-Api-Key: api-literal-6631, X-Tenant: tnt-literal-6632, Accept: text/csv}"
    )
    with pytest.raises(TypeError) as caught:
        load_settings(config)
    shown = report(caught.value) + _logged("not reloaded: %s", caught.value)
    assert "api-literal-6631" not in shown and "tnt-literal-6632" not in shown, shown
    assert "'Accept': 'text/csv'" in shown
