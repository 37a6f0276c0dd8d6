"""One SQL client's session: statements in, governed answers out.

A statement is parsed with sqlglot (PostgreSQL dialect), its ``$n``
parameters bound as constants in the syntax tree (never spliced into text),
and then it is one of: a ``SELECT`` over a curated table or view
(:mod:`resolvers.sqlview.select`), a catalog query
(:mod:`resolvers.sqlview.pgcatalog`), or session housekeeping clients send
(``SET``, ``SHOW``, ``BEGIN``/``COMMIT``/``ROLLBACK``, ``DISCARD``). Writes,
DDL, joins, subqueries, set operations and several statements at once are
refused with a SQLSTATE and a message saying what is supported.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from resolvers.policy import Grant
from resolvers.segments import compile_segments
from resolvers.sqlview.catalog import SqlTable, build_catalog
from resolvers.sqlview.errors import SqlError
from resolvers.sqlview.pgcatalog import SERVER_VERSION, CatalogQueries, is_catalog_query
from resolvers.sqlview.select import plan_select, run_select

if TYPE_CHECKING:
    from resolvers.audit import Auditor
    from resolvers.view import Federation

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # "falling back to Command" notices

_WRITES = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
    exp.TruncateTable, exp.Copy, exp.Grant,
)  # fmt: skip
_WRITE_VERBS = {
    "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "TRUNCATE", "COPY", "GRANT",
    "REVOKE", "VACUUM", "CALL", "DO", "LOCK", "COMMENT", "REINDEX", "CLUSTER", "REFRESH",
}  # fmt: skip
_READ_ONLY = "custview's SQL is read-only: the sources are never written"
SETTINGS = {
    "server_version": SERVER_VERSION,
    "server_version_num": "150000",
    "lc_collate": "C.UTF-8",
    "lc_ctype": "C.UTF-8",
    "statement_timeout": "0",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "is_superuser": "off",
    "application_name": "",
    "default_transaction_read_only": "on",
    "transaction_read_only": "on",
    "transaction_isolation": "read committed",
    "search_path": '"$user", public',
    "max_identifier_length": "63",
    "extra_float_digits": "1",
    "default_table_access_method": "heap",
}
"""Parameters clients read at login (``ParameterStatus``) or with ``SHOW``."""
_SHOW_ALIASES = {"transaction isolation level": "transaction_isolation"}
_TRANSACTIONS = [
    (re.compile(r"\s*(begin|start\s+transaction)(\s+(work|transaction))?[a-z ,]*;?\s*", re.I),
     "BEGIN"),
    (re.compile(r"\s*(commit|end)(\s+(work|transaction))?(\s+and\s+no\s+chain)?\s*;?\s*", re.I),
     "COMMIT"),
    (re.compile(r"\s*(rollback|abort)(\s+(work|transaction))?\s*;?\s*", re.I), "ROLLBACK"),
    (re.compile(r'\s*savepoint\s+("[^"]{1,63}"|\w{1,63})\s*;?\s*', re.I), "SAVEPOINT"),
    (re.compile(r'\s*release(\s+savepoint)?\s+("[^"]{1,63}"|\w{1,63})\s*;?\s*', re.I),
     "RELEASE"),
    (re.compile(
        r'\s*rollback(\s+(work|transaction))?\s+to(\s+savepoint)?\s+("[^"]{1,63}"|\w{1,63})\s*;?\s*',
        re.I),
     "ROLLBACK"),
]  # fmt: skip
"""Transaction control, read as whole statements (a read-only session has nothing to
commit or undo; savepoints are accepted for clients that wrap reads in them)."""


@dataclass
class Answer:
    """A statement's answer: columns (name, type oid) unless it returns no rows,
    the command tag and, for queries, the rows a chunk at a time."""

    columns: list[tuple[str, int]] | None
    tag: str
    chunks: AsyncIterator[list[tuple[Any, ...]]] | None = None


async def _rows(found: list[tuple[Any, ...]]) -> AsyncIterator[list[tuple[Any, ...]]]:
    yield found


def _constant(value: Any) -> exp.Expr:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float | Decimal):
        return exp.Literal.number(value)
    if isinstance(value, dt.date | dt.datetime):
        return exp.Literal.string(value.isoformat())
    return exp.Literal.string(str(value))


def _type_oid(values: Sequence[Any]) -> int:
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return 16
    if isinstance(sample, int):
        return 20
    if isinstance(sample, float):
        return 701
    return 25


class SqlSession:
    """Statements of one authenticated client over one federation."""

    def __init__(
        self,
        federation: Federation,
        grant: Grant,
        auditor: Auditor | None,
        *,
        user: str = "custview",
        database: str = "custview",
        catalog: dict[str, SqlTable] | None = None,
    ) -> None:
        self.federation = federation
        self.grant = grant
        self.auditor = auditor
        self.tables = catalog if catalog is not None else build_catalog(federation.model)
        self.settings = dict(SETTINGS)
        self.in_transaction = False
        self.catalog = CatalogQueries(self.tables, database, user, self.show)
        self._segments = compile_segments(federation.model)

    def show(self, name: str) -> str:
        key = _SHOW_ALIASES.get(name.lower(), name)
        found = {k.lower(): v for k, v in self.settings.items()}.get(key.lower())
        if found is None:
            raise SqlError(f'unrecognized configuration parameter "{name}"', "42704")
        return found

    def parse(self, sql: str, params: Sequence[Any] | None) -> exp.Expr:
        """The one statement in ``sql`` with its parameters bound (``None``: NULL)."""
        try:
            found = [s for s in sqlglot.parse(sql, read="postgres") if s is not None]
        except (ParseError, TokenError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else "syntax error"
            raise SqlError(f"syntax error: {first}", "42601") from None
        if not found:
            raise SqlError("empty query", "42601")
        if len(found) > 1:
            raise SqlError("send one statement at a time (found several)", "42601")
        return found[0].transform(lambda node: self._bind(node, params))

    def _bind(self, node: exp.Expr, params: Sequence[Any] | None) -> exp.Expr:
        if not isinstance(node, exp.Parameter | exp.Placeholder):
            return node
        text = node.this.name if isinstance(node.this, exp.Expr) else str(node.this or "")
        if params is None:
            return exp.null()
        if not text.isdigit() or not 1 <= int(text) <= len(params):
            raise SqlError(f"there is no parameter ${text}", "42P02")
        return _constant(params[int(text) - 1])

    async def execute(self, sql: str, params: Sequence[Any] | None = ()) -> Answer:
        """Plan ``sql``; the rows are read as the answer's chunks are iterated."""
        for pattern, tag in _TRANSACTIONS:
            if pattern.fullmatch(sql):
                if tag in ("BEGIN", "COMMIT") or (tag == "ROLLBACK" and " to " not in sql.lower()):
                    self.in_transaction = tag == "BEGIN"
                return Answer(None, tag)
        statement = self.parse(sql, params)
        if isinstance(statement, _WRITES):
            raise SqlError(_READ_ONLY, "25006")
        if isinstance(statement, exp.Set):
            self._set(statement)
            return Answer(None, "SET")
        if isinstance(statement, exp.Command):
            return self._command(statement)
        if isinstance(statement, exp.Query) and is_catalog_query(statement):
            names, found = self.catalog.run(statement)
            columns = [(n, _type_oid([r[i] for r in found])) for i, n in enumerate(names)]
            return Answer(columns, "SELECT", _rows(found))
        if isinstance(statement, exp.Union | exp.Intersect | exp.Except):
            raise SqlError("UNION, INTERSECT and EXCEPT are not supported", "0A000")
        if not isinstance(statement, exp.Select):
            raise SqlError(
                f"{statement.key.upper()} statements are not supported; custview answers SELECT",
                "0A000",
            )
        if statement.args.get("with") or statement.args.get("with_"):
            raise SqlError("WITH (common table expressions) is not supported", "0A000")
        return self._select(statement)

    def _select(self, statement: exp.Select) -> Answer:
        if statement.args.get("joins"):
            raise SqlError(
                "joins are not supported; every related table has a customer_id column to "
                "group or filter by",
                "0A000",
            )
        for unsupported in ("having", "distinct", "windows", "qualify", "locks"):
            if statement.args.get(unsupported):
                raise SqlError(f"{unsupported.upper()} is not supported", "0A000")
        if any(
            isinstance(n, exp.Select) and n is not statement for n in statement.find_all(exp.Select)
        ):
            raise SqlError("subqueries are not supported", "0A000")
        source = statement.args.get("from_") or statement.args.get("from")
        table_node = source.this if source is not None else None
        if not isinstance(table_node, exp.Table):
            raise SqlError("select from one table or view of the catalog", "0A000")
        table = self._table(table_node)
        segment = self._segments[table.segment] if table.segment else None
        plan = plan_select(statement, table, self.federation, self.grant, segment)
        columns = [(o.name, o.type_oid) for o in plan.outputs]
        if self.auditor is not None:
            self.auditor.extra["table"] = table.name
        chunks = run_select(plan, self.federation, self.grant, self.auditor)
        return Answer(columns, "SELECT", chunks)

    def _table(self, node: exp.Table) -> SqlTable:
        if node.db and node.db.lower() != "public":
            raise SqlError(f'schema "{node.db}" does not exist', "3F000")
        name = node.name if node.this.quoted else node.name.lower()
        found = self.tables.get(name)
        if found is None:
            raise SqlError(
                f'relation "{node.name}" does not exist (tables and views: '
                f"{', '.join(self.tables)})",
                "42P01",
            )
        return found

    def _set(self, statement: exp.Set) -> None:
        for item in statement.expressions:
            target = item.this
            if isinstance(target, exp.EQ) and isinstance(target.this, exp.Column | exp.Identifier):
                value = target.expression
                text = value.name if isinstance(value, exp.Literal | exp.Column) else value.sql()
                name = target.this.name
                read_only = ("transaction_read_only", "default_transaction_read_only")
                if name.lower() in read_only and text.lower() in ("off", "false", "0"):
                    raise SqlError(_READ_ONLY, "25006")
                self.settings[name] = text

    def _command(self, statement: exp.Command) -> Answer:
        verb = str(statement.this).upper()
        rest = statement.expression.name if isinstance(statement.expression, exp.Expr) else ""
        if verb == "SHOW":
            name = rest.strip().strip('"')
            if name.lower() == "all":
                found = [(k, v, "") for k, v in self.settings.items()]
                columns = [("name", 25), ("setting", 25), ("description", 25)]
                return Answer(columns, "SHOW", _rows(found))
            return Answer([(name, 25)], "SHOW", _rows([(self.show(name),)]))
        if verb in ("END",):
            self.in_transaction = False
            return Answer(None, "COMMIT")
        if verb == "ABORT":
            self.in_transaction = False
            return Answer(None, "ROLLBACK")
        if verb in ("DISCARD", "RESET", "DEALLOCATE", "UNLISTEN", "CLOSE"):
            return Answer(None, f"{verb} ALL" if rest.upper().startswith("ALL") else verb)
        if verb in _WRITE_VERBS:
            raise SqlError(_READ_ONLY, "25006")
        raise SqlError(f"{verb} is not supported; custview answers SELECT", "0A000")
