"""The two-pass walk follows the identity registry as read-time stitching does:
with every kind of steward decision and a ``custview resolve`` run's links, a
whole export gives the page walk's customers, ids, records and golden values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.settings import LoadedSettings, load_settings
from resolvers.records import RecordRef
from resolvers.resolve import resolve
from resolvers.view import Federation
from tests.e2e.test_export_walk import both_walks
from tests.e2e.test_steward import DEMO_URL, PROBABILISTIC, clusters, steward_config

GONE = "crm/contacts/999999999"
"""A record no source holds (deleted since a steward linked it)."""


@dataclass
class Decided:
    """Records the decisions were about, and what each should do to the customers."""

    linked: tuple[str, str]
    undone: tuple[str, str]
    unlinked: str
    apart_by_model: tuple[str, str] | None
    apart_by_key: tuple[str, str]
    erased: frozenset[str]
    through_gone: tuple[str, str]
    ties: tuple[str, str, str]


async def _decide_everything(federation: Federation, groups: list[frozenset[str]]) -> Decided:
    """One decision of every kind, a batch run's links with tied scores, an erasure."""
    registry = federation.registry
    assert registry is not None
    threshold = federation.stitcher.link_threshold
    assert threshold is not None
    of = {ref: group for group in groups for ref in group}
    stored = {pair: score for pair, score in registry.stored_links().items() if score >= threshold}
    degree = Counter(ref for pair in stored for ref in pair)
    singles = [min(g) for g in groups if len(g) == 1 and min(g) not in degree]
    contacts = sorted(
        (s for s in singles if s.startswith("crm/contacts/")), key=lambda r: int(r.split("/")[2])
    )[:5]
    others = [s for s in singles if s not in contacts]
    crowds = [sorted(g) for g in groups if len(g) >= 3 and not g & degree.keys()]
    # a steward's link joins two customers; another, undone, joins nothing
    linked, undone = (others[0], others[1]), (others[2], others[3])
    await registry.decide("steward", "link", *linked)
    undo = await registry.decide("steward", "link", *undone)
    await registry.undo("steward", undo.seq)
    # an unlinked record leaves its customer (the others still share its key)
    unlinked = crowds[0][1]
    await registry.decide("steward", "unlink", unlinked)
    # not duplicates: a pair only a batch link joins is split; a pair sharing a key is not
    model_pairs = [
        (a, b) for a, b in stored if len(of[a]) == len(of[b]) == 1 and degree[a] == degree[b] == 1
    ]
    apart_by_model = model_pairs[0] if model_pairs else None
    if apart_by_model is not None:
        await registry.decide("steward", "not_duplicate", *apart_by_model)
    apart_by_key = (crowds[1][0], crowds[1][1])
    await registry.decide("steward", "not_duplicate", *apart_by_key)
    # two records linked to one that no source holds: joined by nothing (neighbours in
    # key order, so the page walk stitches them in the same page)
    through_gone = (contacts[0], contacts[1])
    for ref in through_gone:
        await registry.decide("steward", "link", ref, GONE)
    # equal scores around a not-duplicate pair: the links are followed in ref order
    x, y, z = sorted(contacts[2:5])
    run = await registry.ledger.start_run("test", "full")
    await registry.ledger.append_links(run, [(x, y, 0.995), (y, z, 0.995)])
    await registry.decide("steward", "not_duplicate", x, z)
    # an erased customer is in no answer
    erased = frozenset(crowds[2])
    await registry.erase("steward", RecordRef.parse(crowds[2][0]).customer_id(), erased)
    await registry.refresh(force=True)
    return Decided(
        linked, undone, unlinked, apart_by_model, apart_by_key, erased, through_gone, (x, y, z)
    )


async def _check(federation: Federation, groups: list[frozenset[str]]) -> None:
    try:
        report = await resolve(federation)
        assert report.links > 50
        decided = await _decide_everything(federation, groups)
        # read-time stitching from the far end of the tie agrees with the lists
        z = RecordRef.parse(decided.ties[2])
        seed = await federation.request().record(z)
        assert seed is not None
        from_z = (await federation.stitcher.resolve(records=[seed])).cluster(z)
        assert [str(r.ref) for r in from_z] == [decided.ties[2]]
        whole = await both_walks(federation)
    finally:
        await federation.aclose()
    customer_of = {str(r.ref): {str(x.ref) for x in c.records} for c in whole for r in c.records}
    assert customer_of[decided.linked[0]] == set(decided.linked)
    assert customer_of[decided.undone[0]] == {decided.undone[0]}
    assert customer_of[decided.unlinked] == {decided.unlinked}
    if decided.apart_by_model is not None:
        a, b = decided.apart_by_model
        assert b not in customer_of[a]
    a, b = decided.apart_by_key
    assert b in customer_of[a]
    assert not decided.erased & customer_of.keys()
    a, b = decided.through_gone
    assert customer_of[a] == {a} and customer_of[b] == {b}
    x, y, z = decided.ties
    assert customer_of[x] == {x, y} and customer_of[z] == {z}


def _with_registry(config: Path, tmp: Path) -> LoadedSettings:
    """``config`` with its own registry in ``tmp`` and the demo's trained model."""
    text = config.read_text()
    assert DEMO_URL in text
    text = text.replace(DEMO_URL, f'"sqlite+aiosqlite:///{tmp / "registry.db"}"')
    anchor = "      phone: {normalize: phone, default_region: US}\n"
    text = text.replace(anchor, anchor + PROBABILISTIC, 1)
    path = tmp / "walk.yaml"
    path.write_text(text)
    return load_settings(path)


async def test_the_walk_follows_a_resolve_run_and_every_decision(
    demo_env: None, demo_dir: Path, tmp_path: Path
) -> None:
    federation = steward_config(tmp_path, probabilistic=True).create_federation()
    await federation.open()
    await _check(federation, clusters(demo_dir))


@pytest.mark.postgres
@pytest.mark.mariadb
async def test_the_walk_follows_the_registry_on_postgresql_and_mariadb(
    demo_env: None, demo_dir: Path, tmp_path: Path, mixed_config: Path
) -> None:
    federation = _with_registry(mixed_config, tmp_path).create_federation()
    await federation.open()
    await _check(federation, clusters(demo_dir))
