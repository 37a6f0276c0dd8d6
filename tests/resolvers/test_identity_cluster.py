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
