"""Probabilistic identity resolution: normalisers, match records and a
Splink-trained Fellegi-Sunter model scored in-process.

Pure functions over plain dicts: no SQL, no HTTP. The batch side (training
and bulk linking with Splink) lives in ``resolvers.matching.train`` and is
imported only by the code that runs it, so read-time scoring never loads
Splink or DuckDB.
"""

from __future__ import annotations

from resolvers.matching.conditions import ConditionError
from resolvers.matching.features import (
    BLOCKING_KEYS,
    COLUMNS,
    MatchRecord,
    blocking_keys,
    match_record,
)
from resolvers.matching.frequencies import TermFrequencies
from resolvers.matching.model import Contribution, MatchModel, MatchScore, ModelError

__all__ = [
    "BLOCKING_KEYS",
    "COLUMNS",
    "ConditionError",
    "Contribution",
    "MatchModel",
    "MatchRecord",
    "MatchScore",
    "ModelError",
    "TermFrequencies",
    "blocking_keys",
    "match_record",
]
