"""A trained Fellegi-Sunter model, scored in plain Python.

Splink trains the model and resolves in batch; at read time custview scores
one customer's few candidate records itself, because a Splink call costs tens
of milliseconds of engine overhead while this costs microseconds. Both read
the same JSON file (what Splink's ``save_model_to_json`` writes), and both
compute the weight the same way, so the live answer and the batch answer
agree to floating-point rounding:

    match weight = log2(λ / (1 - λ)) + Σ log2(m / u) of the level each comparison hits
    probability  = 2^w / (1 + 2^w)

where λ is ``probability_two_random_records_match`` and a null level adds 0.
A level with a term-frequency adjustment on column c (Splink's
``tf_adjustment_column``) adds ``w · (log2 u_exact - log2 max(f, tf_minimum_u_value))``
where f is the frequency of the records' value of c in the model's
``TermFrequencies`` and u_exact the u of the comparison's exact level on c;
a value missing from the table adds nothing (Splink's NULL frequency).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from resolvers.matching.conditions import Memo, Predicate, Record, compile_condition
from resolvers.matching.frequencies import TermFrequencies, TermFrequencyError, tf_path

__all__ = ["Contribution", "Level", "MatchModel", "MatchScore", "ModelError"]

_CLAMP = 1e-300
"""Splink clamps m and u to this before taking the log."""
_NOT_OBSERVED = "level not observed in training dataset"
_NOT_OBSERVED_VALUE = 1e-6
MAX_PRIOR = 0.5
"""Cap on a rescaled λ (a population of a handful of records)."""
PRIOR = "prior"
"""The comparison name of the prior's contribution."""


class ModelError(ValueError):
    """A model file this evaluator cannot use."""


class Contribution(NamedTuple):
    """One term of the match weight: which comparison, which level it hit, its log2 weight."""

    comparison: str
    level: str
    weight: float


@dataclass(frozen=True, slots=True)
class MatchScore:
    """How alike two records are. ``contributions`` start with the prior and sum to ``weight``."""

    weight: float
    probability: float
    contributions: tuple[Contribution, ...]


@dataclass(frozen=True, slots=True)
class Level:
    label: str
    sql_condition: str
    weight: float
    is_null: bool
    test: Predicate | None
    """None for ELSE."""
    tf: _TfAdjustment | None = None


@dataclass(frozen=True, slots=True)
class _TfAdjustment:
    column: str
    weight: float
    minimum_u: float
    log2_u_exact: float

    def term(self, a: Record, b: Record, frequencies: TermFrequencies) -> float:
        """Splink's ``_tf_adjustment_sql``: 0 when neither value has a frequency."""
        left = frequencies.frequency(self.column, a.get(self.column))
        right = frequencies.frequency(self.column, b.get(self.column))
        if left is None:
            if right is None:
                return 0.0
            left = right
        frequency = max(left, right if right is not None else left, self.minimum_u)
        return self.weight * (self.log2_u_exact - math.log2(frequency))


@dataclass(frozen=True, slots=True)
class _Comparison:
    name: str
    levels: tuple[Level, ...]

    def level(self, a: Record, b: Record, memo: Memo) -> Level:
        for level in self.levels:
            if level.test is None or level.test(a, b, memo):
                return level
        raise ModelError(f"comparison {self.name!r}: no level applies and there is no ELSE")


def _probability(value: object, what: str) -> float:
    if value == _NOT_OBSERVED:
        return _NOT_OBSERVED_VALUE
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"{what} is missing or not a number (is the model trained?)")
    return float(value)


_EXACT = re.compile(r'^\s*"?([A-Za-z_][A-Za-z0-9_]*)_l"?\s*=\s*"?([A-Za-z_][A-Za-z0-9_]*)_r"?\s*$')


def _exact_column(condition: str) -> str | None:
    """``c`` when ``condition`` is ``"c_l" = "c_r"``."""
    match = _EXACT.match(condition)
    return match.group(1) if match and match.group(1) == match.group(2) else None


def _u_exact(comparison: str, raw_levels: list[Mapping[str, Any]], column: str) -> float:
    """Splink's ``_u_probability_corresponding_to_exact_match``: the u of the
    comparison's level that is an exact match on ``column`` alone."""
    for raw in raw_levels:
        if _exact_column(str(raw.get("sql_condition", ""))) == column:
            u = _probability(raw.get("u_probability"), f"{comparison!r}: exact {column} u")
            return u
    raise ModelError(
        f"comparison {comparison!r}: a term frequency adjustment on {column!r} needs"
        f' an exact level "{column}_l" = "{column}_r" in the same comparison'
    )


def _level(comparison: str, raw: Mapping[str, Any], raw_levels: list[Mapping[str, Any]]) -> Level:
    condition = raw.get("sql_condition")
    if not isinstance(condition, str):
        raise ModelError(f"comparison {comparison!r}: a level has no sql_condition")
    label = str(raw.get("label_for_charts") or condition)
    is_null = bool(raw.get("is_null_level", False))
    tf: _TfAdjustment | None = None
    if is_null:
        weight = 0.0
    else:
        what = f"{comparison!r} / {label!r}"
        m = _probability(raw.get("m_probability"), f"{what}: m_probability")
        u = _probability(raw.get("u_probability"), f"{what}: u_probability")
        weight = math.log2(max(m, _CLAMP) / max(u, _CLAMP))
        column = raw.get("tf_adjustment_column")
        tf_weight = raw.get("tf_adjustment_weight", 1.0)
        if column and tf_weight and condition.strip().upper() != "ELSE":
            if raw.get("disable_tf_exact_match_detection"):
                u_exact = u
            else:
                u_exact = _u_exact(comparison, raw_levels, str(column))
            tf = _TfAdjustment(
                str(column),
                float(tf_weight),
                float(raw.get("tf_minimum_u_value", 0.0)),
                math.log2(u_exact),
            )
    return Level(label, condition, weight, is_null, compile_condition(condition), tf)


def _prior_weight(probability: float) -> float:
    """Splink's ``prob_to_match_weight``."""
    return math.log2(probability / (1 - probability))


def _to_probability(weight: float) -> float:
    """Splink's numerically stable ``2^w / (1 + 2^w)``."""
    if weight >= 0:
        return 1.0 / (1.0 + math.pow(2.0, -weight))
    power = math.pow(2.0, weight)
    return power / (1.0 + power)


class MatchModel:
    """A Splink-trained model that scores pairs of match records in-process."""

    def __init__(
        self, settings: Mapping[str, Any], term_frequencies: TermFrequencies | None = None
    ) -> None:
        self.settings: dict[str, Any] = json.loads(json.dumps(settings))
        self.term_frequencies = term_frequencies or TermFrequencies()
        prior = self.settings.get("probability_two_random_records_match")
        if not isinstance(prior, int | float) or not 0 < prior < 1:
            raise ModelError("probability_two_random_records_match must be in (0, 1)")
        self.prior = float(prior)
        self.prior_weight = _prior_weight(self.prior)
        comparisons = self.settings.get("comparisons")
        if not isinstance(comparisons, list) or not comparisons:
            raise ModelError("the model has no comparisons")
        self.comparisons = tuple(self._comparison(raw) for raw in comparisons)

    @staticmethod
    def _comparison(raw: Mapping[str, Any]) -> _Comparison:
        name = str(raw.get("output_column_name") or raw.get("comparison_description") or "")
        levels = raw.get("comparison_levels")
        if not name or not isinstance(levels, list) or not levels:
            raise ModelError(f"comparison {name or raw!r} has no name or no levels")
        return _Comparison(name, tuple(_level(name, level, levels) for level in levels))

    @property
    def tf_columns(self) -> list[str]:
        """Columns whose term frequencies the model's levels read."""
        columns = (lv.tf.column for c in self.comparisons for lv in c.levels if lv.tf)
        return list(dict.fromkeys(columns))

    @classmethod
    def load(cls, path: Path | str) -> MatchModel:
        """Reads a model JSON file as Splink's ``save_model_to_json`` writes it, and
        the term frequencies beside it (``tf_path``) when the model uses them."""
        with Path(path).open(encoding="utf-8") as f:
            model = cls(json.load(f))
        if model.tf_columns:
            where = tf_path(path)
            if not where.is_file():
                raise ModelError(
                    f"{path}: the model adjusts for term frequencies of"
                    f" {', '.join(model.tf_columns)} but {where} is missing"
                    " (it is written next to the model by training)"
                )
            try:
                model.term_frequencies = TermFrequencies.load(where)
            except TermFrequencyError as exc:
                raise ModelError(str(exc)) from exc
        return model

    def with_term_frequencies(self, term_frequencies: TermFrequencies) -> MatchModel:
        """The same parameters over another population's term frequencies.

        λ is the chance that two random records match, so it shrinks as the
        population grows (each record has about as many true partners in a
        population of 5k as in one of 1M). When both tables know how many
        records they counted, λ is rescaled from this model's population N0 to
        the new one N: ``λ' = min(λ · (N0 - 1) / (N - 1), MAX_PRIOR)``; the
        rescaled settings are what ``to_splink`` hands Splink, so both agree.
        """
        settings = self.to_splink()
        old, new = self.term_frequencies.records, term_frequencies.records
        if old and new and old != new:
            prior = self.prior * max(old - 1, 1) / max(new - 1, 1)
            settings["probability_two_random_records_match"] = min(prior, MAX_PRIOR)
        return MatchModel(settings, term_frequencies)

    def to_splink(self) -> dict[str, Any]:
        """The settings dict, unchanged, for Splink or for saving."""
        return json.loads(json.dumps(self.settings))  # type: ignore[no-any-return]

    def save(self, path: Path | str) -> None:
        """Writes the model JSON and, when the model uses them, its term frequencies."""
        text = json.dumps(self.settings, indent=4) + "\n"
        Path(path).write_text(text, encoding="utf-8")
        if self.tf_columns:
            self.term_frequencies.save(tf_path(path))

    @property
    def blocking_rules(self) -> list[str]:
        """The SQL of the prediction blocking rules recorded in the model."""
        rules = self.settings.get("blocking_rules_to_generate_predictions") or []
        return [r["blocking_rule"] if isinstance(r, dict) else str(r) for r in rules]

    def score(self, a: Record, b: Record) -> MatchScore:
        """The match weight and probability of records ``a`` and ``b``, explained."""
        weight = self.prior_weight
        contributions = [Contribution(PRIOR, f"λ = {self.prior:.3g}", weight)]
        memo: Memo = {}
        frequencies = self.term_frequencies
        for comparison in self.comparisons:
            level = comparison.level(a, b, memo)
            term = level.weight
            weight += level.weight
            if level.tf is not None:
                adjustment = level.tf.term(a, b, frequencies)
                weight += adjustment
                term += adjustment
            contributions.append(Contribution(comparison.name, level.label, term))
        return MatchScore(weight, _to_probability(weight), tuple(contributions))

    def weight(self, a: Record, b: Record) -> float:
        """Just the match weight: what bulk scoring needs, without the explanation."""
        weight = self.prior_weight
        memo: Memo = {}
        frequencies = self.term_frequencies
        for comparison in self.comparisons:
            level = comparison.level(a, b, memo)
            weight += level.weight
            if level.tf is not None:
                weight += level.tf.term(a, b, frequencies)
        return weight
