"""Answers to the catalog queries clients send: ``pg_catalog``, ``information_schema``
and constant ``SELECT``\\ s (``version()``, ``current_schema()``, ``SELECT 1``).

The catalog is a handful of small in-memory tables describing the curated
SQL catalog (:mod:`resolvers.sqlview.catalog`); a query over them runs on
sqlglot's Python executor after PostgreSQL specifics (``pg_catalog.``
prefixes, ``::regclass`` casts, ``OPERATOR(pg_catalog.~)``, ``COLLATE``,
``= ANY(ARRAY[...])``, ``(current_schemas(true))[1]``, the JDBC driver's
column numbering window, system functions) are rewritten into what it
evaluates; catalog tables custview has no rows for (``pg_attrdef``,
``pg_index``, ``pg_constraint`` ...) exist empty, so joins with them run.
A catalog query it cannot evaluate is answered with no rows and the
columns it asked for — what a tool probing for an optional feature
(hstore, extensions, publications) expects.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlglot import exp
from sqlglot.executor import execute
from sqlglot.executor import python as executor_env
from sqlglot.executor.table import Table

from resolvers.sqlview.catalog import PG_TYPES, SqlTable
from resolvers.sqlview.errors import SqlError

log = logging.getLogger("custview.sql")

SERVER_VERSION = "15.0"
VERSION = f"PostgreSQL {SERVER_VERSION} (custview, a federated Customer 360 view)"
SCHEMAS = ("pg_catalog", "information_schema")
_NAMESPACES = {"pg_catalog": "11", "public": "2200", "information_schema": "13000"}
_FIRST_OID = 16384
_TYPES = {
    "16": ("bool", 1), "20": ("int8", 8), "21": ("int2", 2), "23": ("int4", 4),
    "25": ("text", -1), "26": ("oid", 4), "700": ("float4", 4), "701": ("float8", 8),
    "1043": ("varchar", -1), "1082": ("date", 4), "1114": ("timestamp", 8),
    "1184": ("timestamptz", 8), "1700": ("numeric", -1), "19": ("name", 64),
}  # fmt: skip
_TYPE_NAMES = {str(oid): name for oid, name in PG_TYPES.values()}
_TRUE_FUNCTIONS = {
    "pg_table_is_visible", "pg_type_is_visible", "pg_function_is_visible",
    "has_table_privilege", "has_schema_privilege", "has_database_privilege",
    "has_column_privilege", "has_any_column_privilege", "pg_has_role",
}  # fmt: skip


def _format_type(oid: Any, typmod: Any = None) -> str | None:
    if oid is None or str(oid) == "0":
        return None
    return _TYPE_NAMES.get(str(oid)) or _TYPES.get(str(oid), ("???", 0))[0]


def _regexp_like(value: Any, pattern: Any, *flags: Any) -> bool | None:
    if value is None or pattern is None:
        return None
    return re.search(str(pattern), str(value)) is not None


# the executor evaluates functions by these names (module-level, shared)
_ENV: dict[str, Any] = executor_env.ENV  # type: ignore[attr-defined]
_ENV.setdefault("REGEXPLIKE", _regexp_like)
_ENV.setdefault("FORMAT_TYPE", _format_type)
_ENV.setdefault("NULLIF", lambda a, b: None if a == b else a)
_ENV.setdefault(
    "REPLACE", lambda s, old, new: None if s is None else str(s).replace(str(old), str(new))
)

_SEARCH_PATH = ("pg_catalog", "public")
"""``current_schemas(true)``, in order."""
_EMPTY = {
    "pg_attrdef": ("oid", "adrelid", "adnum", "adbin"),
    "pg_index": ("indexrelid", "indrelid", "indnatts", "indisunique", "indisprimary", "indkey"),
    "pg_constraint": ("oid", "conname", "connamespace", "contype", "conrelid", "confrelid",
                      "conkey", "confkey"),
    "pg_inherits": ("inhrelid", "inhparent", "inhseqno"),
    "pg_proc": ("oid", "proname", "pronamespace", "prorettype", "prokind"),
    "pg_extension": ("oid", "extname", "extnamespace", "extversion"),
    "pg_enum": ("oid", "enumtypid", "enumsortorder", "enumlabel"),
}  # fmt: skip
"""Catalog tables custview has no rows for; their columns, so joins with them run."""


def catalog_tables(
    tables: Mapping[str, SqlTable], database: str
) -> dict[str, list[dict[str, Any]]]:
    """The emulated catalog's rows, table name -> rows (``information_schema.x`` is
    ``information_schema__x``); every oid is text, as clients read them."""
    namespaces = [
        {"oid": oid, "nspname": name, "nspowner": "10", "nspacl": None}
        for name, oid in _NAMESPACES.items()
    ]
    classes, attributes, descriptions, info_tables, info_columns = [], [], [], [], []
    for i, table in enumerate(tables.values()):
        oid = str(_FIRST_OID + i)
        kind = "r" if table.kind == "table" else "v"
        classes.append(
            {
                "oid": oid,
                "relname": table.name,
                "relnamespace": "2200",
                "relkind": kind,
                "relowner": "10",
                "relam": "2" if kind == "r" else "0",
                "relchecks": 0,
                "relhasindex": False,
                "relhasrules": False,
                "relhastriggers": False,
                "relrowsecurity": False,
                "relforcerowsecurity": False,
                "relispartition": False,
                "relhasoids": False,
                "reloptions": None,
                "reltablespace": 0,
                "reloftype": 0,
                "relpersistence": "p",
                "relreplident": "d",
                "reltoastrelid": 0,
                "relnatts": len(table.columns),
                "reltuples": -1.0,
                "relpages": 0,
                "relacl": None,
                "relhassubclass": False,
                "reltype": "0",
                "relpartbound": None,
            }
        )
        if table.description:
            descriptions.append(
                {"objoid": oid, "classoid": "1259", "objsubid": 0, "description": table.description}
            )
        info_tables.append(
            {
                "table_catalog": database,
                "table_schema": "public",
                "table_name": table.name,
                "table_type": "BASE TABLE" if kind == "r" else "VIEW",
                "is_insertable_into": "NO",
                "is_typed": "NO",
            }
        )
        for number, column in enumerate(table.columns, start=1):
            type_oid, type_name = PG_TYPES[column.type]
            attributes.append(
                {
                    "attrelid": oid,
                    "attname": column.name,
                    "atttypid": str(type_oid),
                    "atttypmod": -1,
                    "attnum": number,
                    "attnotnull": column.name == "id",
                    "atthasdef": False,
                    "attisdropped": False,
                    "attidentity": "",
                    "attgenerated": "",
                    "attcollation": "0",
                    "attlen": -1,
                    "attstattarget": -1,
                    "attndims": 0,
                    "attislocal": True,
                    "attinhcount": 0,
                    "attacl": None,
                    "attoptions": None,
                    "attfdwoptions": None,
                    "attstorage": "x",
                    "attcompression": "",
                }
            )
            if column.description:
                descriptions.append(
                    {
                        "objoid": oid,
                        "classoid": "1259",
                        "objsubid": number,
                        "description": column.description,
                    }
                )
            info_columns.append(
                {
                    "table_catalog": database,
                    "table_schema": "public",
                    "table_name": table.name,
                    "column_name": column.name,
                    "ordinal_position": number,
                    "column_default": None,
                    "is_nullable": "NO" if column.name == "id" else "YES",
                    "data_type": type_name,
                    "udt_name": _TYPES[str(type_oid)][0],
                    "udt_schema": "pg_catalog",
                    "character_maximum_length": None,
                    "numeric_precision": None,
                    "numeric_scale": None,
                    "datetime_precision": None,
                    "is_updatable": "NO",
                    "is_identity": "NO",
                    "is_generated": "NEVER",
                }
            )
    types = [
        {
            "oid": oid,
            "typname": name,
            "typnamespace": "11",
            "typowner": "10",
            "typlen": size,
            "typtype": "b",
            "typcategory": "",
            "typarray": "0",
            "typelem": "0",
            "typbasetype": "0",
            "typtypmod": -1,
            "typnotnull": False,
            "typrelid": "0",
            "typcollation": "0",
            "typdelim": ",",
            "typinput": f"{name}in",
            "typoutput": f"{name}out",
            "typreceive": f"{name}recv",
            "typsend": f"{name}send",
        }
        for oid, (name, size) in _TYPES.items()
    ]
    return {
        "pg_namespace": namespaces,
        "pg_class": classes,
        "pg_attribute": attributes,
        "pg_type": types,
        "pg_description": descriptions,
        "pg_am": [{"oid": "2", "amname": "heap", "amtype": "t"}],
        "pg_database": [
            {
                "oid": "1",
                "datname": database,
                "datdba": "10",
                "encoding": 6,
                "datcollate": "C.UTF-8",
                "datctype": "C.UTF-8",
                "datallowconn": True,
                "datistemplate": False,
                "datlocprovider": "c",
                "daticulocale": None,
                "datacl": None,
            }
        ],
        "pg_roles": [{"oid": "10", "rolname": "custview", "rolsuper": False}],
        "pg_user": [{"usesysid": "10", "usename": "custview", "usesuper": False}],
        "information_schema__tables": info_tables,
        "information_schema__columns": info_columns,
        "information_schema__schemata": [
            {"catalog_name": database, "schema_name": name, "schema_owner": "custview"}
            for name in _NAMESPACES
        ],
    }


def is_catalog_query(select: exp.Expr) -> bool:
    """Whether every table the query reads is a catalog table (or it reads none)."""
    return all(_is_catalog_table(t) for t in select.find_all(exp.Table))


def _is_catalog_table(table: exp.Table) -> bool:
    return table.db.lower() in SCHEMAS or (not table.db and table.name.lower().startswith("pg_"))


class CatalogQueries:
    """Runs catalog queries over one catalog, for one session's names and settings."""

    def __init__(
        self,
        tables: Mapping[str, SqlTable],
        database: str,
        user: str,
        setting: Callable[[str], str],
    ) -> None:
        self.tables = tables
        self.rows = catalog_tables(tables, database)
        # built once: the executor would otherwise normalise every row of every table
        self._tables = {
            name: Table(columns=tuple(rows[0]), rows=[tuple(r.values()) for r in rows])
            for name, rows in self.rows.items()
            if rows
        }
        self._schema = {
            name: {column: _sql_type(value) for column, value in rows[0].items()}
            for name, rows in self.rows.items()
            if rows
        }
        for name, columns in _EMPTY.items():
            self._tables.setdefault(name, Table(columns=columns, rows=[]))
            self._schema.setdefault(name, dict.fromkeys(columns, "VARCHAR"))
        self.oids = {r["relname"]: r["oid"] for r in self.rows["pg_class"]}
        self.database = database
        self.user = user
        self.setting = setting
        self._functions: dict[str, Callable[[list[exp.Expr]], exp.Expr]] = {
            "version": lambda a: exp.Literal.string(VERSION),
            "current_database": lambda a: exp.Literal.string(self.database),
            "current_schema": lambda a: exp.Literal.string("public"),
            "current_schemas": lambda a: exp.Literal.string("{pg_catalog,public}"),
            "pg_get_userbyid": lambda a: exp.Literal.string("custview"),
            "pg_backend_pid": lambda a: exp.Literal.number(1),
            "pg_encoding_to_char": lambda a: exp.Literal.string("UTF8"),
            "current_setting": self._current_setting,
            "format_type": lambda a: exp.Anonymous(this="FORMAT_TYPE", expressions=a),
        }

    def _current_setting(self, args: list[exp.Expr]) -> exp.Expr:
        arg = args[0] if args else None
        while isinstance(arg, exp.Cast):
            arg = arg.this
        try:
            return exp.Literal.string(self.setting(arg.name if arg is not None else ""))
        except SqlError:
            return exp.null()

    def run(self, select: exp.Expr) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of a catalog query."""
        rewritten = select.copy()
        for _ in range(2):  # a replaced node's children are rewritten by the next pass
            rewritten = rewritten.transform(self._rewrite)
        constant = _constants(rewritten)
        if constant is not None:
            return _names(select), constant
        names = {t.name for t in rewritten.find_all(exp.Table)}
        try:
            result = execute(
                rewritten,
                schema={n: self._schema[n] for n in names if n in self._schema},
                tables={n: self._tables[n] for n in names if n in self._tables},
            )
        except Exception as exc:  # the executor's coverage is partial: answer "nothing"
            log.debug("catalog query answered empty (%s): %s", exc, select.sql("postgres"))
            return _names(select), []
        return list(result.columns), [tuple(r) for r in result.rows]

    def _rewrite(self, node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Subquery | exp.Array):
            return self._subquery(node)
        if isinstance(node, exp.Table):
            return _table(node)
        if isinstance(node, exp.Dot) and isinstance(node.this, exp.Identifier):
            if node.this.name.lower() != "pg_catalog":
                return node
            inner: exp.Expr = node.expression
            return inner.transform(self._rewrite)
        if isinstance(node, exp.Collate):
            return _this(node)
        if isinstance(node, exp.Operator):
            return _operator(node)
        if isinstance(node, exp.Cast):
            return self._cast(node)
        if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any):
            return _any(node)
        if isinstance(node, exp.Bracket):
            return _schema_element(node)
        if isinstance(node, exp.Window):
            return _column_number(node)
        if isinstance(node, exp.Anonymous):
            name = node.name.lower()
            if name in _TRUE_FUNCTIONS:
                return exp.true()
            known = self._functions.get(name)
            return known(list(node.expressions)) if known else exp.null()
        return self._special(node)

    def _special(self, node: exp.Expr) -> exp.Expr:
        """The SQL-standard functions sqlglot parses to their own nodes."""
        if isinstance(node, exp.CurrentUser | exp.SessionUser):
            return exp.Literal.string(self.user)
        if isinstance(node, exp.CurrentSchema):
            return exp.Literal.string("public")
        if isinstance(node, exp.CurrentDatabase | exp.CurrentCatalog):
            return exp.Literal.string(self.database)
        if isinstance(node, exp.CurrentVersion):
            return exp.Literal.string(VERSION)
        if isinstance(node, exp.CurrentSchemas):
            return exp.Literal.string("{pg_catalog,public}")
        return node

    @staticmethod
    def _subquery(node: exp.Expr) -> exp.Expr:
        """Scalar subqueries fetch optional details (defaults, collations, policies)
        the executor cannot correlate: NULL, as for an object that has none."""
        if isinstance(node.parent, exp.From | exp.Join | exp.In):
            return node
        if isinstance(node, exp.Subquery) or node.find(exp.Select):
            return exp.null()
        return node

    def _cast(self, node: exp.Cast) -> exp.Expr:
        """Casts go (catalog values already have the types clients read as text),
        except a name read as ``regclass``/``regtype``, which is looked up."""
        to = node.to.sql("postgres").lower().rsplit(".", 1)[-1].strip('"')
        inner: exp.Expr = node.this
        if to == "regclass" and isinstance(inner, exp.Literal) and inner.is_string:
            name = inner.this.removeprefix("public.").strip('"')
            return exp.Literal.string(self.oids.get(name, "0"))
        if to == "regtype" and isinstance(inner, exp.Column):
            return exp.Anonymous(this="FORMAT_TYPE", expressions=[inner])
        return inner


def _constants(select: exp.Expr) -> list[tuple[Any, ...]] | None:
    """``SELECT version()``, ``SELECT 1``: answered without the executor."""
    if not isinstance(select, exp.Select):
        return None
    if any(v for k, v in select.args.items() if k != "expressions"):
        return None
    values = []
    for item in select.expressions:
        node = item.this if isinstance(item, exp.Alias) else item
        if isinstance(node, exp.Null):
            value: Any = None
        elif isinstance(node, exp.Boolean):
            value = bool(node.this)
        elif isinstance(node, exp.Literal):
            value = (
                node.this if node.is_string else int(node.this) if node.is_int else float(node.this)
            )
        else:
            return None
        values.append(value)
    return [tuple(values)]


def _name(item: exp.Expr) -> str:
    """The column name PostgreSQL gives a select item."""
    if isinstance(item, exp.Alias):
        return item.alias
    if isinstance(item, exp.Dot):
        return _name(item.expression)
    if isinstance(item, exp.Column):
        return item.name
    if isinstance(item, exp.CurrentVersion):
        return "version"
    if isinstance(item, exp.Func) and not isinstance(item, exp.Cast):
        name = item.name if isinstance(item, exp.Anonymous) else item.sql_name()
        return name.lower()
    return "?column?"


def _sql_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    return "VARCHAR"


def _this(node: exp.Expr) -> exp.Expr:
    inner: exp.Expr = node.this
    return inner


def _table(node: exp.Table) -> exp.Expr:
    db = node.db.lower()
    if db == "information_schema":
        return exp.Table(
            this=exp.to_identifier(f"information_schema__{node.name.lower()}"),
            alias=node.args.get("alias"),
        )
    if db == "pg_catalog":
        node.set("db", None)
    return node


def _operator(node: exp.Operator) -> exp.Expr:
    """``OPERATOR(pg_catalog.~)`` as the plain operator."""
    operator = str(node.args.get("operator", "")).rsplit(".", 1)[-1]
    if operator in ("~", "~*"):
        return exp.RegexpLike(this=node.this, expression=node.expression)
    if operator in ("=", "<>"):
        compare = exp.EQ if operator == "=" else exp.NEQ
        return compare(this=node.this, expression=node.expression)
    return node


def _schema_element(node: exp.Bracket) -> exp.Expr:
    """``(current_schemas(true))[i]``: the i-th schema of the search path (1-based)."""
    array = node.this
    while isinstance(array, exp.Paren):
        array = array.this
    is_path = isinstance(array, exp.CurrentSchemas) or (
        isinstance(array, exp.Anonymous) and array.name.lower() == "current_schemas"
    )
    index = node.expressions[0] if len(node.expressions) == 1 else None
    if not is_path or not isinstance(index, exp.Literal) or not index.is_int:
        return node
    position = int(index.this)
    if 1 <= position <= len(_SEARCH_PATH):
        return exp.Literal.string(_SEARCH_PATH[position - 1])
    return exp.null()


def _column_number(node: exp.Window) -> exp.Expr:
    """``row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum)`` (the JDBC
    driver's column numbering) is ``a.attnum``: custview's columns are numbered
    from 1 without gaps. Any other window stays, and the executor refuses it."""
    order = node.args.get("order")
    partition = node.args.get("partition_by") or []
    sorts = list(order.expressions) if order is not None else []
    keys = [o.this for o in sorts]
    if (
        isinstance(node.this, exp.RowNumber)
        and len(partition) == 1
        and len(keys) == 1
        and isinstance(partition[0], exp.Column)
        and isinstance(keys[0], exp.Column)
        and partition[0].name.lower() == "attrelid"
        and keys[0].name.lower() == "attnum"
        and not sorts[0].args.get("desc")
    ):
        return keys[0].copy()
    return node


def _any(node: exp.EQ) -> exp.Expr:
    """``x = ANY(ARRAY[...])`` as ``x IN (...)``."""
    values = node.expression.this
    values = values.this if isinstance(values, exp.Paren) else values
    if isinstance(values, exp.Array):
        return exp.In(this=node.this, expressions=values.expressions)
    return node


def _names(select: exp.Expr) -> list[str]:
    if isinstance(select, exp.SetOperation):
        return _names(select.this)
    if isinstance(select, exp.Select):
        return [_name(e) for e in select.expressions]
    return ["?column?"]
