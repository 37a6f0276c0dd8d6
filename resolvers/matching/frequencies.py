"""Term frequencies: how common each value of a column is among the records.

Splink's term-frequency adjustment replaces, on an exact-match level, the
average u (chance that two different people agree there) by the frequency
of the very value they agree on: two records named "Eleanor Fitzgerald" say
more than two named "John Smith". The table is a property of the population
being matched, not of the model, so it travels beside the model file
(``<model>.tf.json``), computed from the records the model was trained on;
a batch run may recompute it from the records it resolves and save it for
read time (``TermFrequencies.from_records(...).save(...)``).

A value the table does not hold gets no adjustment (the level's own u), in
Splink (a NULL frequency adds 0) and in ``MatchModel`` alike.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FORMAT", "TermFrequencies", "TermFrequencyError", "tf_path"]

FORMAT = "custview-term-frequencies"
VERSION = 1


class TermFrequencyError(ValueError):
    """A term-frequency file custview cannot read."""


def tf_path(model_path: Path | str) -> Path:
    """Where the term frequencies of a model file live: ``x.json`` -> ``x.tf.json``."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}.tf.json")


@dataclass(frozen=True, slots=True)
class _Column:
    total: int
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class TermFrequencies:
    """``column -> value -> count`` and the number of non-null values per column;
    ``records`` is how many records were counted (None when unknown)."""

    columns: Mapping[str, _Column] = field(default_factory=dict)
    records: int | None = None

    def frequency(self, column: str, value: object) -> float | None:
        """The share of non-null ``column`` values equal to ``value``; None if the
        table does not hold it (no adjustment)."""
        table = self.columns.get(column)
        if table is None or value is None:
            return None
        count = table.counts.get(str(value))
        return None if count is None else count / table.total

    def rows(self, column: str) -> list[tuple[str, float]]:
        """``(value, frequency)`` of every value of ``column``, for Splink."""
        table = self.columns.get(column)
        if table is None:
            return []
        return [(value, count / table.total) for value, count in table.counts.items()]

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, object]], columns: Iterable[str]
    ) -> TermFrequencies:
        wanted = tuple(columns)
        counters: dict[str, Counter[str]] = {c: Counter() for c in wanted}
        seen = 0
        for record in records:
            seen += 1
            for column in wanted:
                value = record.get(column)
                if value is not None:
                    counters[column][str(value)] += 1
        return cls(
            {
                c: _Column(sum(counter.values()), dict(sorted(counter.items())))
                for c, counter in counters.items()
                if counter
            },
            seen,
        )

    @classmethod
    def load(cls, path: Path | str) -> TermFrequencies:
        where = Path(path)
        try:
            raw = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TermFrequencyError(f"{where}: cannot read term frequencies: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise TermFrequencyError(f"{where}: not a {FORMAT} file")
        if raw.get("version") != VERSION:
            raise TermFrequencyError(
                f"{where}: version {raw.get('version')!r}, this custview reads {VERSION}"
            )
        columns: dict[str, _Column] = {}
        for name, table in (raw.get("columns") or {}).items():
            counts = table.get("counts") if isinstance(table, dict) else None
            total = table.get("total") if isinstance(table, dict) else None
            if not isinstance(counts, dict) or not isinstance(total, int) or total <= 0:
                raise TermFrequencyError(f"{where}: column {name!r} needs 'total' and 'counts'")
            if not all(isinstance(n, int) and 0 < n <= total for n in counts.values()):
                raise TermFrequencyError(f"{where}: column {name!r}: counts must be 1..total")
            columns[str(name)] = _Column(total, {str(k): v for k, v in counts.items()})
        records = raw.get("records")
        if records is not None and (not isinstance(records, int) or records < 1):
            raise TermFrequencyError(f"{where}: 'records' must be a positive integer")
        return cls(columns, records)

    def save(self, path: Path | str) -> None:
        data = {
            "format": FORMAT,
            "version": VERSION,
            "records": self.records,
            "columns": {
                name: {"total": table.total, "counts": dict(table.counts)}
                for name, table in self.columns.items()
            },
        }
        Path(path).write_text(json.dumps(data, indent=0, ensure_ascii=False) + "\n", "utf-8")
