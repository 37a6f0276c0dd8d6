"""Segments: named filters from config, counted and paged by the planner, and
checked against a brute-force evaluation of every customer of the demo."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors import ConfigError
from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import gql

pytestmark = pytest.mark.parametrize("engine_layout", ["sqlite"], indirect=True)

ALL = """query($after: String) { customers(first: 500, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id lifecycleStage lifetimeValue openTickets lastOrderAt orderCount openPipeline
            acceptsMarketing segments } } }"""
CUTOFF = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _dec(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


BRUTE_FORCE = {
    "high-value-at-risk": lambda c: (
        (_dec(c["lifetimeValue"]) or 0) >= 1000
        and (c["openTickets"] >= 1 or ((_when(c["lastOrderAt"]) or CUTOFF) < CUTOFF))
    ),
    # marketing segments keep customers who did not opt out (demo: consent.unknown include)
    "marketing-qualified-lead": lambda c: (
        c["lifecycleStage"] == "marketing_qualified" and c["acceptsMarketing"] is not False
    ),
    "sales-qualified-lead": lambda c: (
        c["lifecycleStage"] == "sales_qualified" or (_dec(c["openPipeline"]) or 0) > 0
    ),
    "dormant": lambda c: (
        c["orderCount"] >= 1
        and (_when(c["lastOrderAt"]) or CUTOFF) < CUTOFF
        and c["acceptsMarketing"] is not False
    ),
}


@pytest.fixture()
async def everyone(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    while True:
        body = await gql(client, ALL, after=after)
        page = body["data"]["customers"]  # type: ignore[index]
        found.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def test_segments_count_page_and_filter_like_the_brute_force(
    client: httpx.AsyncClient, everyone: list[dict[str, Any]]
) -> None:
    body = await gql(client, "{ segments { name description purpose count } }")
    segments = {s["name"]: s for s in body["data"]["segments"]}  # type: ignore[index]
    assert list(segments) == list(BRUTE_FORCE)
    assert segments["marketing-qualified-lead"]["purpose"] == "marketing"
    assert segments["sales-qualified-lead"]["purpose"] is None
    for name, rule in BRUTE_FORCE.items():
        expected = {c["id"] for c in everyone if rule(c)}
        assert 10 < len(expected) < len(everyone) / 2, name
        assert segments[name]["count"] == len(expected), name
        # Customer.segments agrees with the segment's own evaluation
        assert expected == {c["id"] for c in everyone if name in c["segments"]}, name

    query = """query($after: String) { segment(name: "dormant") {
        customers(first: 40, after: $after, orderBy: [{field: lastOrderAt, direction: DESC}]) {
          pageInfo { hasNextPage endCursor } nodes { id lastOrderAt } } } }"""
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql(client, query, after=after))["data"]["segment"]["customers"]  # type: ignore[index]
        seen.extend(page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert {c["id"] for c in seen} == {c["id"] for c in everyone if BRUTE_FORCE["dormant"](c)}
    times = [c["lastOrderAt"] for c in seen]
    assert times == sorted(times, reverse=True)

    filtered = """{ customers(first: 500, filter: {segment: "dormant", openTickets: {ge: 1}}) {
        nodes { id } } }"""
    nodes = (await gql(client, filtered))["data"]["customers"]["nodes"]  # type: ignore[index]
    wanted = {c["id"] for c in everyone if BRUTE_FORCE["dormant"](c) and c["openTickets"] >= 1}
    assert {n["id"] for n in nodes} == wanted and wanted


async def test_unknown_segment_is_a_bad_request(client: httpx.AsyncClient) -> None:
    for query in (
        '{ customers(filter: {segment: "vip"}) { nodes { id } } }',
        '{ segment(name: "vip") { count } }',
    ):
        error = (await gql(client, query))["errors"][0]  # type: ignore[index]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "'vip'" in error["message"] and "dormant" in error["message"]


@pytest.mark.parametrize(
    ("old", "new", "path", "says"),
    [
        (
            "lastOrderAt: {lt:",
            "lastOrderAt: {lte:",
            "segments.high-value-at-risk.filter.or[1].lastOrderAt.lte",
            "unknown operator",
        ),
        ("orderCount: {ge: 1}", "ordrCount: {ge: 1}", "segments.dormant.filter.ordrCount", "not a"),
        (
            "lifecycleStage: {eq: sales_qualified}",
            "segment: sales-qualified-lead",
            "segments.sales-qualified-lead.filter.or[0].segment",
            "cycle",
        ),
        ("dormant:\n", "Dormant:\n", "segments.Dormant", "lower case"),
    ],
)
def test_a_bad_segment_stops_start_up_with_a_located_error(
    tmp_path: Path, old: str, new: str, path: str, says: str, engine_layout: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(DEMO_CONFIG.read_text().replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    error = caught.value
    assert error.path == f"model.{path}", error
    assert says in error.reason, error
    assert error.line is not None
    key = path.rsplit(".", 1)[-1].split("[")[0]
    assert key in config.read_text().splitlines()[error.line - 1], error


async def test_marketing_segments_leave_out_who_opted_out_in_graphql_and_exports(
    client: httpx.AsyncClient, demo_env: None, tmp_path: Path
) -> None:
    from tests.e2e.conftest import serve_in_process

    query = """{ segment(name: "marketing-qualified-lead") { count customers(first: 500) {
        nodes { id lifecycleStage acceptsMarketing } } } }"""
    shown = (await gql(client, query))["data"]["segment"]  # type: ignore[index]
    nodes = shown["customers"]["nodes"]
    assert {n["acceptsMarketing"] for n in nodes} == {True, None}  # opted-out ones are gone
    plain = """{ customers(first: 500, filter: {lifecycleStage: {eq: "marketing_qualified"}}) {
        nodes { acceptsMarketing } } }"""
    everyone = (await gql(client, plain))["data"]["customers"]["nodes"]  # type: ignore[index]
    opted_out = [n for n in everyone if n["acceptsMarketing"] is False]
    assert opted_out and len(nodes) == len(everyone) - len(opted_out) == shown["count"]
    exported = await client.get("/export/customers.ndjson?segment=marketing-qualified-lead")
    rows = [json.loads(line) for line in exported.text.splitlines()]
    assert {r["id"] for r in rows} == {n["id"] for n in nodes}
    assert False not in {r["acceptsMarketing"] for r in rows}

    strict = tmp_path / "strict.yaml"  # the default: no recorded consent, no marketing
    strict.write_text(DEMO_CONFIG.read_text().replace("    unknown: include\n", ""))
    async for other in serve_in_process(load_settings(strict)):
        kept = (await gql(other, query))["data"]["segment"]  # type: ignore[index]
        assert {n["acceptsMarketing"] for n in kept["customers"]["nodes"]} == {True}
        assert kept["count"] == len(kept["customers"]["nodes"]) > 0


def test_the_consent_field_must_be_a_bool_field(tmp_path: Path, engine_layout: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(DEMO_CONFIG.read_text().replace("field: acceptsMarketing", "field: email"))
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.path == "model.consent.field" and "acceptsMarketing" in caught.value.reason
