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
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from resolvers.matching.conditions import Memo, Predicate, Record, compile_condition

__all__ = ["Contribution", "Level", "MatchModel", "MatchScore", "ModelError"]

_CLAMP = 1e-300
"""Splink clamps m and u to this before taking the log."""
_NOT_OBSERVED = "level not observed in training dataset"
_NOT_OBSERVED_VALUE = 1e-6
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


def _level(comparison: str, raw: Mapping[str, Any]) -> Level:
    condition = raw.get("sql_condition")
    if not isinstance(condition, str):
        raise ModelError(f"comparison {comparison!r}: a level has no sql_condition")
    label = str(raw.get("label_for_charts") or condition)
    if raw.get("tf_adjustment_column"):
        raise ModelError(f"{comparison!r} / {label!r}: term frequency adjustments are unsupported")
    is_null = bool(raw.get("is_null_level", False))
    if is_null:
        weight = 0.0
    else:
        what = f"{comparison!r} / {label!r}"
        m = _probability(raw.get("m_probability"), f"{what}: m_probability")
        u = _probability(raw.get("u_probability"), f"{what}: u_probability")
        weight = math.log2(max(m, _CLAMP) / max(u, _CLAMP))
    return Level(label, condition, weight, is_null, compile_condition(condition))


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

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings: dict[str, Any] = json.loads(json.dumps(settings))
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
        return _Comparison(name, tuple(_level(name, level) for level in levels))

    @classmethod
    def load(cls, path: Path | str) -> MatchModel:
        """Reads a model JSON file as Splink's ``save_model_to_json`` writes it."""
        with Path(path).open(encoding="utf-8") as f:
            return cls(json.load(f))

    def to_splink(self) -> dict[str, Any]:
        """The settings dict, unchanged, for Splink or for saving."""
        return json.loads(json.dumps(self.settings))  # type: ignore[no-any-return]

    def save(self, path: Path | str) -> None:
        text = json.dumps(self.settings, indent=4) + "\n"
        Path(path).write_text(text, encoding="utf-8")

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
        for comparison in self.comparisons:
            level = comparison.level(a, b, memo)
            weight += level.weight
            contributions.append(Contribution(comparison.name, level.label, level.weight))
        return MatchScore(weight, _to_probability(weight), tuple(contributions))

    def weight(self, a: Record, b: Record) -> float:
        """Just the match weight: what bulk scoring needs, without the explanation."""
        weight = self.prior_weight
        memo: Memo = {}
        for comparison in self.comparisons:
            weight += comparison.level(a, b, memo).weight
        return weight
