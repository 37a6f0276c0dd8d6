"""Probabilistic matching at read time, for single-customer lookups, on the demo.

The ground truth says which records are one real person; the oracle says
which of them deterministic keys already join. People split across several
deterministic clusters are where the model must add records — without ever
adding another person's.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import gql, serve_in_process
from tests.e2e.oracle import clusters

PERSON_TABLES = ("crm/contacts/", "crm/leads/", "sales/customers/", "support/users/", "feedback/")
SAMPLE = 100

QUERY = """query($ref: String!, $min: Float) { customer(ref: $ref) {
  id sourceRecords { ref }
  matchExplanation { ref method keys matchedRef probability contributions }
  possibleDuplicates(minScore: $min) { ref customerId matchedRef probability contributions }
} }"""


PROBABILISTIC = """    probabilistic:
      model: config/demo-model.json
      link: 0.99
      candidate: 0.5
"""


def _probabilistic_config(tmp: Path) -> Path:
    """The demo config with ``identity.probabilistic`` switched on."""
    text = DEMO_CONFIG.read_text()
    anchor = "      phone: {normalize: phone, default_region: US}\n"
    assert anchor in text
    path = tmp / "probabilistic.yaml"
    path.write_text(text.replace(anchor, anchor + PROBABILISTIC, 1))
    return path


@pytest.fixture()
async def fuzzy(demo_env: None, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    loaded = load_settings(_probabilistic_config(tmp_path))
    spec = loaded.settings.model.identity.probabilistic
    assert spec is not None and spec.link == 0.99
    async for c in serve_in_process(loaded):
        yield c


@pytest.fixture()
async def plain(demo_env: None) -> AsyncIterator[httpx.AsyncClient]:
    loaded = load_settings(DEMO_CONFIG)
    assert loaded.settings.model.identity.probabilistic is None
    async for c in serve_in_process(loaded):
        yield c


@pytest.fixture(scope="session")
def people(demo_dir: Path, entities: dict[str, set[str]]) -> dict[str, set[str]]:
    """Real person -> their member records (person tables only)."""
    found = {}
    for entity, refs in entities.items():
        persons = {r for r in refs if r.startswith(PERSON_TABLES)}
        if persons:
            found[entity] = persons
    return found


@pytest.fixture(scope="session")
def split_people(demo_dir: Path, people: dict[str, set[str]]) -> list[tuple[str, set[str]]]:
    """People whose records deterministic keys do not all join, as (seed ref, truth)."""
    model = load_settings(DEMO_CONFIG).settings.model
    oracle = clusters(model, demo_dir)
    rng = random.Random(4)
    chosen = []
    for entity in sorted(people):
        truth = people[entity]
        parts = {oracle[r] for r in truth if r in oracle}
        if len(parts) > 1:
            chosen.append((min(truth), truth))
    rng.shuffle(chosen)
    return chosen[:SAMPLE]


async def _lookup(
    client: httpx.AsyncClient, ref: str, min_score: float | None = None
) -> dict[str, Any]:
    body = await gql(client, QUERY, ref=ref, min=min_score)
    assert "errors" not in body, body
    customer = body["data"]["customer"]  # type: ignore[index]
    assert customer is not None
    return customer  # type: ignore[no-any-return]


async def _measure(
    client: httpx.AsyncClient, sample: list[tuple[str, set[str]]], ground_truth: dict[str, str]
) -> tuple[float, float, int]:
    """Record-level recall and precision of ``customer(ref:)`` over the sample, and
    how many answers held another person's record."""
    true_found = returned = truth_total = impure = 0
    for seed, truth in sample:
        refs = {r["ref"] for r in (await _lookup(client, seed))["sourceRecords"]}
        hits = len(refs & truth)
        true_found += hits
        returned += len(refs)
        truth_total += len(truth)
        impure += hits != len(refs)
    return true_found / truth_total, true_found / returned, impure


async def test_probabilistic_lookups_find_more_records_without_losing_precision(
    fuzzy: httpx.AsyncClient,
    plain: httpx.AsyncClient,
    split_people: list[tuple[str, set[str]]],
    ground_truth: dict[str, str],
) -> None:
    assert len(split_people) >= 50
    recall_before, precision_before, _ = await _measure(plain, split_people, ground_truth)
    recall_after, precision_after, impure = await _measure(fuzzy, split_people, ground_truth)
    print(
        f"\nsplit people n={len(split_people)}: recall {recall_before:.4f} -> {recall_after:.4f}, "
        f"precision {precision_before:.4f} -> {precision_after:.4f}, impure answers {impure}"
    )
    assert recall_after > recall_before + 0.1
    assert precision_after >= 0.99


async def test_random_people_sample(
    fuzzy: httpx.AsyncClient,
    plain: httpx.AsyncClient,
    people: dict[str, set[str]],
    ground_truth: dict[str, str],
) -> None:
    rng = random.Random(11)
    entities = sorted(people)
    sample = [(min(people[e]), people[e]) for e in rng.sample(entities, SAMPLE)]
    recall_before, precision_before, _ = await _measure(plain, sample, ground_truth)
    recall_after, precision_after, impure = await _measure(fuzzy, sample, ground_truth)
    print(
        f"\nrandom people n={len(sample)}: recall {recall_before:.4f} -> {recall_after:.4f}, "
        f"precision {precision_before:.4f} -> {precision_after:.4f}, impure answers {impure}"
    )
    assert recall_after >= recall_before
    assert precision_after >= 0.99


async def test_match_explanation_covers_every_record(
    fuzzy: httpx.AsyncClient, split_people: list[tuple[str, set[str]]]
) -> None:
    models = 0
    for seed, _ in split_people[:40]:
        customer = await _lookup(fuzzy, seed)
        refs = [r["ref"] for r in customer["sourceRecords"]]
        reasons = {r["ref"]: r for r in customer["matchExplanation"]}
        assert sorted(reasons) == sorted(refs)
        for reason in reasons.values():
            assert reason["method"] in {"KEY", "MODEL", "SEED"}
            if reason["method"] == "KEY":
                assert set(reason["keys"]) <= {"email", "phone"} and reason["keys"]
            if reason["method"] == "MODEL":
                models += 1
                assert reason["probability"] >= 0.99
                assert reason["matchedRef"] in refs
                assert reason["contributions"][0]["comparison"] == "prior"
                total = sum(c["weight"] for c in reason["contributions"])
                assert total > 6  # 2^w / (1 + 2^w) >= 0.99 needs w >= 6.6; rounding aside
        if len(refs) == 1:
            assert reasons[refs[0]]["method"] == "SEED"
    assert models > 0


async def test_possible_duplicates_are_scored_and_explained(
    fuzzy: httpx.AsyncClient, people: dict[str, set[str]]
) -> None:
    seen = 0
    for entity in sorted(people)[:600]:
        customer = await _lookup(fuzzy, min(people[entity]))
        own = {r["ref"] for r in customer["sourceRecords"]}
        for dup in customer["possibleDuplicates"]:
            seen += 1
            assert 0.5 <= dup["probability"] < 0.99
            assert dup["ref"] not in own and dup["matchedRef"] in own
            assert dup["customerId"].startswith("cus_") and dup["customerId"] != customer["id"]
            assert {"comparison", "level", "weight"} <= set(dup["contributions"][1])
            high = await _lookup(fuzzy, min(people[entity]), min_score=dup["probability"] + 1e-9)
            assert dup["ref"] not in {d["ref"] for d in high["possibleDuplicates"]}
        if seen >= 5:
            break
    assert seen > 0


async def test_without_probabilistic_config_nothing_changes(
    plain: httpx.AsyncClient, demo_dir: Path, people: dict[str, set[str]]
) -> None:
    model = load_settings(DEMO_CONFIG).settings.model
    oracle = clusters(model, demo_dir)
    for entity in sorted(people)[:60]:
        seed = min(people[entity])
        customer = await _lookup(plain, seed)
        assert {r["ref"] for r in customer["sourceRecords"]} == set(oracle[seed])
        assert customer["possibleDuplicates"] == []
        assert all(r["method"] != "MODEL" for r in customer["matchExplanation"])


def test_thresholds_are_validated() -> None:
    from pydantic import ValidationError

    from resolvers.model import ProbabilisticSpec

    assert ProbabilisticSpec(model="m.json").link == 0.99
    for bad in ({"candidate": 0.9, "link": 0.5}, {"link": 1.5}, {"candidate": 0}):
        with pytest.raises(ValidationError):
            ProbabilisticSpec(model="m.json", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not a match input"):
        ProbabilisticSpec(model="m.json", fields={"default": {"surnam": "last_name"}})
