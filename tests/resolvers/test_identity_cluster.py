"""Clusters of a resolution: records joined through the keys they hold."""

from __future__ import annotations

from resolvers.identity import Resolution
from resolvers.records import Record
from tests.resolvers.test_golden import model


def test_records_join_through_chains_of_shared_keys() -> None:
    """A-B share one key, B-C another, C-D a third (each union walks a longer
    path up the tree); E holds a key no one else does; a key made crowded
    joins nobody."""
    m = model({})
    crm, sales, support = m.customer.members
    records = [
        Record(crm, 0, {"id": 1}),
        Record(sales, 1, {"id": 2}),
        Record(support, 2, {"id": 3}),
        Record(crm, 0, {"id": 4}),
        Record(sales, 1, {"id": 5}),
        Record(support, 2, {"id": 6}),
    ]
    a, b, c, d, e, f = (r.ref for r in records)
    res = Resolution(records={r.ref: r for r in records})
    edges = [
        (a, ("email", "x"), crm.id),
        (b, ("email", "x"), sales.id),
        (b, ("phone", "1"), sales.id),
        (c, ("phone", "1"), support.id),
        (c, ("email", "y"), support.id),
        (d, ("email", "y"), crm.id),
        (e, ("email", "z"), sales.id),
        (f, ("email", "crowded"), support.id),
        (a, ("email", "crowded"), crm.id),
    ]
    res.key_edges.extend(edges)
    res.crowded.add((("email", "crowded"), crm.id))
    res.crowded.add((("email", "crowded"), support.id))
    joined = [str(r.ref) for r in res.cluster(d)]
    assert joined == ["crm/contacts/1", "crm/contacts/4", "sales/customers/2", "support/users/3"]
    assert [str(r.ref) for r in res.cluster(("phone", "1"))] == joined
    assert [str(r.ref) for r in res.cluster(e)] == ["sales/customers/5"]
    assert [str(r.ref) for r in res.cluster(f)] == ["support/users/6"]
    assert res.cluster(("email", "nobody")) == []


def test_clusters_are_the_connected_components_of_records_and_keys() -> None:
    """Random records and keys, joined in random order (a record or key already
    below another node when it is joined again, chains of any length): each
    cluster is exactly the records connected through shared keys (a plain search
    over the graph), whatever the order of the edges."""
    import random

    m = model({})
    members = m.customer.members
    for seed in range(300):
        rng = random.Random(seed)
        records = [Record(members[i % 3], i % 3, {"id": i}) for i in range(rng.randint(2, 12))]
        keys = [("email", str(k)) for k in range(rng.randint(1, 8))]
        edges = [
            (r.ref, rng.choice(keys), r.member.id)
            for r in records
            for _ in range(rng.randint(0, 3))
        ]
        rng.shuffle(edges)
        res = Resolution(records={r.ref: r for r in records})
        res.key_edges.extend(edges)
        neighbours: dict[object, set[object]] = {}
        for ref, key, _ in edges:
            neighbours.setdefault(ref, set()).add(key)
            neighbours.setdefault(key, set()).add(ref)
        for record in records:
            seen, todo = {record.ref}, [record.ref]
            while todo:
                for nxt in neighbours.get(todo.pop(), ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            expected = sorted(str(r.ref) for r in records if r.ref in seen)
            found = sorted(str(r.ref) for r in res.cluster(record.ref))
            assert found == expected, (seed, str(record.ref))
