"""Which roles could write: the SQL connector reads the server's own grants
(PostgreSQL, MariaDB) for ``custview check``; and a SELECT-only role blocks
writes even without custview's read-only session and statement guard."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from connectors import WriteAccess
from connectors.sql import SQLConnector, SQLOptions
from connectors.sql.privileges import parse_grant
from tests.connectors.sql_fixtures import count_people, create_people_database
from tests.support.roles import Roles, database_roles

TABLES = ["people", "keywords"]


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def roles(request: pytest.FixtureRequest) -> Iterator[tuple[str, Roles]]:
    """(admin URL, roles) on a fresh database holding the people dataset."""
    admin = request.getfixturevalue(
        {"postgresql": "postgres_db_url", "mariadb": "mariadb_db_url"}[request.param]
    )
    asyncio.run(create_people_database(admin))
    with database_roles(admin, TABLES) as made:
        yield admin, made


async def access(url: str, schema: str | None = None) -> WriteAccess:
    connector = SQLConnector("crm", SQLOptions(url=url, timeout=5, schema_name=schema))
    try:
        return await connector.write_access([*TABLES, "no_such_table"])
    finally:
        await connector.aclose()


async def test_a_role_that_may_write_is_reported_with_what_it_may_do(
    roles: tuple[str, Roles],
) -> None:
    _, made = roles
    found = await access(made.writer)
    assert found.can_write is True
    assert found.tables == {"people": ("INSERT", "DELETE"), "keywords": ("UPDATE",)}
    assert made.writer_name in found.detail
    assert "INSERT, DELETE on people" in found.detail
    assert "cv-test-pw" not in found.detail


async def test_a_select_only_role_is_reported_read_only(roles: tuple[str, Roles]) -> None:
    _, made = roles
    found = await access(made.read_only)
    assert found.can_write is False
    assert found.tables == {}
    assert f"role '{made.read_only_name}" in found.detail


async def test_the_admin_role_may_write_everything(roles: tuple[str, Roles]) -> None:
    admin, _ = roles
    found = await access(admin)
    assert found.can_write is True
    assert set(found.tables) == set(TABLES), "every existing mapped table, not the missing one"


async def test_an_unreachable_source_is_not_known(roles: tuple[str, Roles]) -> None:
    admin, _ = roles
    found = await access(make_url(admin).set(port=1).render_as_string(hide_password=False))
    assert found.can_write is None
    assert found.detail.startswith("could not check the privileges")


async def test_sqlite_files_are_opened_read_only(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'people.db'}"
    await create_people_database(url)
    found = await access(url)
    assert found.can_write is False
    assert "opened read-only" in found.detail


WRITES = [
    "INSERT INTO people (id, name, score, created_at) VALUES (100, 'x', 1, '2024-01-01')",
    "UPDATE people SET name = 'x'",
    "DELETE FROM people",
    "TRUNCATE TABLE people",
    "DROP TABLE people",
    "CREATE TABLE intruder (id INTEGER)",
]


@pytest.mark.parametrize("statement", WRITES)
async def test_a_select_only_role_blocks_writes_without_custviews_guards(
    roles: tuple[str, Roles], statement: str
) -> None:
    """A plain engine: no read-only session, no statement guard, autocommit on.
    The role alone must refuse."""
    admin, made = roles
    engine = create_async_engine(made.read_only, isolation_level="AUTOCOMMIT")
    try:
        with pytest.raises(DBAPIError, match=r"(?i)denied|privilege|must be owner"):
            async with engine.connect() as conn:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
    assert await count_people(admin) == 50


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
            ({"ALL"}, "*", "*"),
        ),
        ("GRANT SELECT ON `crm`.* TO `cv`@`%`", ({"SELECT"}, "crm", "*")),
        (
            "GRANT SELECT, UPDATE (`name`, `email`) ON `crm`.`contacts` TO `cv`@`%`",
            ({"SELECT", "UPDATE"}, "crm", "contacts"),
        ),
        ("GRANT INSERT ON `cr\\_m%`.* TO `cv`@`%`", ({"INSERT"}, "cr\\_m%", "*")),
        ("GRANT `reporting` TO `cv`@`%`", None),
        ("GRANT EXECUTE ON PROCEDURE `crm`.`p` TO `cv`@`%`", None),
        ("GRANT USAGE ON *.* TO `cv`@`%` IDENTIFIED BY PASSWORD '*ABC'", ({"USAGE"}, "*", "*")),
    ],
)
def test_show_grants_lines(line: str, parsed: object) -> None:
    assert parse_grant(line) == parsed
