"""The docs keep up with the code: every config key, CLI command and route
is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from connectors.sql import SQLOptions
from gateway.app import create_app
from gateway.cli import app as cli_app
from gateway.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = (ROOT / "docs" / "configuration.md").read_text()
README = (ROOT / "README.md").read_text()


def _keys(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    seen = seen or set()
    if model in seen:
        return set()
    seen.add(model)
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        for arg in _nested(field.annotation):
            keys |= _keys(arg, seen)
    return keys


def _nested(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_nested(arg))
    return found


def test_every_config_key_is_in_the_reference() -> None:
    documented = set(re.findall(r"`([a-z_]+)(?:[.`])", REFERENCE))
    documented |= set(re.findall(r"\.([a-z_]+)`", REFERENCE))
    missing = (_keys(Settings) | _keys(SQLOptions)) - documented
    assert missing == set()


def test_every_cli_command_is_in_the_readme() -> None:
    names = {
        c.name or c.callback.__name__.replace("_", "-")  # type: ignore[union-attr]
        for c in cli_app.registered_commands
    }
    assert names == {
        "demo",
        "serve",
        "check",
        "query",
        "demo-data",
        "connectors",
        "export",
        "explain",
        "resolve",
        "audit",
        "sar",
        "erase",
    }
    for name in names:
        assert f"custview {name}" in README
    assert "custview cache clear" in README
    assert "custview policy explain" in README


def test_every_route_is_in_the_readme() -> None:
    app = create_app(load_settings())
    paths = {route.path for route in app.routes} - {"/"}  # type: ignore[attr-defined]
    for path in paths:
        assert f"`{path}`" in README or f" {path}`" in README, path


def test_readme_starts_with_the_two_commands() -> None:
    head = README.split("```")[1]
    assert "make demo" in head and "make test" in head


def test_make_demo_passes_demo_args_to_the_cli() -> None:
    """``make demo DEMO_ARGS=...`` (the README's way to choose ports) reaches ``custview demo``."""
    import subprocess

    out = subprocess.run(
        ["make", "-n", "demo", "DEMO_ARGS=--port 9010 --sql-port 5433"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    demo = [line for line in out.splitlines() if "custview demo" in line]
    assert demo and demo[-1].endswith("--port 9010 --sql-port 5433"), out
    assert 'DEMO_ARGS="--port' in README


def test_every_graphql_root_field_is_in_the_readme() -> None:
    from resolvers.schema import build_schema

    schema = build_schema(load_settings().settings.model)
    roots = set(schema._schema.query_type.fields)  # type: ignore[union-attr]
    assert {"customer", "customers", "sources", "qualityReport"} <= roots
    missing = {name for name in roots if f"`{name}(" not in README and f"`{name}`" not in README}
    missing -= {n for n in roots if re.search(rf"`{n}[ :]", README)}
    assert missing == set()


def test_the_own_systems_example_config_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = README.split("## Connecting your own systems", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    for name in set(re.findall(r"\$\{(\w+)\}", example)):
        monkeypatch.setenv(name, "0" * 64 if name.endswith("SHA256") else "secret")
    path = tmp_path / "custview.yaml"
    path.write_text(example)
    loaded = load_settings(path)
    settings = loaded.settings
    assert set(settings.sources) == {"crm", "shop", "helpdesk"}
    assert [m.source for m in settings.model.customer.members] == ["crm", "shop", "helpdesk"]
    assert "orders" in settings.model.relations
