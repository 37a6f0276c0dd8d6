"""The SQLAlchemy API that compiled statements lean on, pinned.

:mod:`connectors.sql.compiled` keys its compilations by SQLAlchemy's cache key,
which SQLAlchemy makes only through the underscored
``ClauseElement._generate_cache_key()`` (its public :class:`CacheKey` has no public
maker). If an upgrade renames it or changes what it returns, these fail and say
so, rather than every direct SQLite statement failing at run time.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, column, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.expression import CacheKey

from connectors.sql.compiled import CompiledStatements, bucket

_TABLE = Table("t", MetaData(), Column("id", Integer), Column("email", String))


class _Uncached(ColumnClause[int]):
    inherit_cache = False  # a construct SQLAlchemy cannot cache


def _lookup(email: str, ids: list[int]) -> object:
    return select(_TABLE.c.id).where(_TABLE.c.email == email, _TABLE.c.id.in_(ids))


def test_sqlalchemy_still_makes_the_cache_keys_compiled_statements_read() -> None:
    one, two = _lookup("a@example.com", [1, 2]), _lookup("b@example.com", [3])
    assert hasattr(one, "_generate_cache_key"), (
        "SQLAlchemy no longer has ClauseElement._generate_cache_key(): "
        "connectors/sql/compiled.py must key its compilations another way"
    )
    first, second = one._generate_cache_key(), two._generate_cache_key()
    assert isinstance(first, CacheKey) and isinstance(second, CacheKey)
    assert first.key == second.key, "one shape, one key, whatever the values"
    assert [b.value for b in second.bindparams] == ["b@example.com", [3]]
    other = select(_TABLE.c.email).where(_TABLE.c.id == 1)._generate_cache_key()
    assert other is not None and other.key != first.key


def test_a_construct_sqlalchemy_cannot_cache_has_no_key() -> None:
    statement = select(_Uncached("x")).where(column("y") == 1)
    assert statement._generate_cache_key() is None


def test_one_shape_is_compiled_once_and_sent_with_each_statements_values() -> None:
    statements = CompiledStatements(sqlite.dialect(), max_keys=999)
    first = statements.render(_lookup("a@example.com", [1, 2]))
    second = statements.render(_lookup("b@example.com", [3, 4]))
    assert first[0] == second[0]
    assert (first[1], second[1]) == (("a@example.com", 1, 2), ("b@example.com", 3, 4))
    assert len(statements._compiled) == 1


def test_statements_sqlalchemy_cannot_cache_leave_the_cached_plans_alone() -> None:
    statements = CompiledStatements(sqlite.dialect(), max_keys=999, size=4)
    cached = statements.render(_lookup("a@example.com", [1, 2]))
    plans = dict(statements._plans)
    for i in range(20):  # each compiled anew: its plan would take a cached one's place
        uncached = select(_Uncached("x")).where(column("y") == i, column("z").in_([i, i + 1]))
        sql, args = statements.render(uncached)
        assert (sql, args) == ("SELECT x \nWHERE y = ? AND z IN (?, ?)", (i, i, i + 1))
    assert statements._plans == plans
    assert statements.render(_lookup("b@example.com", [3, 4])) == (
        cached[0],
        ("b@example.com", 3, 4),
    )


def test_a_lone_in_list_is_padded_to_its_bucket_as_several_lists_are() -> None:
    """A lookup's one ``IN`` list takes its own short way through the padding; it
    pads exactly as the general rule does (never past ``max_keys``)."""
    statements = CompiledStatements(sqlite.dialect(), max_keys=40)
    lone = select(_TABLE.c.id).where(_TABLE.c.id.in_(bindparam("ids", expanding=True)))
    for count in range(1, 60):
        ids = list(range(count))
        sql, args = statements.render(lone, {"ids": ids})
        size = bucket(count, 40)
        assert args == (*ids, *[ids[-1]] * (size - count)), count
        assert sql.count("?") == len(args)
        general = statements._padded((count,))
        assert general == (len(args),), count
