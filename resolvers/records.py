"""Source records as the resolvers see them, and their stable references.

A reference ``source/table/key`` names one record in one system; a customer
id is the opaque form of its canonical member's reference.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors import QueryError, Row
from resolvers.coerce import coerce
from resolvers.model import MemberSpec

_ID_PREFIX = "cus_"


def _datetime(value: Any) -> dt.datetime | None:
    parsed = coerce(value, "datetime")
    return parsed if isinstance(parsed, dt.datetime) else None


@dataclass(frozen=True, slots=True)
class RecordRef:
    source: str
    table: str
    key: str
    _hash: int = field(init=False, repr=False, compare=False)
    text: str = field(init=False, repr=False, compare=False)
    """``str(ref)``, ``source/table/key``, made with the reference: an attribute, where
    ``str()`` is a Python call (a customer 360's provenance shows a dozen)."""

    def __post_init__(self) -> None:
        # a graph node and dict key while stitching, hashed ~a thousand times a page:
        # the generated __hash__ built and hashed a tuple each time
        object.__setattr__(self, "_hash", hash((self.source, self.table, self.key)))
        object.__setattr__(self, "text", f"{self.source}/{self.table}/{self.key}")

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[RecordRef], tuple[str, str, str]]:
        # rebuilt through the constructor: a str's hash differs between processes
        return (RecordRef, (self.source, self.table, self.key))

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> RecordRef:
        parts = text.split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise QueryError(
                f"'{text}' is not a source record reference; write it as source/table/key, "
                f"e.g. crm/contacts/42"
            )
        return cls(*parts)

    def customer_id(self) -> str:
        return customer_id_of(self.text)

    @classmethod
    def from_customer_id(cls, customer_id: str) -> RecordRef:
        if not customer_id.startswith(_ID_PREFIX):
            raise QueryError(f"'{customer_id}' is not a customer id")
        raw = customer_id[len(_ID_PREFIX) :]
        try:
            text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise QueryError(f"'{customer_id}' is not a customer id") from None
        return cls.parse(text)


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def customer_id_of(ref: str) -> str:
    """The customer id named by the record whose reference's text is ``ref``."""
    # base64.urlsafe_b64encode without its two Python calls (an export names every customer)
    encoded = binascii.b2a_base64(ref.encode(), newline=False).translate(_URLSAFE)
    return _ID_PREFIX + encoded.decode().rstrip("=")


@dataclass(slots=True, init=False)
class Record:
    """One member row, with the member spec that explains its columns."""

    member: MemberSpec
    rank: int
    row: Row
    key: Any = field(repr=False, compare=False)
    """The row's key (``row[member.key]``), read with the record: an attribute, where
    a property is a Python call (a page of 50 asked ~800 times)."""
    _ref: RecordRef | None = field(default=None, repr=False, compare=False)

    def __init__(self, member: MemberSpec, rank: int, row: Row) -> None:
        self.member = member
        self.rank = rank
        self.row = row
        self.key = row[member.key]
        self._ref = None

    @property
    def ref(self) -> RecordRef:
        # asked for many times per record while stitching (graph nodes, dict keys)
        if self._ref is None:
            self._ref = RecordRef(self.member.source, self.member.table, str(self.key))
        return self._ref

    def ref_text(self) -> str:
        """``str(self.ref)``, without making the reference."""
        if self._ref is not None:
            return self._ref.text
        return self.member.ref_prefix + str(self.key)

    def order(self) -> tuple[int, int, int | str]:
        """Member rank, then key (numbers before text): the order of listing."""
        key = self.key
        if key.__class__ is int or isinstance(key, int):  # an int key without the call
            return (self.rank, 0, key)
        return (self.rank, 1, str(key))

    def created(self) -> float | None:
        """When the source created the record (POSIX seconds), if the member says."""
        column = self.member.created_column
        value = _datetime(self.row.get(column)) if column else None
        return value.timestamp() if value is not None else None

    def seniority(self) -> tuple[int, float, tuple[int, int, int | str]]:
        """Canonical order within a customer: the oldest record first (by the
        source's creation time; records without one last), then :meth:`order`.

        The canonical record names the customer (its id), so a customer keeps
        its id when newer records join it; when two customers merge, the older
        one's id survives and the other's still resolves to it."""
        created = self.created()
        return (0 if created is not None else 1, created or 0.0, self.order())


def canonical(records: Sequence[Record]) -> Record:
    """The record that names a customer: the oldest (see :meth:`Record.seniority`)."""
    if len(records) == 1:
        return records[0]
    return min(records, key=Record.seniority)
