"""`custview check` warns when a source's database role could write."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.connectors.sql_fixtures import create_people_database
from tests.e2e.test_cli import run
from tests.support.configs import people_config
from tests.support.roles import Roles, database_roles


@pytest.fixture(scope="module")
def pg_roles(postgres_db_url: str) -> Iterator[Roles]:
    asyncio.run(create_people_database(postgres_db_url))
    with database_roles(postgres_db_url, ["people", "keywords"]) as made:
        yield made


@pytest.fixture(scope="module")
def maria_roles(mariadb_db_url: str) -> Iterator[Roles]:
    asyncio.run(create_people_database(mariadb_db_url))
    with database_roles(mariadb_db_url, ["people", "keywords"]) as made:
        yield made


def _config(tmp_path: Path, urls: dict[str, str]) -> Path:
    path = tmp_path / "roles.yaml"
    path.write_text(people_config(urls))
    return path


def test_check_warns_about_roles_that_can_write_and_only_those(
    tmp_path: Path, pg_roles: Roles, maria_roles: Roles
) -> None:
    config = _config(
        tmp_path,
        {
            "pg_writer": pg_roles.writer,
            "pg_reader": pg_roles.read_only,
            "maria_writer": maria_roles.writer,
            "maria_reader": maria_roles.read_only,
        },
    )
    result = run("check", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    report = {s["source"]: s["write_access"] for s in json.loads(result.stdout)}
    assert report["pg_writer"]["can_write"] is True
    assert report["pg_writer"]["tables"] == {"people": ["INSERT", "DELETE"]}
    assert report["maria_writer"]["tables"] == {"people": ["INSERT", "DELETE"]}
    assert report["pg_reader"]["can_write"] is False
    assert report["maria_reader"]["can_write"] is False
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, result.stderr
    assert warnings[0].startswith(
        f"warning: source 'pg_writer': role '{pg_roles.writer_name}' can INSERT, DELETE on people."
    )
    assert "SELECT" in warnings[0] and "README" in warnings[0]
    assert warnings[1].startswith("warning: source 'maria_writer': role")
    assert "cv-test-pw" not in result.stdout + result.stderr
