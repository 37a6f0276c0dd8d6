"""Golden values a chunk at a time (exports) are the values record by record, and
the ids are those the customers' oldest records give."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.golden import Survivorship
from resolvers.golden_chunk import ChunkSurvivorship
from resolvers.model import UnifiedModel
from resolvers.records import Record, canonical

SOURCES = ["crm", "sales", "support"]
RULES = ["source_priority", "most_recent", "most_complete", "most_frequent", "min", "max"]
FIELDS: dict[str, dict[str, Any]] = {
    "name": {},
    "email": {"normalize": "email"},
    "phone": {"normalize": "phone"},
    "inbox": {"normalize": "email_provider"},
    "nid": {"type": "id", "normalize": "external_id"},
    "orders": {"type": "int"},
    "score": {"type": "float"},
    "total": {"type": "decimal"},
    "vip": {"type": "bool"},
    "born": {"type": "date"},
    "seen": {"type": "datetime"},
    "updatedAt": {"type": "datetime"},
    "createdAt": {"type": "datetime"},
}
# each member writes the fields its own way: a column, a template, nothing
# (the first reads its update and creation times as fields too: the chunk reads
# them once; the second names its creation time's column apart)
MAPPINGS = [
    {
        **{f: f for f in FIELDS},
        "name": "{first} {last}",
        "updatedAt": "updated_at",
        "createdAt": "created_at",
    },
    {f: f for f in FIELDS},
    {"name": "name", "email": "email", "phone": "phone", "seen": "seen"},
]

TEXT = st.one_of(
    st.none(),
    st.sampled_from(["Ann Lee", "ann lee", "Anne  Lee", "", " ", "Zoë O'Brien", "ZOE OBRIEN"]),
    st.text(max_size=8),
)
VALUE = st.one_of(
    TEXT,
    st.integers(-3, 3),
    st.sampled_from(["1", "2.5", "true", "no", "2026-01-02", "2025-12-31T23:00:00Z", "x", "NaN"]),
    st.sampled_from(["(407) 488-4302", "+1 407 488 4302", "020 7946 0018", "a@X.example"]),
    st.sampled_from(["J.Smith+shop@GoogleMail.com", " ab-12 34/56 c ", "+33 5 24 97 14 79"]),
)
STAMP = st.one_of(
    st.none(),
    st.sampled_from(["2025-01-01T00:00:00", "2026-01-01T00:00:00", "2026-01-01T00:00:00Z", ""]),
)


@st.composite
def models(draw: st.DrawFn) -> UnifiedModel:
    rules: dict[str, Any] = {}
    for field in FIELDS:
        if draw(st.booleans()):
            chain = draw(st.lists(st.sampled_from(RULES), min_size=1, max_size=3, unique=True))
            rule: dict[str, Any] = {"rule": chain[0], "fallbacks": chain[1:]}
            if draw(st.booleans()):
                rule["sources"] = draw(st.permutations(SOURCES))[: draw(st.integers(0, 3))]
            rules[field] = rule
    members = [
        {
            "source": source,
            "table": "t",
            "key_type": "int" if i != 2 else "string",
            "updated_at": "updated_at",
            "region": "country" if i == 0 else None,
            "created_at": "made" if i == 1 else None,
            "fields": MAPPINGS[i],
        }
        for i, source in enumerate(SOURCES)
    ]
    return UnifiedModel.model_validate(
        {
            "customer": {"fields": FIELDS, "members": members},
            "identity": {"keys": {"email": {"normalize": "email", "default_region": "US"}}},
            "survivorship": {"default": draw(st.permutations(SOURCES)), "fields": rules},
        }
    )


@st.composite
def chunks(draw: st.DrawFn, model: UnifiedModel) -> list[list[Record]]:
    groups: list[list[Record]] = []
    key = 0
    for _ in range(draw(st.integers(1, 6))):
        group = []
        # up to 6 records: groups of more than 4 are ordered without the shape cache
        for _ in range(draw(st.integers(1, 6))):
            rank = draw(st.integers(0, 2))
            key += 1
            row: dict[str, Any] = {
                c: draw(VALUE) for c in ("first", "last", *FIELDS) if draw(st.booleans())
            }
            row |= {"id": key if rank != 2 else f"k{key}", "updated_at": draw(STAMP)}
            row |= {"created_at": draw(STAMP), "made": draw(STAMP)}
            row["country"] = draw(st.sampled_from([None, "US", "GB", "fr"]))
            group.append(Record(model.customer.members[rank], rank, row))
        groups.append(group)
    return groups


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_chunked_golden_values_are_the_values_of_each_customer(data: st.DataObject) -> None:
    model = data.draw(models())
    groups = data.draw(chunks(model))
    survivorship = Survivorship(model)
    expected = [survivorship.build(group).values for group in groups]
    # compared as text: a float field may hold NaN, which equals nothing
    assert repr([survivorship.values(group) for group in groups]) == repr(expected)
    built = ChunkSurvivorship(survivorship).customers(groups)
    assert repr([values for values, _ in built]) == repr(expected)
    # and the id: its oldest record's
    assert [customer_id for _, customer_id in built] == [
        canonical(group).ref.customer_id() for group in groups
    ]
