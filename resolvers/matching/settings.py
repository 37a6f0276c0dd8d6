"""The model's shape: comparisons, their levels and the blocking rules, as a
Splink settings dict.

Written as plain SQL conditions (not Splink's comparison library) so the
trained JSON holds exactly the forms ``conditions`` interprets, whatever
Splink's library would render in a future release. Thresholds live here
once; training fills in the m and u probabilities.
"""

from __future__ import annotations

import copy
from typing import Any

from resolvers.matching.features import BLOCKING_KEYS

__all__ = [
    "BATCH_BLOCKING",
    "DIFFERENT_FIRST_NAME",
    "MAX_NAME_BLOCK",
    "NEUTRAL_LEVELS",
    "TF_COLUMNS",
    "blocking_rule_sql",
    "comparison",
    "default_settings",
]


def _null(column: str) -> dict[str, Any]:
    return {
        "sql_condition": f'"{column}_l" IS NULL OR "{column}_r" IS NULL',
        "label_for_charts": "null",
        "is_null_level": True,
    }


def _exact(column: str, label: str = "exact") -> dict[str, Any]:
    return {"sql_condition": f'"{column}_l" = "{column}_r"', "label_for_charts": label}


def _jaro_winkler(column: str, threshold: float) -> dict[str, Any]:
    return {
        "sql_condition": f'jaro_winkler_similarity("{column}_l", "{column}_r") >= {threshold}',
        "label_for_charts": f"jaro-winkler >= {threshold}",
    }


_ELSE = {"sql_condition": "ELSE", "label_for_charts": "different"}


def comparison(
    column: str, *levels: dict[str, Any], description: str = "", different: str = "different"
) -> dict[str, Any]:
    """A comparison on ``column``: its null level, the given levels, then ELSE."""
    return {
        "output_column_name": column,
        "comparison_description": description or column,
        "comparison_levels": [_null(column), *levels, {**_ELSE, "label_for_charts": different}],
    }


def _tf(level: dict[str, Any], column: str) -> dict[str, Any]:
    """``level`` with Splink's term-frequency adjustment on ``column``: an exact
    match on a value held by a share f of records weighs log2(m / f), not
    log2(m / u) (see ``model`` for the lookup and its fallback)."""
    return {**level, "tf_adjustment_column": column, "tf_adjustment_weight": 1.0}


def _both(threshold: float) -> dict[str, Any]:
    return {
        "sql_condition": " AND ".join(
            _jaro_winkler(column, threshold)["sql_condition"]
            for column in ("first_name", "surname")
        ),
        "label_for_charts": f"both jaro-winkler >= {threshold}",
    }


NAME = comparison(
    "name",
    _tf(_exact("full_name", "exact full name"), "full_name"),
    _both(0.92),
    _both(0.8),
    _tf(_exact("surname", "exact surname only"), "surname"),
    _tf(_exact("first_name", "exact first name only"), "first_name"),
    description="first name and surname",
)
"""Splink's ``ForenameSurnameComparison``, spelled out: the full name's frequency
is what tells two John Smiths from one (first names and surnames are drawn
independently of each other far less often than whole names repeat)."""
NAME["comparison_levels"][0] = {
    "sql_condition": (
        '("first_name_l" IS NULL OR "first_name_r" IS NULL)'
        ' AND ("surname_l" IS NULL OR "surname_r" IS NULL)'
    ),
    "label_for_charts": "null",
    "is_null_level": True,
}
TF_COLUMNS = ("full_name", "surname", "first_name", "email_number")
"""Columns whose term frequencies the model reads."""

DIFFERENT_FIRST_NAME = 0.8
"""First names below this Jaro-Winkler similarity are two people's, not one
person's nickname or typo (``given_name`` already maps nicknames)."""


def _first_names_differ(level: dict[str, Any], label: str) -> dict[str, Any]:
    """``level`` narrowed to pairs whose first names are both known and clearly
    differ; it goes before the levels it must take pairs from.

    Partners share a street, a postcode and a surname, while one person's
    records rarely show two different first names at one address. Without such
    a level the address outweighed a different first name (partners scored
    0.99); with it, a different first name takes the pair out of the strong
    address levels, and EM learns what an address shared by two first names is
    worth. An unknown first name is no disagreement (SQL NULL semantics, on
    both sides of the scorer).
    """
    condition = (
        f"{level['sql_condition']} AND jaro_winkler_similarity"
        f'("first_name_l", "first_name_r") < {DIFFERENT_FIRST_NAME}'
    )
    return {"sql_condition": condition, "label_for_charts": label}


PLACE = comparison(
    "place",
    _first_names_differ(_exact("postcode"), "same postcode, different first name"),
    {
        "sql_condition": '"postcode_l" = "postcode_r" AND "street_l" = "street_r"',
        "label_for_charts": "same postcode and street",
    },
    _exact("postcode", "same postcode, another or no street"),
    _exact("postcode_area", "same postcode area"),
    _exact("city", "same city"),
    {**_jaro_winkler("city", 0.9), "label_for_charts": "city jaro-winkler >= 0.9"},
    description="postcode, else city",
)
"""One comparison for postcode and city: the same postcode already says the
same city, and counting both twice made namesakes in one postcode look alike.
The same postcode is split by first name (see ``_first_names_differ``) and by
street: once the first-name level takes partners out, "same postcode" alone
would mostly be pairs sharing a first name, and counted that agreement again
(namesakes on a first name in one postcode looked alike); on another street it
weighs what EM learns for it."""
PLACE["comparison_levels"][0] = {
    "sql_condition": (
        '("postcode_l" IS NULL OR "postcode_r" IS NULL) AND ("city_l" IS NULL OR "city_r" IS NULL)'
    ),
    "label_for_charts": "null",
    "is_null_level": True,
}

BUSINESS = comparison(
    "business",
    _exact("company", "same company"),
    _exact("business_domain", "same business domain"),
    description="the business the record works for: company name, else domain",
    different="different",
)
"""Records of one business: the normalised company (a contact's account, a support
user's organization, a lead's company) or the business's domain (a work email's,
else the account's). Its "different" level is made neutral after training
(``NEUTRAL_LEVELS``): people change employers, so two companies say nothing."""
BUSINESS["comparison_levels"][0] = {
    "sql_condition": (
        '("company_l" IS NULL OR "company_r" IS NULL)'
        ' AND ("business_domain_l" IS NULL OR "business_domain_r" IS NULL)'
    ),
    "label_for_charts": "null",
    "is_null_level": True,
}
NEUTRAL_LEVELS = frozenset({("business", "different")})
"""``(comparison, level label)`` whose m is set to its u after training (weight 0):
evidence EM would learn from the demo (one employer per person) but real data
does not bear."""

COMPARISONS: tuple[dict[str, Any], ...] = (
    NAME,
    comparison(
        "email",
        _exact("email"),
        _exact("email_local", "same personal local part"),
        _tf(
            _exact("email_number", "same number in personal local parts"),
            "email_number",
        ),
        _exact("email_kind", "different, both work or both personal"),
        different="different, one work and one personal",
    ),
    comparison("phone", _exact("phone", "exact (E.164)")),
    comparison(
        "street",
        _first_names_differ(_exact("street"), "exact, different first name"),
        _exact("street"),
        _jaro_winkler("street", 0.9),
    ),
    PLACE,
    comparison("birth_date", _exact("birth_date"), _exact("birth_month", "same year and month")),
    comparison("country", _exact("country")),
    BUSINESS,
)


MAX_NAME_BLOCK = 20
"""Batch twin of read time's ``max_block_fanout`` for the name key: a full name
borne by more records than this blocks nothing (its pairs grow with the square
of its count, and such a common name links nothing on its own: see
docs/identity.md)."""
BATCH_BLOCKING: dict[str, tuple[str, ...]] = {"name": ("name_block",)}
"""Blocking keys whose batch rule reads a column derived per run (``train``
adds ``name_block``: the full name where at most ``MAX_NAME_BLOCK`` records
bear it, else NULL)."""


def blocking_rule_sql(columns: tuple[str, ...]) -> str:
    """``l."a" = r."a" AND l."b" = r."b"`` for the given columns."""
    return " AND ".join(f'l."{column}" = r."{column}"' for column in columns)


def default_settings(probability_two_random_records_match: float = 1e-4) -> dict[str, Any]:
    """Untrained settings for deduplicating one table of match records."""
    return {
        "link_type": "dedupe_only",
        "linker_uid": "custview",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": probability_two_random_records_match,
        "comparisons": copy.deepcopy(list(COMPARISONS)),
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": blocking_rule_sql(BATCH_BLOCKING.get(key, columns))}
            for key, columns in BLOCKING_KEYS.items()
        ],
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
        "additional_columns_to_retain": ["source_dataset"],
    }
