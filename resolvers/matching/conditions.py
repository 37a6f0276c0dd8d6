"""Reads the ``sql_condition`` of a Splink comparison level as a Python predicate.

A trained Splink model describes each comparison level by the SQL its
backend runs. To score pairs in-process with the same parameters, the small
dialect our training writes is interpreted here: column equality, ``IS NULL``,
string-similarity functions against a threshold, combined with ``AND``/``OR``
and parentheses, plus ``ELSE``. SQL's NULL semantics hold: a comparison with
a missing value is not true. Anything else fails loudly, naming the text,
rather than silently scoring differently from Splink.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping

from rapidfuzz.distance import DamerauLevenshtein, Jaro, JaroWinkler, Levenshtein

__all__ = ["FUNCTIONS", "ConditionError", "Predicate", "Record", "compile_condition"]

Record = Mapping[str, object]
Memo = dict[tuple[str, str, str], float]
Predicate = Callable[[Record, Record, Memo], bool]
"""(left record, right record, per-pair memo of similarity values) -> level applies."""


class ConditionError(ValueError):
    """A ``sql_condition`` this evaluator cannot interpret."""

    def __init__(self, condition: str, reason: str) -> None:
        super().__init__(f"unsupported sql_condition {condition!r}: {reason}")
        self.condition = condition


def _similarity(fn: Callable[..., float]) -> Callable[[str, str], float]:
    """DuckDB scores an empty string 0 against anything, rapidfuzz scores "" vs "" 1."""
    return lambda a, b: fn(a, b) if a and b else 0.0


def _distance(fn: Callable[..., int]) -> Callable[[str, str], float]:
    return lambda a, b: float(fn(a, b))


FUNCTIONS: dict[str, Callable[[str, str], float]] = {
    "jaro_winkler_similarity": _similarity(JaroWinkler.similarity),
    "jaro_winkler": _similarity(JaroWinkler.similarity),
    "jaro_winkler_sim": _similarity(JaroWinkler.similarity),
    "jaro_similarity": _similarity(Jaro.similarity),
    "jaro": _similarity(Jaro.similarity),
    "jaro_sim": _similarity(Jaro.similarity),
    "levenshtein": _distance(Levenshtein.distance),
    "damerau_levenshtein": _distance(DamerauLevenshtein.distance),
}
"""SQL function name -> its Python twin, as DuckDB defines it."""
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<col>"[^"]+"|`[^`]+`|[A-Za-z_][A-Za-z0-9_]*_[lr]\b(?!\s*\())
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)
      | (?P<op>>=|<=|<>|!=|=|>|<)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ConditionError(text, f"unexpected text at {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append((kind, value.strip('"`') if kind == "col" else value))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def fail(self, reason: str) -> ConditionError:
        return ConditionError(self.text, reason)

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> str:
        got_kind, got = self.peek()
        if got_kind != kind or (value is not None and got.upper() != value):
            raise self.fail(f"expected {value or kind}, found {got or 'the end'!r}")
        self.pos += 1
        return got

    def keyword(self, word: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.upper() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.pos != len(self.tokens):
            raise self.fail(f"unexpected {self.peek()[1]!r}")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda a, b, memo: any(part(a, b, memo) for part in parts)

    def conjunction(self) -> Predicate:
        parts = [self.atom()]
        while self.keyword("AND"):
            parts.append(self.atom())
        if len(parts) == 1:
            return parts[0]
        return lambda a, b, memo: all(part(a, b, memo) for part in parts)

    def atom(self) -> Predicate:
        kind, value = self.peek()
        if kind == "punct" and value == "(":
            self.pos += 1
            inner = self.disjunction()
            self.take("punct", ")")
            return inner
        if kind == "col":
            return self.column_test()
        if kind == "word" and value.lower() in FUNCTIONS:
            return self.function_test()
        raise self.fail(f"unknown expression at {value or 'the end'!r}")

    def column(self) -> tuple[str, str]:
        """A ``name_l``/``name_r`` column as (base name, side)."""
        name = self.take("col")
        if not (name.endswith("_l") or name.endswith("_r")):
            raise self.fail(f"column {name!r} is not a _l/_r column")
        return name[:-2], name[-1]

    def column_test(self) -> Predicate:
        left = self.column()
        if self.keyword("IS"):
            negate = self.keyword("NOT")
            self.take("word", "NULL")
            if negate:
                raise self.fail("IS NOT NULL is not supported")
            return _is_null(*left)
        self.take("op", "=")
        right = self.column()
        return _equal(left, right)

    def function_test(self) -> Predicate:
        name = self.take("word").lower()
        self.take("punct", "(")
        left = self.column()
        self.take("punct", ",")
        right = self.column()
        self.take("punct", ")")
        op = self.take("op")
        if op not in _OPERATORS:
            raise self.fail(f"operator {op!r} is not supported")
        threshold = float(self.take("num"))
        return _threshold(name, left, right, _OPERATORS[op], threshold)


def _value(record: Record, column: str) -> str | None:
    value = record.get(column)
    return None if value is None else str(value)


def _pick(a: Record, b: Record, col: tuple[str, str]) -> str | None:
    return _value(a if col[1] == "l" else b, col[0])


def _is_null(column: str, side: str) -> Predicate:
    return lambda a, b, memo: (a if side == "l" else b).get(column) is None


def _equal(left: tuple[str, str], right: tuple[str, str]) -> Predicate:
    def test(a: Record, b: Record, memo: Memo) -> bool:
        x, y = _pick(a, b, left), _pick(a, b, right)
        return x is not None and x == y

    return test


def _threshold(
    name: str,
    left: tuple[str, str],
    right: tuple[str, str],
    compare: Callable[[float, float], bool],
    threshold: float,
) -> Predicate:
    function = FUNCTIONS[name]
    key = (name, left[0] + left[1], right[0] + right[1])

    def test(a: Record, b: Record, memo: Memo) -> bool:
        value = memo.get(key)
        if value is None:
            x, y = _pick(a, b, left), _pick(a, b, right)
            if x is None or y is None:
                return False
            value = memo[key] = function(x, y)
        return compare(value, threshold)

    return test


def compile_condition(condition: str) -> Predicate | None:
    """The predicate for ``condition``; None for ``ELSE`` (always applies)."""
    if condition.strip().upper() == "ELSE":
        return None
    return _Parser(condition).parse()
