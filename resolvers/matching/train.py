"""Batch side of matching: train the model and link many records with Splink.

Splink (Fellegi-Sunter, m by expectation maximisation, u by random
sampling; no labels needed) runs here on DuckDB, embedded. The trained
model is saved as Splink's own JSON, which ``MatchModel`` reads for
read-time scoring. Records are plain match records (see ``features``) held
in memory for the run only; nothing but ids and probabilities comes back.

To run on Spark instead, build the linker on ``splink.SparkAPI(spark_session=...)``
and register a Spark DataFrame of the same columns (plus ``name_block``) and
the term-frequency lookups as ``_linker`` does: the settings, the training
calls and the model file are the same (see docs/identity.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resolvers.matching.features import BLOCKING_KEYS, COLUMNS, MatchRecord
from resolvers.matching.frequencies import TermFrequencies
from resolvers.matching.model import MatchModel
from resolvers.matching.settings import (
    MAX_NAME_BLOCK,
    NEUTRAL_LEVELS,
    TF_COLUMNS,
    blocking_rule_sql,
    default_settings,
)

__all__ = ["EM_BLOCKING_KEYS", "predict_pairs", "train_model"]

EM_BLOCKING_KEYS: tuple[tuple[str, ...], ...] = (("phone",), ("email",))
"""Blocking rules the m probabilities are estimated on; between them every
comparison is estimated at least once (a rule's own columns are not). Both
are contact keys, which co-residents do not share: on a ``surname + postcode``
block EM took partners (one address, two first names) for matches, and
learned that a different first name or birth date at one address was common
among one person's records."""
UNOBSERVED = 1e-6
M_FLOOR = 1e-3
"""No level's m goes below this: a disagreement costs at most about log2(1000) = 10 bits."""
DETERMINISTIC_KEYS: tuple[tuple[str, ...], ...] = (("email",), ("phone",))
DETERMINISTIC_RECALL = 0.75
"""Share of true pairs the exact email/phone rules find: sets the prior λ."""


def _linker(
    records: Sequence[MatchRecord],
    settings: dict[str, Any] | Path,
    frequencies: TermFrequencies,
    tf_columns: Sequence[str],
) -> Any:
    """A DuckDB linker over ``records`` whose term-frequency lookups are ``frequencies``
    (registered, so Splink reads the very table ``MatchModel`` reads)."""
    import pyarrow as pa  # type: ignore[import-untyped]
    from splink import DuckDBAPI, Linker

    columns = ("unique_id", "source_dataset", *COLUMNS)
    table = pa.table({c: pa.array([r.get(c) for r in records], pa.string()) for c in columns})
    names = Counter(r.get("full_name") for r in records)
    names.pop(None, None)
    table = table.append_column(
        "name_block",
        pa.array(
            [
                n if names.get(n, 0) <= MAX_NAME_BLOCK else None
                for n in table["full_name"].to_pylist()
            ],
            pa.string(),
        ),
    )
    db_api = DuckDBAPI()
    frame = db_api.register(table, dataset_display_name="match_records")
    linker = Linker(frame, settings, log_level=None)
    for column in tf_columns:
        rows = frequencies.rows(column)
        lookup = pa.table(
            {
                column: pa.array([value for value, _ in rows], pa.string()),
                f"tf_{column}": pa.array([tf for _, tf in rows], pa.float64()),
            }
        )
        registered = db_api.register(lookup, dataset_display_name=f"tf_{column}")
        linker.table_management.register_term_frequency_lookup(registered, column)
    return linker


def train_model(
    records: Sequence[MatchRecord],
    out: Path,
    seed: int = 42,
    *,
    max_pairs: float = 5e6,
) -> MatchModel:
    """Trains the model on ``records`` and writes its Splink JSON to ``out``.

    λ from exact email/phone matches, u from ``max_pairs`` random pairs
    (seeded), m by EM over ``EM_BLOCKING_KEYS``; the term frequencies of
    ``TF_COLUMNS`` among ``records`` are written beside ``out`` (``tf_path``).
    """
    frequencies = TermFrequencies.from_records(records, TF_COLUMNS)
    linker = _linker(records, default_settings(), frequencies, TF_COLUMNS)
    training = linker.training
    training.estimate_probability_two_random_records_match(
        [blocking_rule_sql(k) for k in DETERMINISTIC_KEYS], recall=DETERMINISTIC_RECALL
    )
    training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    for keys in EM_BLOCKING_KEYS:
        training.estimate_parameters_using_expectation_maximisation(blocking_rule_sql(keys))
    model = MatchModel(_regularise(linker.misc.save_model_to_json()), frequencies)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return model


def _regularise(settings: dict[str, Any]) -> dict[str, Any]:
    """Keeps one level from vetoing a match on evidence the data never showed.

    A level training never observed gets no m (or u) and Splink would score it
    with a stand-in of 1e-6; EM can also drive m towards 0 (the demo has no
    typos in birth dates, so "different birth date" got m ~ 1e-15, a weight of
    -49). A level random pairs never showed is made neutral (m = u); one they
    showed but EM never saw among matches (two countries) gets ``M_FLOOR``;
    every m is floored at ``M_FLOOR``. The result is what both Splink and
    ``MatchModel`` read, so they still agree.
    """
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            if u is None:
                m = u = max(m or UNOBSERVED, M_FLOOR)
            elif m is None:
                m = M_FLOOR
            neutral = (comparison["output_column_name"], level["label_for_charts"])
            level["m_probability"] = u if neutral in NEUTRAL_LEVELS else max(m, M_FLOOR)
            level["u_probability"] = u
    return settings


def predict_pairs(
    records: Sequence[MatchRecord],
    model_path: Path,
    threshold: float = 0.5,
    *,
    term_frequencies: TermFrequencies | None = None,
) -> list[tuple[str, str, float]]:
    """``(id_l, id_r, probability)`` of every pair the model's blocking rules generate
    scoring at least ``threshold``, scored by Splink.

    Term frequencies are the model's own (``MatchModel.load``), unless
    ``term_frequencies`` gives others, e.g. those of ``records`` themselves
    (``TermFrequencies.from_records(records, TF_COLUMNS)``), which also rescales
    λ to their population (``MatchModel.with_term_frequencies``); score
    read-time candidates with the same table for the two answers to agree.
    """
    model = MatchModel.load(model_path)
    if term_frequencies is not None:
        model = model.with_term_frequencies(term_frequencies)
    linker = _linker(records, model.to_splink(), model.term_frequencies, model.tf_columns)
    predictions = linker.inference.predict(
        threshold_match_probability=threshold if threshold > 0 else None,
        warning_mode="never",
    )
    con = linker._db_api.duckdb_con
    rows = con.sql(
        f"SELECT unique_id_l, unique_id_r, match_probability FROM {predictions.physical_name}"
    ).fetchall()
    return [(str(a), str(b), float(p)) for a, b, p in rows]


def blocking_rules() -> list[str]:
    """The SQL of the prediction blocking rules, one per ``BLOCKING_KEYS`` entry."""
    return [blocking_rule_sql(columns) for columns in BLOCKING_KEYS.values()]
