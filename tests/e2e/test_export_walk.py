"""A whole export's two-pass walk finds the customers the page-by-page walk finds."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.sql import SQLConnector, SQLOptions
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers import walk
from resolvers.export import CHUNK, customer_chunks
from resolvers.heap import WALK_THRESHOLDS
from resolvers.identity import KeyNode
from resolvers.model import UnifiedModel
from resolvers.view import CustomerView, Federation


async def _customers(federation: Federation, chunk: int | None) -> list[CustomerView]:
    return [c async for _, found in customer_chunks(federation, chunk=chunk) for c in found]


async def both_walks(federation: Federation) -> list[CustomerView]:
    """The two-pass walk's customers, once checked against the page walk's."""
    paged = await _customers(federation, CHUNK)  # a chunk size asks for the page walk
    whole = await _customers(federation, None)
    assert [c.id for c in whole] == [c.id for c in paged]
    assert [[r.ref for r in c.records] for c in whole] == [
        [r.ref for r in c.records] for c in paged
    ]
    assert [c.golden.values for c in whole] == [c.golden.values for c in paged]
    return whole


def _same_length(key: KeyNode) -> int:
    """A weak hash: every two keys of the same length collide (thousands of pairs)."""
    return len(key[1])


@pytest.mark.parametrize("key_hash", [hash, _same_length], ids=["hash", "colliding-hash"])
async def test_the_two_pass_walk_gives_the_page_walks_customers(
    demo_env: None, monkeypatch: pytest.MonkeyPatch, key_hash: Callable[[KeyNode], int]
) -> None:
    # with a colliding hash, keys are still joined only when they are equal
    monkeypatch.setattr(walk, "KEY_HASH", key_hash)
    loaded = load_settings(DEMO_CONFIG)
    federation = Federation(loaded.settings.model, loaded.create_connectors())
    try:
        whole = await both_walks(federation)
    finally:
        await federation.aclose()
    # the demo's people are in several systems: the walk really stitched across tables
    assert sum(len({r.member.source for r in c.records}) > 1 for c in whole) > 500


async def test_a_whole_walk_collects_the_young_generation_rarely_and_only_while_it_walks(
    demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's records, values and rows die by reference counting: collected every
    700 allocations (CPython's default), they were traversed and promoted ~3,300
    times at 100,000 customers for nothing (resolvers/heap.py, ``WALK_THRESHOLDS``)."""
    seen: list[tuple[int, ...]] = []
    build = walk.build

    async def noted(*args: object) -> list[CustomerView]:
        seen.append(gc.get_threshold())
        return await build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(walk, "build", noted)
    before = gc.get_threshold()
    assert before[0] < WALK_THRESHOLDS[0]
    loaded = load_settings(DEMO_CONFIG)
    federation = Federation(loaded.settings.model, loaded.create_connectors())
    try:
        assert await _customers(federation, None)
    finally:
        await federation.aclose()
    assert seen and {t[0] for t in seen} == {WALK_THRESHOLDS[0]}
    assert gc.get_threshold() == before


async def test_pass_one_read_a_few_rows_at_a_time_joins_the_same_customers(
    demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # batch edges fall between a record's rows and between tables' orders: the
    # customers (records, golden values) are those of the page walk all the same
    monkeypatch.setattr(walk, "SCAN_BATCH", 7)
    loaded = load_settings(DEMO_CONFIG)
    federation = Federation(loaded.settings.model, loaded.create_connectors())
    try:
        whole = await both_walks(federation)
    finally:
        await federation.aclose()
    assert sum(len(c.records) > 1 for c in whole) > 500


def _model(fanout: int) -> UnifiedModel:
    mapping = {"fields": {"email": "email"}, "identity": {"mail": ["email"]}}
    members = [
        {"source": "db", "table": "a", **mapping},
        {"source": "db", "table": "b", "key_type": "string", **mapping},
    ]
    return UnifiedModel.model_validate(
        {
            "customer": {"fields": {"email": {"normalize": "email"}}, "members": members},
            "identity": {"keys": {"mail": {"normalize": "email"}}, "max_key_fanout": fanout},
        }
    )


@pytest.mark.parametrize("key_hash", [hash, lambda key: 7], ids=["hash", "one-hash-for-all"])
async def test_a_crowded_key_joins_no_records_of_its_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_hash: Callable[[KeyNode], int]
) -> None:
    # with one hash for every key, each key is still counted and joined as itself
    monkeypatch.setattr(walk, "KEY_HASH", key_hash)
    path = tmp_path / "db.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE a (id INTEGER PRIMARY KEY, email TEXT);
        CREATE TABLE b (id TEXT PRIMARY KEY, email TEXT);
        INSERT INTO a VALUES (1, 'info@shop.example'), (2, 'INFO@shop.example'),
            (3, ' info@shop.example'), (4, 'ann@x.example'), (5, 'bob@x.example');
        INSERT INTO b VALUES ('k2', 'Ann@X.example'), ('k1', 'info@shop.example'),
            ('k0', 'bob@x.example'), ('k3', 'bob@x.example');
        """
    )
    con.commit()
    con.close()
    connector = SQLConnector("db", SQLOptions(url=f"sqlite+aiosqlite:///{path}", timeout=5))
    federation = Federation(_model(fanout=2), {"db": connector})
    try:
        # read-time stitching (the page walk) agrees, whichever records a page seeds
        found = await both_walks(federation)
    finally:
        await federation.aclose()
    refs = [[str(r.ref) for r in c.records] for c in found]
    # three records of table a share info@: a crowd, so none of them is joined by it
    # (nor the one record of table b holding it, which has no partner left)
    assert refs == [
        ["db/a/1"],
        ["db/a/2"],
        ["db/a/3"],
        ["db/a/4", "db/b/k2"],
        ["db/a/5", "db/b/k0", "db/b/k3"],
        ["db/b/k1"],
    ]


@pytest.mark.parametrize(
    ("keys", "sizes", "numbers"),
    [
        ([["a@example.com"]], [999], [0]),  # lists of 999 bytes, fewer sent
        ([["a@example.com"]], None, [0, 1]),  # two records for one key hash
    ],
)
def test_a_bucket_read_elsewhere_that_does_not_add_up_is_refused(
    keys: list[list[str]], sizes: list[int] | None, numbers: list[int]
) -> None:
    """What a worker sent is checked before the join takes it in: a mismatch would
    drop or misread identity keys without any error."""
    import marshal
    from array import array

    from resolvers.walk import NUMBER, ScannedBucket, _Edges

    spooled = b"".join(marshal.dumps(k) for k in keys)
    lengths = sizes or [len(marshal.dumps(k)) for k in keys]
    part = ScannedBucket(
        hashes=array("q", [7]).tobytes(),
        numbers=array(NUMBER, numbers).tobytes(),
        spooled=spooled,
        sizes=array("q", lengths).tobytes(),
    )
    edges = _Edges()
    try:
        with pytest.raises(ValueError, match="bucket 3 of a member read elsewhere"):
            edges.add_bucket(3, part, 0)
        assert len(edges.hashes[3]) == 0 and edges.segments[3] == [], "nothing taken in"
        fine = ScannedBucket(part.hashes, array(NUMBER, [0]).tobytes(), spooled, part.sizes)
        if sizes is None:
            edges.add_bucket(3, fine, 5)
            assert list(edges.numbers[3]) == [5] and len(edges.segments[3]) == 1
    finally:
        edges.close()
