"""The in-process Fellegi-Sunter evaluator, and its agreement with Splink."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from gateway.demodata.generate import generate
from resolvers.matching import (
    ConditionError,
    MatchModel,
    MatchRecord,
    ModelError,
    blocking_keys,
    match_record,
)
from resolvers.matching.conditions import FUNCTIONS, compile_condition
from resolvers.matching.frequencies import TermFrequencies, TermFrequencyError, tf_path
from resolvers.matching.settings import TF_COLUMNS, default_settings
from tests.resolvers.matching_support import DEMO_MODEL, demo_records


def _trained(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with made-up m and u on every level."""
    for comparison in settings["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        for rank, level in enumerate(levels):
            level["m_probability"] = 0.9 / (rank + 1) ** 3
            level["u_probability"] = 0.001 * 10**rank
    return settings


@pytest.fixture(scope="module")
def model() -> MatchModel:
    return MatchModel(_trained(default_settings()))


def _record(uid: str, **values: object) -> MatchRecord:
    return match_record(uid, "test", **values)  # type: ignore[arg-type]


BOB = _record(
    "a",
    first_name="Bob",
    surname="Smith",
    email="Bob.Smith+x@gmail.com",
    phone="(479) 536-0576",
    street="12 Station Rd",
    postcode="28272",
    city="Charlotte",
    country="US",
    birth_date="1980-01-31",
)
ROBERT = _record(
    "b",
    first_name="Robert",
    surname="Smyth",
    email="bobsmith@gmail.com",
    postcode="28272",
    country="US",
    birth_date="1980-01-02",
)


def test_contributions_sum_to_the_weight(model: MatchModel) -> None:
    score = model.score(BOB, ROBERT)
    assert math.isclose(sum(c.weight for c in score.contributions), score.weight)
    assert score.contributions[0].comparison == "prior"
    assert [c.comparison for c in score.contributions[1:]] == [
        c["output_column_name"] for c in model.settings["comparisons"]
    ]
    levels = {c.comparison: c.level for c in score.contributions}
    assert levels["name"] == "both jaro-winkler >= 0.8"
    assert levels["email"] == "exact"
    assert levels["birth_date"] == "same year and month"
    assert math.isclose(score.probability, 2**score.weight / (1 + 2**score.weight))
    assert model.weight(BOB, ROBERT) == score.weight


def test_nulls_contribute_nothing(model: MatchModel) -> None:
    score = model.score(BOB, _record("c", first_name="Bob"))
    nulls = [c for c in score.contributions if c.level == "null"]
    assert {c.comparison for c in nulls} == {
        "email",
        "phone",
        "street",
        "place",
        "birth_date",
        "country",
        "business",
    }
    assert all(c.weight == 0 for c in nulls)


def test_business_columns() -> None:
    """The company is normalised (placeholders name none); the business domain is a
    work email's, else the account's, never a mailbox provider's."""
    lead = _record("l", company="ACME, Inc.", email="J.Doe@Acme.com")
    assert (lead["company"], lead["business_domain"]) == ("acme", "acme.com")
    contact = _record(
        "c", company="Acme Inc", company_domain="https://www.acme.com/", email="jd@gmail.com"
    )
    assert (contact["company"], contact["business_domain"]) == ("acme", "acme.com")
    shopper = _record("s", company="Self-employed", email="jd@gmail.com")
    assert (shopper["company"], shopper["business_domain"]) == (None, None)


def test_a_shared_business_links_a_shared_name() -> None:
    """Under the committed model, a support user and a CRM contact with one full
    name and nothing else in common stay apart, unless they work for one business
    (same company, or same work-email domain); two businesses weigh nothing (people
    change employers), and a shared business does not link two first names."""
    committed = MatchModel.load(DEMO_MODEL)
    user = _record("u", name="Ngozi Adeyemi", email="ngozi@orbit-supply.co.uk", locale="en-GB")
    contact = _record(
        "c", first_name="Ngozi", surname="Adeyemi", email="n.adeyemi@gmail.com", country="GB"
    )

    def business(score: Any) -> tuple[str, float]:
        found = next(c for c in score.contributions if c.comparison == "business")
        return found.level, found.weight

    alone = committed.score(user, contact)
    assert business(alone) == ("null", 0) and alone.probability < 0.99
    for works_for in (
        {"company": "Orbit Supply Ltd"},
        {"company_domain": "orbit-supply.co.uk"},
    ):
        at_work = committed.score(
            user | {"company": "orbit supply"},
            _record(
                "c2",
                first_name="Ngozi",
                surname="Adeyemi",
                email="n.adeyemi@gmail.com",
                country="GB",
                **works_for,
            ),
        )
        assert business(at_work)[1] > 9 and at_work.probability >= 0.99, at_work
    elsewhere = committed.score(
        user | {"company": "orbit supply"}, contact | {"company": "bright dairy"}
    )
    assert business(elsewhere) == ("different", 0)
    assert elsewhere.weight == alone.weight
    colleague = _record("k", first_name="Kemi", surname="Adeyemi", company="Orbit Supply")
    assert committed.score(user | {"company": "orbit supply"}, colleague).probability < 0.99


def test_a_mailbox_number_is_weighed_by_how_common_it_is() -> None:
    """Two personal mailboxes ending in one number (another provider, another
    spelling) count for one person by how rare the number is among the records:
    a number few records hold links a shared name; a common one (a birth year
    typed by many) weighs little, and two different numbers count against."""
    committed = MatchModel.load(DEMO_MODEL)
    assert _record("x", email="J.Smith_4471@GMX.de")["email_number"] == "4471"
    assert _record("y", email="jsmith4471@acme.com")["email_number"] is None  # a work address
    assert _record("z", email="jsmith@gmail.com")["email_number"] is None
    shop = _record("s", name="Ines Varga", email="ines.varga90417@gmail.com", country="DE")
    desk = _record("d", name="Ines Varga", email="ivarga90417@outlook.com", locale="de-DE")

    def email(score: Any) -> tuple[str, float]:
        found = next(c for c in score.contributions if c.comparison == "email")
        return found.level, found.weight

    same = committed.score(shop, desk)
    assert email(same)[0] == "same number in personal local parts"
    assert same.probability >= 0.99, same
    common = TermFrequencies.from_records(
        [shop, desk, *(_record(f"c{i}", email=f"user{i}.90417@gmx.de") for i in range(500))],
        TF_COLUMNS,
    )
    assert email(committed.with_term_frequencies(common).score(shop, desk))[1] < email(same)[1]
    other = committed.score(shop, desk | {"email_number": "90418"})
    assert email(other)[0] == "different, both work or both personal" and email(other)[1] < 0


def test_scores_are_symmetric(model: MatchModel) -> None:
    assert model.score(BOB, ROBERT).weight == model.score(ROBERT, BOB).weight


def _home(uid: str, first: str, **values: object) -> MatchRecord:
    return _record(
        uid,
        first_name=first,
        surname="Okafor",
        street="41 Mill Lane",
        postcode="LS6 2AB",
        city="Leeds",
        country="GB",
        **values,
    )


def test_a_different_first_name_vetoes_a_shared_address() -> None:
    """Partners (one street, postcode and surname; their own first name, email
    and phone) stay apart under the committed model, while one person's records
    at that address (a nickname, a typo, a missing first name) still link."""
    committed = MatchModel.load(DEMO_MODEL)
    head = _home("a", "Margaret", email="maggie.okafor@gmail.com", phone="+44 7700 900123")
    partner = _home("b", "Daniel", email="dan.okafor77@outlook.com", phone="+44 7700 900456")
    no_contact = _home("c", "Daniel")
    for other, below in ((partner, 0.05), (no_contact, 0.99)):
        score = committed.score(head, other)
        levels = {c.comparison: c.level for c in score.contributions}
        assert levels["street"] == "exact, different first name"
        assert levels["place"] == "same postcode, different first name"
        assert score.probability < below, score  # no contact details: at most a candidate
    for same in (_home("d", "Maggie"), _home("e", "Margaert"), _home("f", None)):
        score = committed.score(head, same)
        assert score.probability >= 0.99, score
        assert {c.level for c in score.contributions} >= {"exact", "same postcode and street"}


def test_model_json_round_trip(tmp_path: Path, model: MatchModel) -> None:
    path = tmp_path / "model.json"
    model.save(path)
    again = MatchModel.load(path)
    assert again.to_splink() == model.to_splink() == json.loads(path.read_text())
    assert again.score(BOB, ROBERT) == model.score(BOB, ROBERT)


def _name_weight(model: MatchModel, a: MatchRecord, b: MatchRecord) -> float:
    return next(c.weight for c in model.score(a, b).contributions if c.comparison == "name")


def _level(model: MatchModel, label: str) -> dict[str, Any]:
    levels = model.settings["comparisons"][0]["comparison_levels"]
    return next(lv for lv in levels if lv.get("label_for_charts") == label)  # type: ignore[no-any-return]


def test_term_frequency_adjustment_and_its_fallback(model: MatchModel) -> None:
    """A rare full name weighs log2(m / f), a common one less; a value missing
    from the table gets no adjustment (log2(m / u), as Splink's NULL frequency)."""
    rare_a, rare_b = (
        _record("r1", name="Eleanor Fitzgerald"),
        _record("r2", name="Eleanor Fitzgerald"),
    )
    common = [_record(f"c{i}", name="John Smith") for i in range(30)]
    tf = TermFrequencies.from_records([rare_a, rare_b, *common], TF_COLUMNS)
    assert tf.frequency("full_name", "eleanor fitzgerald") == 2 / 32
    exact = _level(model, "exact full name")
    m, u = exact["m_probability"], exact["u_probability"]
    with_tf = model.with_term_frequencies(tf)
    assert _name_weight(with_tf, rare_a, rare_b) == pytest.approx(math.log2(m / (2 / 32)))
    assert _name_weight(with_tf, common[0], common[1]) == pytest.approx(math.log2(m / (30 / 32)))
    assert _name_weight(with_tf, rare_a, rare_b) > _name_weight(with_tf, common[0], common[1])
    unknown_a, unknown_b = _record("u1", name="Ada Lovelace"), _record("u2", name="Ada Lovelace")
    assert _name_weight(with_tf, unknown_a, unknown_b) == pytest.approx(math.log2(m / u))
    assert _name_weight(model, rare_a, rare_b) == pytest.approx(math.log2(m / u))
    score = with_tf.score(rare_a, rare_b)
    assert math.isclose(sum(c.weight for c in score.contributions), score.weight)
    assert with_tf.weight(rare_a, rare_b) == score.weight


def test_prior_follows_the_population(model: MatchModel) -> None:
    """λ (two random records match) is rescaled to the population a table counted:
    twice the records, about half the chance; a table of unknown size keeps it."""
    small = TermFrequencies.from_records(
        [_record(f"s{i}", name="Ann Lee") for i in range(101)], TF_COLUMNS
    )
    large = TermFrequencies.from_records(
        [_record(f"l{i}", name="Ann Lee") for i in range(201)], TF_COLUMNS
    )
    assert small.records == 101 and large.records == 201
    at_small = model.with_term_frequencies(small)
    assert at_small.prior == model.prior  # the model knew no population
    at_large = at_small.with_term_frequencies(large)
    assert at_large.prior == pytest.approx(at_small.prior * 100 / 200)
    assert at_large.to_splink()["probability_two_random_records_match"] == at_large.prior
    assert at_large.with_term_frequencies(small).prior == pytest.approx(at_small.prior)
    unknown = TermFrequencies(small.columns)
    assert at_large.with_term_frequencies(unknown).prior == at_large.prior
    one = TermFrequencies.from_records([_record("x", name="Ann Lee")], TF_COLUMNS)
    huge = model.with_term_frequencies(TermFrequencies(small.columns, 10**6))
    assert huge.with_term_frequencies(one).prior == 0.5  # capped


def test_term_frequencies_travel_with_the_model(tmp_path: Path, model: MatchModel) -> None:
    records = [_record("a", name="Eleanor Fitzgerald"), _record("b", name="John Smith")]
    tf = TermFrequencies.from_records(records, TF_COLUMNS)
    path = tmp_path / "model.json"
    model.with_term_frequencies(tf).save(path)
    assert tf_path(path) == tmp_path / "model.tf.json"
    again = MatchModel.load(path)
    assert again.term_frequencies == tf and again.term_frequencies.records == 2
    assert again.tf_columns == ["full_name", "surname", "first_name", "email_number"]
    tf_path(path).write_text('{"format": "custview-term-frequencies", "version": 9}')
    with pytest.raises(ModelError, match=r"model\.tf\.json: version 9"):
        MatchModel.load(path)
    with pytest.raises(TermFrequencyError, match="counts must be"):
        tf_path(path).write_text(
            json.dumps(
                {
                    "format": "custview-term-frequencies",
                    "version": 1,
                    "columns": {"surname": {"total": 1, "counts": {"smith": 2}}},
                }
            )
        )
        TermFrequencies.load(tf_path(path))
    tf_path(path).unlink()
    with pytest.raises(ModelError, match=r"model\.tf\.json is missing"):
        MatchModel.load(path)


def test_term_frequency_level_needs_an_exact_level() -> None:
    settings = _trained(default_settings())
    levels = settings["comparisons"][0]["comparison_levels"]
    settings["comparisons"][0]["comparison_levels"] = [
        lv for lv in levels if lv.get("label_for_charts") != "exact surname only"
    ]
    levels = settings["comparisons"][0]["comparison_levels"]
    levels[2]["tf_adjustment_column"] = "surname"
    with pytest.raises(ModelError, match="exact level"):
        MatchModel(settings)


def test_unknown_sql_condition_fails_loudly() -> None:
    settings = _trained(default_settings())
    settings["comparisons"][0]["comparison_levels"][2]["sql_condition"] = (
        'soundex("first_name_l") = soundex("first_name_r")'
    )
    with pytest.raises(ConditionError, match="soundex"):
        MatchModel(settings)


def test_untrained_model_is_refused() -> None:
    with pytest.raises(ModelError, match="m_probability"):
        MatchModel(default_settings())


@pytest.mark.parametrize(
    ("condition", "left", "right", "expected"),
    [
        ('"x_l" = "x_r"', {"x": "a"}, {"x": "a"}, True),
        ('"x_l" = "x_r"', {"x": None}, {"x": None}, False),
        ('"x_l" IS NULL OR "x_r" IS NULL', {"x": "a"}, {"x": None}, True),
        ('("x_l" IS NULL) OR ("x_r" IS NULL)', {"x": "a"}, {"x": "b"}, False),
        ("x_l = x_r AND y_l = y_r", {"x": "a", "y": "b"}, {"x": "a", "y": "c"}, False),
        ('jaro_winkler_similarity("x_l", "x_r") >= 0.9', {"x": "martha"}, {"x": "marhta"}, True),
        ('jaro_winkler_similarity("x_l", "x_r") >= 0.99', {"x": "martha"}, {"x": "marhta"}, False),
        ('levenshtein("x_l", "x_r") <= 1', {"x": "smith"}, {"x": "smyth"}, True),
        ('jaro_winkler_similarity("x_l", "x_r") >= 0.1', {"x": None}, {"x": "a"}, False),
    ],
)
def test_condition_forms(
    condition: str, left: dict[str, str | None], right: dict[str, str | None], expected: bool
) -> None:
    predicate = compile_condition(condition)
    assert predicate is not None
    assert predicate(left, right, {}) is expected


@pytest.mark.parametrize(
    "condition",
    ['"x_l" IS NOT NULL', '"x_l" <> "x_r"', '"x" = "y"', "lower(x_l) = lower(x_r)", '"x_l" ='],
)
def test_unsupported_condition_forms(condition: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(condition)


def test_blocking_keys() -> None:
    keys = dict(blocking_keys(BOB))
    assert keys == {
        "surname_postcode": ("smith", "28272"),
        "name": ("robert", "smith"),
        "first_name_postcode": ("robert", "28272"),
        "email": ("bobsmith@gmail.com",),
        "phone": ("+14795360576",),
        "birth_date": ("1980-01-31",),
        "email_local": ("bobsmith",),
    }
    work = _record("w", email="bob.smith@acme.example")
    assert dict(blocking_keys(work)) == {"email": ("bob.smith@acme.example",)}


def test_rapidfuzz_jaro_winkler_matches_duckdb() -> None:
    duckdb = pytest.importorskip("duckdb")
    jaro_winkler = FUNCTIONS["jaro_winkler_similarity"]

    words = [
        "martha",
        "marhta",
        "dwayne",
        "duane",
        "dixon",
        "dicksonx",
        "a",
        "ab",
        "",
        "katherine",
        "catherine",
        "jon",
        "john",
        "jonathan",
        "smith",
        "smyth",
        "mueller",
        "muller",
        "12 station road",
        "12 station rd",
        "ashley",
        "ashleigh",
        "zz",
    ]
    pairs = list(itertools.product(words, repeat=2))
    con = duckdb.connect()
    rows = con.sql(
        "SELECT a, b, jaro_winkler_similarity(a, b) FROM (SELECT unnest($a) AS a, unnest($b) AS b)",
        params={"a": [a for a, _ in pairs], "b": [b for _, b in pairs]},
    ).fetchall()
    con.close()
    for a, b, expected in rows:
        assert jaro_winkler(a, b) == pytest.approx(expected, abs=1e-12), (a, b)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> list[MatchRecord]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    generate(out, customers=1500, seed=7)
    return demo_records(out)


def _agree(
    model_path: Path, records: list[MatchRecord], tf: TermFrequencies | None = None
) -> set[str]:
    """Splink and the in-process scorer give the same probability to every pair,
    over the model's own term frequencies or ``tf``; returns the levels the
    pairs hit (``comparison: level``)."""
    pytest.importorskip("splink")
    from resolvers.matching.train import predict_pairs

    pairs = predict_pairs(records, model_path, threshold=0.0, term_frequencies=tf)
    by_id = {r["unique_id"]: r for r in records}
    model = MatchModel.load(model_path)
    if tf is not None:
        model = model.with_term_frequencies(tf)
    levels = set()
    for a, b, probability in pairs:
        score = model.score(by_id[a], by_id[b])
        assert score.probability == pytest.approx(probability, abs=1e-9), (a, b)
        levels.update(f"{c.comparison}: {c.level}" for c in score.contributions[1:])
    assert len(pairs) > 300
    return levels


def test_committed_demo_model_agrees_with_splink(small_demo: list[MatchRecord]) -> None:
    """The committed table comes from another demo: many of these names are not
    in it, so the fallback (no adjustment) is exercised on both sides."""
    model = MatchModel.load(DEMO_MODEL)
    names = {r["full_name"] for r in small_demo if r["full_name"]}
    missing = {n for n in names if model.term_frequencies.frequency("full_name", n) is None}
    assert missing and missing != names
    levels = _agree(DEMO_MODEL, small_demo)
    assert {  # the demo's household partners reach the first-name levels
        "street: exact, different first name",
        "place: same postcode, different first name",
        "place: same postcode and street",
    } <= levels


def test_trained_model_agrees_with_splink(small_demo: list[MatchRecord], tmp_path: Path) -> None:
    pytest.importorskip("splink")
    from resolvers.matching.train import train_model

    path = tmp_path / "model.json"
    model = train_model(small_demo, path, seed=7, max_pairs=2e5)
    assert MatchModel.load(path).to_splink() == model.to_splink()
    assert MatchModel.load(path).term_frequencies == TermFrequencies.from_records(
        small_demo, TF_COLUMNS
    )
    _agree(path, small_demo)
    _agree(path, small_demo, TermFrequencies.from_records(small_demo[::2], TF_COLUMNS))


def test_batch_name_blocking_skips_common_names(tmp_path: Path) -> None:
    """A full name borne by more than MAX_NAME_BLOCK records blocks nothing in
    batch (its pairs grow with the square of its count); rarer names do."""
    pytest.importorskip("splink")
    from resolvers.matching.settings import MAX_NAME_BLOCK
    from resolvers.matching.train import predict_pairs

    common = [_record(f"c{i}", name="John Smith") for i in range(MAX_NAME_BLOCK + 1)]
    rare = [_record(f"r{i}", name="Eleanor Fitzgerald") for i in range(MAX_NAME_BLOCK)]
    records = [*common, *rare]
    path = tmp_path / "model.json"
    tf = TermFrequencies.from_records(records, TF_COLUMNS)
    MatchModel(_trained(default_settings()), tf).save(path)
    pairs = predict_pairs(records, path, threshold=0.0)
    assert {(a[0], b[0]) for a, b, _ in pairs} == {("r", "r")}
    assert len(pairs) == MAX_NAME_BLOCK * (MAX_NAME_BLOCK - 1) // 2
