"""What the planner sends where, read from the explain plan's statements:
the most selective condition is read at its source, the candidates' keys go
to the other sources in IN lists with the remaining conditions, and
comparisons mean the same on every engine layout."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from connectors import SourceUnavailable
from resolvers import reduction
from tests.e2e.conftest import gql

CROSS = """{ customers(first: 50, filter: {country: {eq: "DE"},
    tickets: {priority: {eq: "urgent"}}, openTickets: {ge: 1}}) { nodes { id } } }"""
IDS = "query($f: CustomerFilter) { customers(first: 500, filter: $f) { nodes { id email } } }"


async def _explain(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"X-Custview-Explain": "1"},
    )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


def _calls(plan: dict[str, Any], table: str, operation: str) -> list[dict[str, Any]]:
    return [
        c
        for s in plan["sources"]
        for c in s["calls"]
        if c["table"] == table and c["operation"] == operation
    ]


async def test_and_reads_the_most_selective_side_and_sends_keys_to_the_others(
    client: httpx.AsyncClient,
) -> None:
    plan = (await _explain(client, CROSS))["extensions"]["explain"]
    assert any(s.startswith("and: reduce by country") for s in plan["memory"]), plan["memory"]
    scans = _calls(plan, "tickets", "scan")
    # no read of every urgent ticket: only the candidates' tickets, by key, filtered there
    assert scans and all("requester_id in" in c["detail"] for c in scans), scans
    for call in scans:
        (sql,) = call["sent"]
        where = sql.upper().split("WHERE", 1)[1]
        assert "REQUESTER_ID IN" in where and "PRIORITY" in where, sql
    # open tickets: a GROUP BY over the candidates' keys, not over the whole table
    grouped = [
        s
        for c in _calls(plan, "tickets", "aggregate")
        for s in c["sent"]
        if "GROUP BY" in s.upper()
    ]
    assert grouped and all("IN (" in s.upper() for s in grouped), grouped
    contacts = _calls(plan, "contacts", "scan")
    assert contacts and all("country eq 'DE'" in c["detail"] for c in contacts)


async def test_eq_is_exact_on_every_engine_and_emails_compare_normalised(
    client: httpx.AsyncClient,
) -> None:
    async def ids(f: dict[str, Any]) -> list[str]:
        body = await gql(client, IDS, f=f)
        assert "errors" not in body, body
        return [n["id"] for n in body["data"]["customers"]["nodes"]]  # type: ignore[index]

    urgent = await ids({"tickets": {"priority": {"eq": "urgent"}}})
    assert urgent
    # the support desk runs on MariaDB in the mixed layout: its collation would match
    assert await ids({"tickets": {"priority": {"eq": "URGENT"}}}) == []
    assert await ids({"country": {"eq": "de"}}) == []
    assert await ids({"tickets": {"priority": {"in": ["Urgent", "urgent"]}}}) == urgent

    body = await gql(client, IDS, f={"country": {"eq": "DE"}})
    someone = next(n for n in body["data"]["customers"]["nodes"] if n["email"])  # type: ignore[index]
    shouted = someone["email"].upper()
    plan = await _explain(client, IDS, f={"email": {"eq": shouted}})
    assert [n["id"] for n in plan["data"]["customers"]["nodes"]] == [someone["id"]]
    steps = plan["extensions"]["explain"]
    # found through the identity-key lookups, not by scanning email columns
    assert not any(
        "email" in c["detail"]
        for s in steps["sources"]
        for c in s["calls"]
        if c["operation"] == "scan"
    )


async def test_a_few_identity_keys_reduce_an_and_without_counting_its_other_sides(
    client: httpx.AsyncClient,
) -> None:
    listed = """{ customers(first: 200, filter: {country: {eq: "DE"}}) {
        nodes { id email openTickets } } }"""
    body = await gql(client, listed)
    people = [n for n in body["data"]["customers"]["nodes"] if n["email"]]  # type: ignore[index]
    emails = [n["email"] for n in people[:40]]
    expected = sorted(n["id"] for n in people[:40] if n["openTickets"] >= 1)
    assert expected and len(expected) < len(emails), "a sample both ways"

    query = """query($f: CustomerFilter) { customers(first: 500, filter: $f) {
        nodes { id } } }"""
    body = await _explain(client, query, f={"email": {"in": emails}, "openTickets": {"ge": 1}})
    assert sorted(n["id"] for n in body["data"]["customers"]["nodes"]) == expected
    plan = body["extensions"]["explain"]
    assert any(s.startswith("and: reduce by email") for s in plan["memory"]), plan["memory"]
    # open tickets grouped over the candidates' keys only: no count over the whole table
    sent = [s for c in _calls(plan, "tickets", "aggregate") for s in c["sent"]]
    assert sent and all("GROUP BY" in s.upper() for s in sent), sent


async def test_an_and_takes_a_side_counted_small_without_counting_its_metric_thresholds(
    client: httpx.AsyncClient,
) -> None:
    urgent = {"priority": {"eq": "urgent"}, "status": {"eq": "open"}}
    query = """query($f: CustomerFilter) { customers(first: 500, filter: $f) {
        nodes { id lifetimeValue } } }"""
    body = await gql(client, query, f={"tickets": urgent})
    nodes = body["data"]["customers"]["nodes"]  # type: ignore[index]
    expected = sorted(n["id"] for n in nodes if float(n["lifetimeValue"] or 0) >= 100)
    assert expected and len(expected) < len(nodes) <= 500, "a sample both ways"

    body = await _explain(client, query, f={"tickets": urgent, "lifetimeValue": {"ge": 100}})
    assert sorted(n["id"] for n in body["data"]["customers"]["nodes"]) == expected
    memory = body["extensions"]["explain"]["memory"]
    # the urgent open tickets (a few hundred at most) are read once counted; the
    # lifetime-value side (a count over every paid order) is not even started
    reduced = [s for s in memory if s.startswith("and: reduce by tickets")]
    assert reduced and "metric thresholds not counted" in reduced[0], memory
    orders = [
        s for c in _calls(body["extensions"]["explain"], "orders", "aggregate") for s in c["sent"]
    ]
    assert orders and all("GROUP BY" in s.upper() for s in orders), orders
    # every candidate holds a ticket the read found: the tickets are not asked again
    assert not any(s.startswith("tickets: sent") for s in memory), memory


LISTED = """query($f: CustomerFilter, $all: Boolean!) { customers(first: 500, filter: $f) {
    nodes { id lifetimeValue openTickets @include(if: $all) ...counts } } }
    fragment counts on Customer { openTickets }"""
LATE = """query($f: CustomerFilter, $all: Boolean!) { customers(first: 500, filter: $f) {
    nodes { id lifetimeValue openTickets @include(if: $all) } } }"""


def _keys_sent(detail: str) -> int:
    """How many keys an explained ``... where key in [...]`` condition sent (a long list
    is shown as ``[N values]``): the call's filters, after its aggregates' own."""
    shown = detail.rsplit(" where ", 1)[1].split(" in [", 1)[1].split("]", 1)[0]
    return int(shown.split()[0]) if shown.endswith("values") else len(shown.split(","))


async def test_a_few_candidates_metrics_listed_load_beside_the_filter_check(
    client: httpx.AsyncClient,
) -> None:
    """The page's metrics (openTickets, read through a fragment) are loaded for the
    candidates while the filter's lifetime value is checked: the same answer and the
    same statements as loading them for the page afterwards (a field under a directive
    is not loaded early: whether it is read is decided at run time)."""
    urgent = {"priority": {"eq": "urgent"}, "status": {"eq": "open"}}
    f = {"tickets": urgent, "lifetimeValue": {"ge": 100}}
    early = await _explain(client, LISTED, f=f, all=True)
    late = await _explain(client, LATE, f=f, all=True)
    assert early["data"] == late["data"]
    nodes = early["data"]["customers"]["nodes"]
    assert nodes and any(n["openTickets"] for n in nodes), nodes

    def aggregates(body: dict[str, Any], table: str) -> list[str]:
        return [c["detail"] for c in _calls(body["extensions"]["explain"], table, "aggregate")]

    counted = [d for d in aggregates(early, "tickets") if "group by requester_id" in d]
    later = [d for d in aggregates(late, "tickets") if "group by requester_id" in d]
    assert len(counted) == len(later) == 1, (counted, later)
    memory = early["extensions"]["explain"]["memory"]
    checked = next(s for s in memory if s.startswith("checked the whole filter on"))
    candidates = int(checked.split(" on ")[1].split()[0])
    assert candidates > len(nodes), "the filter left some candidates out"
    # loaded for every candidate's support users early, for the page's only after
    keys = [_keys_sent(d) for d in (counted[0], later[0])]
    assert keys[0] > keys[1], (counted, later)
    statements = [body["extensions"]["explain"]["sources"] for body in (early, late)]
    assert [sum(s["sent"] for s in sources) for sources in statements] == [
        sum(s["sent"] for s in statements[1])
    ] * 2


async def test_a_metric_the_role_may_not_read_is_never_loaded_early(
    client: httpx.AsyncClient,
) -> None:
    """The support role may not read lifetimeValue: listing it answers a forbidden
    field, and the planner does not load it for the candidates either."""
    urgent = {"priority": {"eq": "urgent"}, "status": {"eq": "open"}}
    response = await client.post(
        "/graphql",
        json={
            "query": LATE,
            "variables": {"f": {"tickets": urgent, "openTickets": {"ge": 1}}, "all": True},
        },
        headers={"X-Custview-Explain": "1", "X-API-Key": "support-key"},
    )
    body = response.json()
    assert body["data"]["customers"]["nodes"], body
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN_FIELD"}
    assert not _calls(body["extensions"]["explain"], "orders", "aggregate")


async def test_a_related_entity_side_read_beside_its_count_is_stopped_when_not_taken(
    client: httpx.AsyncClient,
) -> None:
    """An and's lone related-entity side is read while it is counted (a selective one
    is then taken without a round trip of its own); when a metric threshold counts
    fewer rows, that read is stopped, said in the plan, and the answer is the same."""
    query = """query($f: CustomerFilter) { customers(first: 500, filter: $f) {
        nodes { id tickets { id } } } }"""
    body = await gql(client, query, f={"openPipeline": {"ge": 1}})
    nodes = body["data"]["customers"]["nodes"]  # type: ignore[index]
    expected = sorted(n["id"] for n in nodes if n["tickets"])
    assert expected and len(expected) < len(nodes), "a sample both ways"

    every = {"createdAt": {"ge": "2000-01-01T00:00:00Z"}}  # every ticket: not selective
    body = await _explain(client, IDS, f={"tickets": every, "openPipeline": {"ge": 1}})
    assert sorted(n["id"] for n in body["data"]["customers"]["nodes"]) == expected
    memory = body["extensions"]["explain"]["memory"]
    assert any(s.startswith("and: reduce by openPipeline") for s in memory), memory
    assert any(s.startswith("tickets(") and "not taken (stopped)" in s for s in memory), memory


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.Task[Any]]:
    """The reads started beside their counts, from a source that never answers them."""
    tasks: list[asyncio.Task[Any]] = []

    class SlowSource:
        """asyncio, except that a read started beside its count never returns."""

        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

        @staticmethod
        def ensure_future(coro: Any) -> asyncio.Task[Any]:
            coro.close()
            task = asyncio.ensure_future(asyncio.Event().wait())
            tasks.append(task)
            return task

    monkeypatch.setattr(reduction, "asyncio", SlowSource())
    return tasks


async def test_a_read_beside_its_count_is_stopped_when_an_or_gives_up(
    client: httpx.AsyncClient, started: list[asyncio.Task[Any]]
) -> None:
    """An ``or`` one of whose sides cannot be narrowed at the sources lists every
    customer instead: a related-entity read started beside its count inside the
    other side (here a source that never answers it) is stopped when the planner is
    done, not left reading in the background after the answer."""
    side = {"and": [{"tickets": {"status": {"eq": "open"}}}, {"openTickets": {"ge": 1}}]}
    query = "query($f: CustomerFilter) { customers(first: 5, filter: $f) { nodes { id } } }"
    body = await gql(client, query, f={"or": [side, {"not": {"country": {"eq": "DE"}}}]})
    assert body["data"]["customers"]["nodes"], body  # type: ignore[index]
    assert len(started) == 1, "the tickets side was read beside its count"
    await asyncio.wait(started, timeout=1)  # a stop lands when the task next runs
    assert started[0].cancelled(), "the read goes on after the answer"


async def test_a_read_beside_its_count_is_stopped_when_another_side_fails(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, started: list[asyncio.Task[Any]]
) -> None:
    """The other side of the ``or`` cannot be counted (its source is down): the
    request answers the error, and the related-entity read started beside its count
    (a source that never answers it) is stopped, not left reading after the answer."""
    count = reduction.Reducer._count

    async def crm_down(self: Any, source: str, table: str, filters: Any) -> int:
        if source == "crm":
            raise SourceUnavailable("crm is down (simulated)", source="crm")
        return await count(self, source, table, filters)

    monkeypatch.setattr(reduction.Reducer, "_count", crm_down)
    side = {"and": [{"tickets": {"status": {"eq": "open"}}}, {"openTickets": {"ge": 1}}]}
    query = "query($f: CustomerFilter) { customers(first: 5, filter: $f) { nodes { id } } }"
    body = await gql(client, query, f={"or": [side, {"country": {"eq": "DE"}}]})
    assert body.get("errors"), body
    assert len(started) == 1, "the tickets side was read beside its count"
    await asyncio.wait(started, timeout=1)  # a stop lands when the task next runs
    assert started[0].cancelled(), "the read goes on after the answer"
