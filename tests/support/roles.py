"""Database roles for the read-only tests: one that may only SELECT, one that
may write some tables. Created with the admin URL, dropped afterwards.

Test setup, not product code: it grants and revokes on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url

from tests.support.engines import _admin

PASSWORD = "cv-test-pw"


@dataclass(frozen=True)
class Roles:
    read_only: str
    """URL of a role that may only SELECT the tables."""
    writer: str
    """URL of a role that may also write (see :func:`database_roles`)."""
    read_only_name: str
    writer_name: str


@contextlib.contextmanager
def database_roles(admin_url: str, tables: list[str]) -> Iterator[Roles]:
    """Two login roles on ``admin_url``'s database: ``read_only`` may SELECT every
    table of ``tables``; ``writer`` may SELECT them all, INSERT and DELETE the
    first, and (through a role on MariaDB, directly on PostgreSQL) UPDATE the second."""
    url = make_url(admin_url)
    suffix = secrets.token_hex(3)
    ro, rw = f"cv_ro_{suffix}", f"cv_rw_{suffix}"
    first, second = tables[0], tables[1]
    database = url.database
    if url.get_backend_name() == "postgresql":
        setup = [
            f"CREATE ROLE {ro} LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE ROLE {rw} LOGIN PASSWORD '{PASSWORD}'",
            f"GRANT CONNECT ON DATABASE {database} TO {ro}, {rw}",
            f"GRANT USAGE ON SCHEMA public TO {ro}, {rw}",
            f"GRANT SELECT ON {', '.join(tables)} TO {ro}, {rw}",
            f"GRANT INSERT, DELETE ON {first} TO {rw}",
            f"GRANT UPDATE ON {second} TO {rw}",
        ]
        teardown = [f"DROP OWNED BY {ro}, {rw}", f"DROP ROLE IF EXISTS {ro}, {rw}"]
        hosts = [""]
    else:
        hosts = ["@'127.0.0.1'", "@'localhost'"]
        role = f"cv_role_{suffix}"
        setup = [f"CREATE ROLE {role}", f"GRANT UPDATE ON {database}.{second} TO {role}"]
        for host in hosts:
            setup += [
                f"CREATE USER '{ro}'{host} IDENTIFIED BY '{PASSWORD}'",
                f"CREATE USER '{rw}'{host} IDENTIFIED BY '{PASSWORD}'",
                f"GRANT SELECT ON {database}.* TO '{ro}'{host}, '{rw}'{host}",
                f"GRANT INSERT, DELETE ON {database}.{first} TO '{rw}'{host}",
                f"GRANT {role} TO '{rw}'{host}",
                f"SET DEFAULT ROLE {role} FOR '{rw}'{host}",
            ]
        teardown = [f"DROP USER IF EXISTS '{n}'{h}" for n in (ro, rw) for h in hosts]
        teardown.append(f"DROP ROLE IF EXISTS {role}")
    asyncio.run(_admin(admin_url, setup))
    try:
        yield Roles(
            read_only=_as(url, ro),
            writer=_as(url, rw),
            read_only_name=ro,
            writer_name=rw,
        )
    finally:
        asyncio.run(_admin(admin_url, teardown))


def _as(url: URL, user: str) -> str:
    return url.set(username=user, password=PASSWORD).render_as_string(hide_password=False)
