"""Connector plugins are found through real entry points, listed, allowed or refused.

The example package ``docs/examples/custview-csv-connector`` is installed by
``make plugin-example`` (a step of ``make test``); other plugins here are
real ``*.dist-info`` folders written to a temporary ``sys.path`` entry.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

import connectors
from connectors import Connector, PluginError
from connectors.conformance import DATASET
from connectors.registry import installed
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "custview-csv-connector"


@pytest.fixture(scope="module")
def csv_installed() -> None:
    if importlib.util.find_spec("custview_csv") is None:
        message = f"the example plugin is not installed; run: make plugin-example ({EXAMPLE})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def run_cli(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def fake_distribution(root: Path, name: str, entry_points: dict[str, str], module: str) -> Path:
    """A real installed distribution: ``<name>-1.0.dist-info`` plus its module."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{kind} = {target}\n" for kind, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[custview.connectors]\n{lines}")
    module_name = next(iter(entry_points.values())).split(":")[0]
    (root / f"{module_name}.py").write_text(module)
    return root


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = fake_distribution(
        tmp_path / "site",
        "custview-broken-plugin",
        {"broken": "custview_broken_plugin:BrokenConnector"},
        "raise ImportError('No module named \"somesdk\"')\n",
    )
    monkeypatch.syspath_prepend(str(root))
    return root


# --- the example package, discovered and used -----------------------------------------


def test_csv_kind_loads_through_the_entry_point(csv_installed: None) -> None:
    from custview_csv import CSVConnector

    assert "csv" in connectors.available()
    assert connectors.load("csv") is CSVConnector
    assert issubclass(CSVConnector, Connector)


def test_custview_connectors_lists_the_csv_plugin(csv_installed: None) -> None:
    result = run_cli("connectors", "--json")
    assert result.returncode == 0, result.stderr
    listed = {entry["kind"]: entry for entry in json.loads(result.stdout)}
    assert listed["sql"]["package"] == "custview"
    csv = listed["csv"]
    assert csv["package"] == "custview-csv-connector"
    assert csv["version"] == "0.1.0"
    assert csv["module"] == "custview_csv:CSVConnector"
    assert csv["error"] is None
    assert csv["capabilities"]["keyset"] is True
    assert "startswith" in csv["capabilities"]["filter_operators"]

    table = run_cli("connectors")
    assert table.returncode == 0, table.stderr
    assert "custview-csv-connector" in table.stdout


CONFIG = dedent(
    """\
    version: 1
    {plugins}
    sources:
      partners:
        connector: csv
        options:
          directory: "{folder}"
          timeout: 5
    model:
      customer:
        fields:
          name: {{type: string}}
          email: {{type: string, normalize: email}}
          country: {{type: string}}
        members:
          - source: partners
            table: people
            fields: {{name: name, email: email, country: country}}
            identity: {{email: [email]}}
      identity:
        keys:
          email: {{normalize: email}}
    """
)


def write_config(tmp_path: Path, allow: list[str] | None = None) -> Path:
    """A settings file with one ``csv`` source holding the conformance dataset."""
    folder = tmp_path / "partner-export"
    folder.mkdir()
    with (folder / "people.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(DATASET.columns))
        writer.writeheader()
        writer.writerows(DATASET.as_text_rows())
    plugins = f"plugins: {{allow: [{', '.join(allow)}]}}" if allow is not None else ""
    config = tmp_path / "custview.yaml"
    config.write_text(CONFIG.format(plugins=plugins, folder=folder))
    return config


def test_a_settings_file_uses_the_csv_connector(csv_installed: None, tmp_path: Path) -> None:
    from custview_csv import CSVConnector, CSVOptions

    config = write_config(tmp_path)
    loaded = load_settings(config)
    cls, options = loaded.connectors["partners"]
    assert cls is CSVConnector and isinstance(options, CSVOptions)

    result = run_cli("check", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "partners" in result.stdout


def test_custview_check_with_the_csv_source_allowed(csv_installed: None, tmp_path: Path) -> None:
    config = write_config(tmp_path, allow=["sql", "csv"])
    assert load_settings(config).settings.plugins.allow == ["sql", "csv"]
    result = run_cli("check", "--config", str(config), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)[0]["tables"] == {"people": True}


# --- the allow-list ----------------------------------------------------------------------


def test_a_connector_outside_the_allow_list_is_a_located_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, allow=["sql"])
    with pytest.raises(connectors.ConfigError) as caught:
        load_settings(config)
    error = caught.value
    assert error.path == "sources.partners.connector"
    assert "plugins.allow" in error.reason and "sql" in error.reason and "'csv'" in error.reason
    assert error.line is not None

    result = run_cli("check", "--config", str(config))
    assert result.returncode == 2
    assert "sources.partners.connector" in result.stderr and "Traceback" not in result.stderr


def test_an_empty_allow_list_allows_nothing(tmp_path: Path) -> None:
    with pytest.raises(connectors.ConfigError, match=r"plugins.allow \(empty\)"):
        load_settings(write_config(tmp_path, allow=[]))


def test_the_registry_refuses_a_kind_outside_allowed_before_importing_it(
    broken_plugin: Path,
) -> None:
    with pytest.raises(PluginError, match=r"connector 'broken' is not allowed \(allowed: sql\)"):
        connectors.registry.load("broken", allowed=["sql"])
    assert "custview_broken_plugin" not in sys.modules
    assert connectors.registry.load("sql", allowed=["sql"]).kind == "sql"


# --- plugins that do not load ------------------------------------------------------------


def test_a_plugin_that_fails_to_import_names_its_package(broken_plugin: Path) -> None:
    assert "broken" in connectors.available()
    with pytest.raises(PluginError) as caught:
        connectors.load("broken")
    message = caught.value.message
    assert "custview-broken-plugin" in message
    assert "ImportError" in message and "somesdk" in message


def test_a_broken_plugin_is_listed_with_its_error(broken_plugin: Path) -> None:
    listed = {p.kind: p for p in installed()}
    assert listed["broken"].package == "custview-broken-plugin"
    assert listed["broken"].error is not None and "somesdk" in listed["broken"].error
    assert listed["sql"].error is None

    result = run_cli("connectors", "--json", pythonpath=broken_plugin)
    assert result.returncode == 1
    entry = next(e for e in json.loads(result.stdout) if e["kind"] == "broken")
    assert entry["package"] == "custview-broken-plugin" and "somesdk" in entry["error"]


def test_an_entry_point_that_is_not_a_connector_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fake_distribution(
        tmp_path / "site",
        "custview-odd-plugin",
        {"odd": "custview_odd_plugin:NotAConnector"},
        "class NotAConnector:\n    pass\n",
    )
    monkeypatch.syspath_prepend(str(root))
    with pytest.raises(PluginError, match="not a Connector subclass"):
        connectors.load("odd")


def test_a_registered_class_is_listed_without_a_package() -> None:
    from tests.connectors.test_conformance_helpers import MemoryConnector

    connectors.register("memory", MemoryConnector)
    try:
        listed = {p.kind: p for p in installed()}
        memory = listed["memory"]
        assert memory.package is None and memory.version is None
        assert memory.module.endswith(":MemoryConnector")
        assert memory.capabilities is None
        assert memory.description.startswith("Serves DATASET")
    finally:
        connectors.unregister("memory")
