"""Which requested key each row of a lookup matched, as the database compares them.

A lookup reads ``WHERE column IN (keys)``; the cheap way back is to give each row
to the keys equal to its value in Python. That is the database's own answer only
where its ``=`` is Python's ``==``: an integer column and ``int`` keys, a text
column with a binary, no-pad collation and ``str`` keys. Elsewhere Python's
answer differs: MySQL/MariaDB's default collations ignore case, accents and
trailing spaces (``'Jose' = 'José'``, ``'abc' = 'ABC '``), PostgreSQL's
``citext`` and nondeterministic collations ignore case, SQLite's type affinity
finds the INTEGER ``1`` for the key ``'1'``.

So each table's columns are read once per connector (:func:`describe`: one
catalog statement) and sorted into :data:`INT`, :data:`TEXT` or :data:`OTHER`
(:func:`kind_of`); a lookup whose column and keys provably agree with Python
(:func:`agreeing`) keeps the ``IN`` list, and any other joins its keys as a
derived table of (position, key) — :func:`keys_table`: a JSON array through
``json_each`` on SQLite, an array through ``unnest ... WITH ORDINALITY`` on
PostgreSQL, ``SELECT ... UNION ALL`` elsewhere — so each row comes back once per
key the database's ``=`` matched, with that key's position (:func:`lookup`,
:func:`aggregate`). The key's side of the comparison is the same bound value the
``IN`` list would send (same type, same coercibility), the column's side the
same column or transformed expression, on the left as in ``IN``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Select,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    table,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.expression import FromClause, column
from sqlalchemy.sql.selectable import Join
from sqlalchemy.sql.sqltypes import _resolve_value_to_type
from sqlalchemy.types import TypeEngine, UserDefinedType

from connectors._base import Aggregate, Filter, LookupTransform
from connectors.errors import QueryError
from connectors.sql import statements
from connectors.sql.compiled import bucket
from connectors.sql.expressions import transformed

INT = "int"
"""A column whose ``=`` with ``int`` keys is Python's."""
TEXT = "text"
"""A column (or transformed expression) whose ``=`` with ``str`` keys is Python's."""
OTHER = ""
"""Any other: the database says which key a row matched."""

POS = "custview_pos__"
"""The position of a key in its lookup's keys (the derived table's column)."""
KEY = "custview_key__"
"""The key itself (the derived table's column)."""
KEYS = "custview_keys__"
"""The derived table's name (and the prefix of its parameters)."""
PART = "custview_part__"
"""Which lookup a row answers, in a statement for several."""

_SQLITE_INT = re.compile(r"INT")
_SQLITE_TEXT = re.compile(r"CHAR|CLOB|TEXT")
_MYSQL_INTS = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
_MYSQL_STRINGS = frozenset({"varchar", "text", "tinytext", "mediumtext", "longtext"})
_MYSQL_NO_PAD_BIN = re.compile(r"^utf8(mb3|mb4)?_(nopad_bin|0900_bin)$")
_PG_INTS = frozenset({"int2", "int4", "int8"})
_PG_TEXTS = frozenset({"text", "varchar"})


# --- what a column is ----------------------------------------------------------------------


def describe(backend: str, table_name: str, schema: str | None) -> Select[Any] | None:
    """The catalog read of ``table_name``'s columns (see :func:`kinds`); None on an
    engine it does not know (every column is then :data:`OTHER`)."""
    name: BindParameter[str] = bindparam("custview_table__", table_name)
    if backend == "sqlite":
        info = (
            func.pragma_table_xinfo(name, *([schema] if schema else []))
            .table_valued("name", "type")
            .alias("custview_columns__")
        )
        master = table(
            "sqlite_master", column("type"), column("name"), column("sql"), schema=schema
        )
        made = (
            select(master.c.sql)
            .where(master.c.type == "table", func.lower(master.c.name) == func.lower(name))
            .scalar_subquery()
        )
        return select(info.c.name, info.c.type, made)
    if backend == "postgresql":
        att = table(
            "pg_attribute",
            *map(column, ("attrelid", "attname", "atttypid", "attcollation", "attnum")),
            column("attisdropped"),
            schema="pg_catalog",
        )
        typ = table("pg_type", column("oid"), column("typname"), schema="pg_catalog")
        coll = table(
            "pg_collation", column("oid"), column("collisdeterministic"), schema="pg_catalog"
        )
        parts = [func.quote_ident(schema)] if schema else []
        relation = func.to_regclass(func.concat_ws(".", *parts, func.quote_ident(name)))
        return (
            select(
                att.c.attname,
                typ.c.typname,
                func.coalesce(coll.c.collisdeterministic, True),
                func.format_type(att.c.atttypid, None),
            )
            .select_from(
                att.join(typ, typ.c.oid == att.c.atttypid).outerjoin(
                    coll, coll.c.oid == att.c.attcollation
                )
            )
            .where(att.c.attrelid == relation, att.c.attnum > 0, att.c.attisdropped.is_(False))
        )
    if backend == "mysql":
        names = ("TABLE_SCHEMA", "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "COLLATION_NAME")
        listed = table("COLUMNS", *map(column, names), schema="information_schema").c
        owner = bindparam("custview_schema__", schema) if schema else func.database()
        return select(*(listed[n] for n in names[2:])).where(
            listed["TABLE_SCHEMA"] == owner, listed["TABLE_NAME"] == name
        )
    return None


Columns = dict[str, tuple[str, str | None]]
"""Column name (lower-cased on MySQL, whose names ignore case) to its kind and, on
PostgreSQL, the type a key is cast to when joined (:func:`kinds`)."""
_PG_UNBOUNDED = {"character": "bpchar", "bit": "varbit"}
_MYSQL_COLLATION = re.compile(r"^[A-Za-z0-9_]+$")
_TYPE_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_ ."$]*(\[\])*$')


def kinds(backend: str, rows: Iterable[Sequence[Any]]) -> Columns:
    """Each column's kind (and key type), from :func:`describe`'s rows."""
    found: Columns = {}
    for name, type_name, extra, *more in rows:
        declared = str(type_name or "").lower()
        kind = OTHER
        if backend == "sqlite":
            # the affinity rules of SQLite's "Datatypes" page, in their order; a
            # COLLATE anywhere in the table's definition may change any text column's
            # ``=`` (a view or virtual table has no such definition: OTHER)
            upper = declared.upper()
            plain = isinstance(extra, str) and extra.upper().startswith("CREATE TABLE")
            if plain and _SQLITE_INT.search(upper):
                kind = INT
            elif plain and _SQLITE_TEXT.search(upper) and "COLLATE" not in extra.upper():
                kind = TEXT
        elif backend == "postgresql":
            if declared in _PG_INTS:
                kind = INT
            elif declared in _PG_TEXTS and extra:  # a deterministic collation
                kind = TEXT
        elif backend == "mysql":
            if declared in _MYSQL_INTS:
                kind = INT
            elif declared in _MYSQL_STRINGS and _MYSQL_NO_PAD_BIN.match(str(extra or "").lower()):
                kind = TEXT
        # PostgreSQL compares a key given as a literal in the column's type (``citext``:
        # ignoring case), but a typed parameter (``$1::VARCHAR``) as text: a joined key
        # is cast to the column's type (format_type: no length, nothing cut off)
        cast = str(more[0]) if more and _TYPE_NAME.match(str(more[0])) else None
        if backend == "postgresql" and cast is not None:
            # format_type(oid, NULL) names char(n) "character" and bit(n) "bit": char(1)
            # and bit(1), which cut a longer key off (and find the wrong rows)
            cast = _PG_UNBOUNDED.get(cast, cast)
        elif backend == "mysql":
            # the column's collation: a joined key compares as the column does
            coll = str(extra or "")
            cast = coll if _MYSQL_COLLATION.match(coll) else None
        found[str(name).lower() if backend == "mysql" else str(name)] = (kind, cast)
    return found


def kind_of(
    backend: str, columns: Columns | None, name: str, transform: LookupTransform
) -> str | None:
    """The kind of ``name`` compared after ``transform``; None when the table's
    columns must be read first (``columns`` is None)."""
    if transform != "exact":
        if backend == "sqlite":
            # SQLite's functions return text without affinity, compared with BINARY
            return TEXT
        if backend != "postgresql":
            return OTHER  # MySQL's keep the column's collation
    if columns is None:
        return None
    kind = columns.get(name.lower() if backend == "mysql" else name, (OTHER, None))[0]
    # a transformed PostgreSQL column is text of the column's collation
    return kind if transform == "exact" or kind == TEXT else OTHER


def cast_of(
    backend: str, columns: Columns | None, name: str, transform: LookupTransform
) -> str | None:
    """The type a joined key of ``name`` is cast to (PostgreSQL's exact lookups), or
    on MySQL the collation it is read in (the column's, which a transformed column
    keeps)."""
    if columns is None:
        return None
    if backend == "mysql":
        return columns.get(name.lower(), (OTHER, None))[1]
    if transform != "exact":
        return None
    return columns.get(name, (OTHER, None))[1]


class _Named(UserDefinedType[Any]):
    """A type known by the name the catalog gave (:func:`kinds`)."""

    cache_ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_col_spec(self, **kw: Any) -> str:
        return self.name


def _key(keys: FromClause, shape: tuple[Any, ...], cast_to: str | None) -> ColumnElement[Any]:
    key: ColumnElement[Any] = keys.c[KEY]
    if shape[0] in ("json", "json_table"):
        return key  # a JSON table's key has its type (and collation) already
    if shape[0] == "union":
        cast_to = shape[2]  # :func:`keys_table`'s
    return key if cast_to is None else cast(key, _Named(cast_to))


_AGREEING = {INT: frozenset({int}), TEXT: frozenset({str}), OTHER: frozenset()}


def agreeing(kind: str) -> frozenset[type]:
    """The key types whose Python ``==`` with a column of ``kind`` is the database's:
    a lookup whose (non-null) keys are all of it may be grouped back in Python."""
    return _AGREEING[kind]


# --- the keys as a derived table -----------------------------------------------------------


def keys_table(
    backend: str, dialect: Dialect, part: int, keys: Sequence[Any], cast_to: str | None = None
) -> tuple[Any, dict[str, Any], int]:
    """The shape of ``keys`` as a derived table (for :func:`_keys_from`), the
    parameters that fill it, and the position its first key comes back as
    (``cast_to``: :func:`cast_of`)."""
    name = f"{KEYS}{part}"
    if backend == "mysql":
        # one JSON parameter read by JSON_TABLE (MariaDB 10.6+, MySQL 8): a statement of
        # constant size whatever the keys' count; a ``str`` key is text of the column's
        # collation (as the IN list's literal, whose collation yields to the column's),
        # an ``int`` key a BIGINT (as the IN list's number)
        types = {k.__class__ for k in keys}
        if types == {str}:
            # a column without a collation is no string's: compared as a number or date;
            # LONGTEXT: TEXT would cut a key past 65,535 bytes off (and find other rows)
            text_type = "LONGTEXT" if cast_to is None else f"LONGTEXT COLLATE {cast_to}"
            held = _held_by(cast_to, keys)
            return ("json_table", text_type), {name: json.dumps(held)}, 1
        if types == {int} and all(-(2**63) <= k < 2**63 for k in keys):
            return ("json_table", "BIGINT"), {name: json.dumps(keys)}, 1
    if backend == "sqlite":
        text = _json_keys(keys, dialect)
        if text is not None:
            return ("json",), {name: text}, 0
    if backend == "postgresql":
        types = {type(k) for k in keys}
        if len(types) == 1:
            return ("array", _type_of(keys[0])), {name: list(keys)}, 1
    count = bucket(len(keys), max(len(keys), 30_000))
    padded = [*keys, *([None] * (count - len(keys)))]  # ``= NULL`` matches nothing
    types_ = tuple(_type_of(k) if backend == "postgresql" else None for k in padded)
    # MySQL's keys of mixed types are compared as bound (the IN list's literals): its
    # ``cast_to`` is a collation, and a CAST to a collation's name is no type
    union_cast = None if backend == "mysql" else cast_to
    shape = ("union", types_, union_cast)
    return shape, {f"{name}_{i}": k for i, k in enumerate(padded)}, 0


_MYSQL_CODECS = {"latin1": "cp1252", "ascii": "ascii"}
"""MySQL character sets narrower than Unicode whose repertoire a Python codec spells
(MySQL's ``latin1`` is Windows-1252); ``utf8``/``utf8mb3`` hold the BMP alone."""


def _held_by(collation: str | None, keys: Sequence[str]) -> Sequence[str | None]:
    """``keys`` with None for each that a column of ``collation`` cannot hold: JSON_TABLE
    would turn its other characters into ``?`` (and find a ``'?'`` row), where the
    database refuses to compare it at all (an illegal mix of collations); no row of
    the column can be equal to it."""
    charset = (collation or "utf8mb4").split("_", 1)[0].lower()
    if charset == "utf8mb4":
        return keys
    if charset in ("utf8", "utf8mb3"):
        return [k if not k or max(k) <= "\uffff" else None for k in keys]
    codec = _MYSQL_CODECS.get(charset)
    if codec is None:
        return keys
    held: list[str | None] = []
    for k in keys:
        try:
            k.encode(codec)
        except UnicodeEncodeError:
            held.append(None)
        else:
            held.append(k)
    return held


def _type_of(value: Any) -> TypeEngine[Any] | None:
    return None if value is None else _resolve_value_to_type(value)


def _json_keys(keys: Sequence[Any], dialect: Dialect) -> str | None:
    """``keys`` as the JSON array ``json_each`` reads them as the values the ``IN``
    list would bind (SQLAlchemy's bind processing, e.g. a datetime's text); None
    when one has no JSON form (a blob, a number JSON cannot hold)."""
    values: list[Any] = []
    for key in keys:
        if key.__class__ not in (str, int):
            processor = _resolve_value_to_type(key).dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                key = processor(key)
            if not isinstance(key, str | int | float) or (
                isinstance(key, float) and not math.isfinite(key)
            ):
                return None
            if isinstance(key, int) and not -(2**63) <= key < 2**63:
                return None
        elif key.__class__ is int and not -(2**63) <= key < 2**63:
            return None
        values.append(key)
    return json.dumps(values, ensure_ascii=False)


def _keys_from(part: int, shape: tuple[Any, ...]) -> FromClause:
    """The derived table of :func:`keys_table`'s ``shape``: columns :data:`POS`, :data:`KEY`."""
    name = f"{KEYS}{part}"
    if shape[0] == "json":
        # ``+value``: json_each's value has BLOB affinity, which would keep a TEXT
        # column's affinity off an int key; ``+`` drops it, as a bound parameter has none
        each = func.json_each(bindparam(name)).table_valued("key", "value").alias("custview_j__")
        value: ColumnElement[Any] = literal_column("+custview_j__.value")
        return select(each.c.key.label(POS), value.label(KEY)).subquery(name)
    if shape[0] == "json_table":
        return (
            text(
                f"SELECT jt.pos AS {POS}, jt.k AS {KEY} FROM JSON_TABLE(:{name}, '$[*]' "
                f"COLUMNS(pos FOR ORDINALITY, k {shape[1]} PATH '$')) AS jt"
            )
            .columns(column(POS), column(KEY))
            .subquery(name)
        )
    if shape[0] == "array":
        keys = bindparam(name, type_=ARRAY(shape[1]))
        return func.unnest(keys).table_valued(KEY, with_ordinality=POS).render_derived(name=name)
    branches = [
        select(literal_column(str(i)).label(POS), bindparam(f"{name}_{i}", type_=t).label(KEY))
        for i, t in enumerate(shape[1])
    ]
    return (branches[0] if len(branches) == 1 else union_all(*branches)).subquery(name)


class _CrossJoin(Join):
    """``left CROSS JOIN right ON ...``: SQLite keeps the left table the outer loop."""

    inherit_cache = True


@compiles(_CrossJoin)
def _cross_join(element: _CrossJoin, compiler: Any, **kw: Any) -> str:
    sql: str = compiler.visit_join(element, **kw)
    name = element.left.name  # type: ignore[attr-defined]
    return sql.replace(f" {name} JOIN ", f" {name} CROSS JOIN ", 1)


MATCHED = "custview_matched__"
"""The compared value of a row (SQLite: the matched rows' column)."""


def _join(
    part: int,
    keys: FromClause,
    shape: tuple[Any, ...],
    tbl: FromClause,
    key: ColumnElement[Any],
    cast_to: str | None,
    where: Sequence[Any] = (),
) -> tuple[FromClause, Sequence[Any]]:
    """The keys joined to the table (and the conditions left for the outer WHERE).

    On SQLite the table is first cut to the rows whose ``key`` is ``IN`` the keys
    (``WITH m AS MATERIALIZED (SELECT *, key FROM tbl WHERE key IN (...))``: an
    index search per key on an indexed column, one scan of an unindexed column or a
    view), then the keys, the outer loop (``CROSS JOIN``), search those rows through
    the automatic index SQLite builds on them: never a table scanned per key, nor
    the keys scanned per row (either is quadratic)."""
    if shape[0] != "json":
        return keys.join(tbl, key == _key(keys, shape, cast_to)), where
    listed = func.json_each(bindparam(f"{KEYS}{part}")).table_valued("value").alias("custview_l__")
    plus: ColumnElement[Any] = literal_column("+custview_l__.value")
    matched = (
        select(literal_column("*"), key.label(MATCHED))
        .select_from(tbl)
        .where(key.in_(select(plus).select_from(listed)), *where)
        .cte(f"custview_m__{part}")
        .prefix_with("MATERIALIZED")
    )
    return _CrossJoin(keys, matched, matched.c[MATCHED] == keys.c[KEY]), ()


# --- statements ----------------------------------------------------------------------------


@lru_cache(maxsize=256)
def lookup(
    table_name: str,
    schema: str | None,
    parts: tuple[tuple[str, LookupTransform, tuple[Any, ...], str | None], ...],
    columns: tuple[str, ...],
) -> Select[Any]:
    """``SELECT columns, [part,] k.pos FROM keys k JOIN tbl ON transformed(col) = k.key``
    for each part (``(column, transform, shape, cast)``), ``UNION ALL``: a row once per
    key (of each part) it matched, with its position (and the part's index)."""
    tbl = statements.table_ref(table_name, schema)
    selects = []
    for i, (name, transform, shape, cast_to) in enumerate(parts):
        keys = _keys_from(i, shape)
        key = transformed(statements.col(name), transform)
        which: list[ColumnElement[Any]] = []
        if len(parts) > 1:
            which.append(literal_column(str(i)).label(PART))
        selects.append(
            select(
                *map(statements.col, columns), *which, keys.c[POS].label(statements.KEY_LABEL)
            ).select_from(_join(i, keys, shape, tbl, key, cast_to)[0])
        )
    return selects[0] if len(selects) == 1 else union_all(*selects)  # type: ignore[return-value]


def aggregate(
    table_name: str,
    schema: str | None,
    group_by: Sequence[str],
    aggregates: Sequence[Aggregate],
    filters: Sequence[Filter],
    keyed: int,
    shape: tuple[Any, ...],
    cast_to: str | None,
) -> tuple[Select[Any], list[str]]:
    """``statements.aggregate`` with ``filters[keyed]`` (an ``in`` filter on a
    grouped column) joined as a derived table of keys: one group per listed key (its
    position in the grouped column's place, ordered by it), holding the rows the
    database's ``=`` matched to that key."""
    listed = filters[keyed].column
    keys = _keys_from(0, shape)
    groups = statements.unique(group_by)
    names = list(groups)
    exprs: list[ColumnElement[Any]] = [
        keys.c[POS] if g == listed else statements.col(g) for g in groups
    ]
    for agg in aggregates:
        name = agg.alias or (f"{agg.fn}_{agg.column}" if agg.column else agg.fn)
        if name in names:
            raise QueryError(f"aggregate name '{name}' is used twice")
        names.append(name)
        exprs.append(statements.aggregate_expr(agg).label(name))
    tbl = statements.table_ref(table_name, schema)
    conditions = [statements.condition(f) for i, f in enumerate(filters) if i != keyed]
    joined, others = _join(0, keys, shape, tbl, statements.col(listed), cast_to, conditions)
    stmt = select(*exprs).select_from(joined)
    if others:
        stmt = stmt.where(*others)
    grouped = exprs[: len(groups)]
    return stmt.group_by(*grouped).order_by(*grouped), names
