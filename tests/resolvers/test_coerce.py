"""Coercion to the model's types: the fast forms give what the plain ones give."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from resolvers.coerce import as_utc, coerce, converter
from resolvers.model import FieldType

OFFSETS = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))])


def _same(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    """Equal, and in the same zone, fold and type (``==`` looks at none of those)."""
    if a is None or b is None:
        return a is b
    return (a, a.tzinfo, a.fold, type(a)) == (b, b.tzinfo, b.fold, type(b))


@given(naive=st.datetimes(), fold=st.sampled_from([0, 1]))
def test_as_utc_is_replacing_the_zone(naive: dt.datetime, fold: int) -> None:
    naive = naive.replace(fold=fold)
    assert _same(as_utc(naive), naive.replace(tzinfo=dt.UTC))


@given(
    when=st.datetimes(timezones=st.none() | OFFSETS),
    sep=st.sampled_from(["T", " "]),
    spec=st.sampled_from(["auto", "seconds", "microseconds"]),
    padding=st.sampled_from(["", " ", "\n"]),
)
def test_datetime_text_reads_as_iso_8601_in_utc(
    when: dt.datetime, sep: str, spec: str, padding: str
) -> None:
    text = when.isoformat(sep=sep, timespec=spec)
    parsed = dt.datetime.fromisoformat(text)
    expected = parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    assert _same(coerce(f"{padding}{text}{padding}", "datetime"), expected)
    if when.tzinfo is dt.UTC:  # written with a Z
        assert _same(coerce(text.replace("+00:00", "Z"), "datetime"), expected)


def _plain_datetime(text: str) -> dt.datetime | None:
    """Text as a UTC datetime the plain way: trimmed, Z read as +00:00, ISO 8601."""
    try:
        parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


@given(
    text=st.one_of(
        # 19 characters (``2016-07-14 00:05:21``'s length, read in one step) of the
        # characters of dates, times and offsets, and real times so written, cut or padded
        st.text(alphabet="0123456789-:T +Z.", min_size=19, max_size=19),
        st.datetimes(timezones=st.none() | OFFSETS).map(
            lambda d: d.isoformat(sep=" ", timespec="seconds")
        ),
        st.tuples(
            st.datetimes().map(lambda d: d.isoformat(timespec="minutes")),
            st.sampled_from(["", "+01", "Z", ":00", "  ", "+00:00", "-0530"]),
            st.sampled_from(["", " "]),
        ).map("".join),
    )
)
def test_datetime_text_of_any_shape_reads_as_the_plain_way(text: str) -> None:
    if text.strip():
        assert _same(coerce(text, "datetime"), _plain_datetime(text))
    assert _same(converter("datetime")(text), _plain_datetime(text))


def test_blank_or_unreadable_times_are_none() -> None:
    for value in ("", "  ", "yesterday", "2026-13-01", 3.5):
        assert coerce(value, "datetime") is None
    assert _same(coerce(dt.date(2026, 1, 2), "datetime"), dt.datetime(2026, 1, 2, tzinfo=dt.UTC))


@given(
    value=st.one_of(
        st.text(max_size=12),
        st.sampled_from(["", " ", "2024-01-01", " 2024-01-01 10:00:00 ", "2025-12-31T23:00:00Z"]),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.dates(),
        st.datetimes(timezones=st.one_of(st.none(), st.just(dt.UTC))),
    ),
    type_=st.sampled_from(["string", "id", "int", "float", "decimal", "bool", "date", "datetime"]),
)
def test_a_columns_converter_coerces_as_coerce_does(value: object, type_: FieldType) -> None:
    assert repr(converter(type_)(value)) == repr(coerce(value, type_))


def test_an_infinite_or_undefined_number_is_no_integer() -> None:
    """A source's ``inf`` (float or decimal) reads as no value, as other unreadable
    values do; it raised OverflowError and ended the golden record or export."""
    from decimal import Decimal

    for value in (float("inf"), float("-inf"), Decimal("Infinity"), float("nan")):
        assert coerce(value, "int") is None, value
        assert converter("int")(value) is None, value


@given(
    value=st.one_of(
        st.none(),
        st.text(max_size=12),
        st.sampled_from(["", " ", "12", " 3.5 ", "2024-01-01", "2025-12-31T23:00:00Z"]),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.dates(),
    ),
    type_=st.sampled_from(["string", "id", "int", "float", "decimal", "bool", "date", "datetime"]),
)
def test_a_golden_fields_reader_coerces_its_column_as_coerce_does(
    value: object, type_: FieldType
) -> None:
    from resolvers.golden import reader
    from resolvers.model import FieldSpec, MemberSpec

    member = MemberSpec(source="s", table="t", fields={"f": "col"})
    read = reader(member, "f", FieldSpec(type=type_), None)
    assert repr(read({"col": value})) == repr(coerce(value, type_))
    assert read({}) is None
