"""Data quality over a small generated demo whose generator plants known flaws
(quality_truth.csv): the report finds exactly those, the per-customer view
names them, and the other measures agree with the databases."""

from __future__ import annotations

import csv
import datetime as dt
import os
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.demodata.feedback_service import DEMO_TOKEN, create_feedback_app
from gateway.demodata.generate import generate
from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import serve_in_process
from tests.support.servers import serve_in_thread

REPORT = """query($sample: Int!) { qualityReport(sample: $sample) {
    customers records fullScan staleAfterDays checks
    entries { source table field records filled completeness invalid stale conflicting examples }
} }"""
CUSTOMER = """query($ref: String) { customer(ref: $ref) { id
    provenance { field alternatives }
    quality { score
      issues { kind field ref value message }
      fields { field complete valid conflicting stale }
      records { ref updatedAt stale } } } }"""


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("quality") / "data"
    generate(out, 300, 11)
    with serve_in_thread(create_feedback_app(out, DEMO_TOKEN)) as url:
        old = {k: os.environ.get(k) for k in ("CUSTVIEW_DEMO_DIR", "CUSTVIEW_FEEDBACK_URL")}
        os.environ.update(CUSTVIEW_DEMO_DIR=str(out), CUSTVIEW_FEEDBACK_URL=f"{url}/api")
        yield out
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture()
async def client(small_demo: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve_in_process(load_settings(DEMO_CONFIG)):
        yield c


def planted(out: Path) -> list[dict[str, str]]:
    with (out / "quality_truth.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


async def ask(client: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.post("/graphql", json={"query": query, "variables": variables})
    ).json()
    assert "errors" not in body, body["errors"]
    return body["data"]


async def test_a_full_scan_finds_exactly_the_planted_flaws(
    client: httpx.AsyncClient, small_demo: Path
) -> None:
    report = (await ask(client, REPORT, sample=5000))["qualityReport"]
    assert report["fullScan"] is True
    assert report["checks"] == {"email": "email", "phone": "phone", "postcode": "postcode"}
    invalid = {
        (e["source"], e["table"], e["field"]): e["invalid"]
        for e in report["entries"]
        if e["invalid"]
    }
    truth = Counter((r["source"], r["table"], r["column"]) for r in planted(small_demo))
    assert invalid == dict(truth)
    refs = {f"{r['source']}/{r['table']}/{r['record_id']}" for r in planted(small_demo)}
    assert all(ref in refs for e in report["entries"] for ref in e["examples"])
    # every record of the sources is in a full scan, once
    con = sqlite3.connect(small_demo / "crm.db")
    (contacts,) = con.execute("SELECT count(*) FROM contacts").fetchone()
    (streets,) = con.execute("SELECT count(*) FROM contacts WHERE trim(street) != ''").fetchone()
    con.close()
    street = next(
        e for e in report["entries"] if (e["table"], e["field"]) == ("contacts", "street")
    )
    assert (street["records"], street["filled"]) == (contacts, streets)
    assert street["completeness"] == round(streets / contacts, 4)


async def test_a_sample_is_bounded_and_says_so(client: httpx.AsyncClient) -> None:
    report = (await ask(client, REPORT, sample=25))["qualityReport"]
    assert report["customers"] == 25 and report["fullScan"] is False
    too_many = await client.post("/graphql", json={"query": REPORT, "variables": {"sample": 10**6}})
    (error,) = too_many.json()["errors"]
    assert "model.quality.max_sample" in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"


async def test_a_customer_names_its_invalid_value_and_the_record_holding_it(
    client: httpx.AsyncClient, small_demo: Path
) -> None:
    for flaw in planted(small_demo):
        ref = f"{flaw['source']}/{flaw['table']}/{flaw['record_id']}"
        quality = (await ask(client, CUSTOMER, ref=ref))["customer"]["quality"]
        (issue,) = [i for i in quality["issues"] if i["kind"] == "INVALID" and i["ref"] == ref]
        assert issue["value"] == flaw["value"]
        assert issue["field"] == flaw["column"] and issue["message"]
        field = next(f for f in quality["fields"] if f["field"] == flaw["column"])
        assert field["valid"] is False
        assert 0 <= quality["score"] < 1


async def test_staleness_and_conflicts_follow_the_records(client: httpx.AsyncClient) -> None:
    page = await ask(
        client,
        "{ customers(first: 200) { nodes"
        " { sourceRecords { ref } provenance { field alternatives } } } }",
    )
    nodes = page["customers"]["nodes"]
    node = next(
        n
        for n in nodes
        if any(p["field"] == "email" and p["alternatives"] for p in n["provenance"])
    )
    customer = (await ask(client, CUSTOMER, ref=node["sourceRecords"][0]["ref"]))["customer"]
    quality = customer["quality"]
    email = next(f for f in quality["fields"] if f["field"] == "email")
    assert email["conflicting"] is True
    assert any(i["kind"] == "CONFLICT" and i["field"] == "email" for i in quality["issues"])
    now = dt.datetime.now(dt.UTC)
    for record in quality["records"]:
        age = now - dt.datetime.fromisoformat(record["updatedAt"])
        if abs(age - dt.timedelta(days=730)) > dt.timedelta(hours=1):
            assert record["stale"] is (age > dt.timedelta(days=730)), record
    stale = {r["ref"] for r in quality["records"] if r["stale"]}
    assert stale == {i["ref"] for i in quality["issues"] if i["kind"] == "STALE"}


async def test_findings_follow_the_callers_policy(
    client: httpx.AsyncClient, small_demo: Path
) -> None:
    support = {"X-API-Key": "support-key"}  # email masked, postcode denied (config/demo.yaml)
    flaws = planted(small_demo)
    for column in ("email", "postcode"):
        flaw = next(f for f in flaws if f["column"] == column)
        ref = f"{flaw['source']}/{flaw['table']}/{flaw['record_id']}"
        body = (
            await client.post(
                "/graphql", json={"query": CUSTOMER, "variables": {"ref": ref}}, headers=support
            )
        ).json()
        quality = body["data"]["customer"]["quality"]
        assert flaw["value"] not in str(quality), "no clear value of a masked or denied field"
        findings = [i for i in quality["issues"] if i["field"] == column]
        if column == "postcode":
            assert findings == []
            assert all(f["field"] != "postcode" for f in quality["fields"])
        else:
            (invalid,) = [i for i in findings if i["kind"] == "INVALID"]
            assert invalid["value"].startswith(flaw["value"][0] + "***")
    refused = (
        await client.post(
            "/graphql", json={"query": REPORT, "variables": {"sample": 5}}, headers=support
        )
    ).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN_FIELD"
