"""Which write privileges the source's database role holds on the tables read.

custview never writes (see :mod:`connectors.sql.engine`), but a role that may
is one bug or one leaked password away from it, so ``custview check`` warns.
The answer comes from the server's own bookkeeping, read through the same
read-only, guarded session as every other statement:

* PostgreSQL: ``has_table_privilege`` per table and privilege, which follows
  role membership, ownership and superuser;
* MySQL/MariaDB: ``SHOW GRANTS`` for the current user (MariaDB lists the
  grants of the enabled role too), matched against each table: global
  (``*.*``), database (wildcards included) and table grants.

SQLite files are opened read-only, whatever the file permissions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import func, literal, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

POSTGRES_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
MYSQL_WRITES = ("INSERT", "UPDATE", "DELETE", "DROP", "ALTER")

_GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON (?P<object>.+?) TO ", re.S)
_NAME = r"(?:`(?:[^`]|``)*`|[^.`\s]+|\*)"
_OBJECT = re.compile(rf"^(?:TABLE\s+)?(?P<db>{_NAME})\.(?P<table>{_NAME})$", re.I)


async def role_name(conn: AsyncConnection, backend: str) -> str:
    """The database role the session runs as (a user name, never a password)."""
    # PostgreSQL's current_user is a keyword; MySQL's is a function.
    who = func.current_user() if backend == "mysql" else literal_column("current_user")
    return str((await conn.execute(select(who))).scalar_one())


async def postgres_write_grants(
    conn: AsyncConnection, tables: Sequence[str], schema: str | None
) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for table in tables:
        name = func.quote_ident(literal(table))
        if schema:
            name = func.concat(func.quote_ident(literal(schema)), literal("."), name)
        oid = func.to_regclass(name)
        checks = [func.has_table_privilege(oid, literal(p)) for p in POSTGRES_WRITES]
        row = (await conn.execute(select(*checks))).one()
        held = tuple(p for p, ok in zip(POSTGRES_WRITES, row, strict=True) if ok)
        if held:
            found[table] = held
    return found


async def mysql_write_grants(
    conn: AsyncConnection, tables: Sequence[str], database: str
) -> dict[str, tuple[str, ...]]:
    lines = [str(r[0]) for r in (await conn.execute(text("SHOW GRANTS"))).all()]
    grants = [g for g in (parse_grant(line) for line in lines) if g is not None]
    listed = text(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = :db"
    ).bindparams(db=database)
    existing = {str(r[0]).lower() for r in (await conn.execute(listed)).all()}
    found: dict[str, tuple[str, ...]] = {}
    for table in (t for t in tables if t.lower() in existing):
        held: set[str] = set()
        for privileges, db_pattern, table_pattern in grants:
            if _matches(db_pattern, database, wildcards=True) and _matches(
                table_pattern, table, wildcards=False
            ):
                held |= privileges
        writes = tuple(p for p in MYSQL_WRITES if p in held or "ALL" in held)
        if writes:
            found[table] = writes
    return found


def parse_grant(line: str) -> tuple[set[str], str, str] | None:
    """``(privileges, database, table)`` of one ``SHOW GRANTS`` line; ``None`` for
    lines that grant no table privileges (roles, proxies, routines)."""
    match = _GRANT.match(line.strip())
    if match is None:
        return None
    target = _OBJECT.match(match["object"].strip())
    if target is None:  # PROCEDURE db.x, FUNCTION db.x, ''@'' (PROXY)
        return None
    privileges = set()
    for part in _split(match["privileges"]):
        name = re.sub(r"\s*\(.*\)$", "", part.strip()).upper()  # UPDATE (`col`) -> UPDATE
        privileges.add("ALL" if name in ("ALL", "ALL PRIVILEGES") else name)
    return privileges, _unquote(target["db"]), _unquote(target["table"])


def _split(privileges: str) -> list[str]:
    """Split on commas outside parentheses (column lists)."""
    parts, depth, current = [], 0, ""
    for char in privileges:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _unquote(name: str) -> str:
    if name.startswith("`") and name.endswith("`"):
        return name[1:-1].replace("``", "`")
    return name


def _matches(pattern: str, name: str, *, wildcards: bool) -> bool:
    """A grant's object name against a real one: ``*`` is every one; database
    names may hold LIKE wildcards (``%``, ``_``, ``\\_`` for a literal one)."""
    if pattern == "*":
        return True
    if not wildcards:
        return pattern.lower() == name.lower()
    regex, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if char == "%" else "." if char == "_" else re.escape(char)
        i += 1
    return re.fullmatch(regex, name, re.I) is not None
