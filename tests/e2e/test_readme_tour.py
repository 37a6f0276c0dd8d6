"""Every query of the README's 5-minute tour runs on the demo without errors."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from gateway.cli import DEMO_SEED, DEMO_SIZE
from gateway.demodata.generate import generate
from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import gql, serve_in_process
from tests.test_docs import README

PLACEHOLDERS = ("someone@example.com", "+1 415 555 0123", "support/users/18")


def tour_queries() -> list[str]:
    tour = README.split("## A 5-minute tour\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```graphql\n(.*?)```", tour, flags=re.S)


def test_the_tour_has_a_query_per_step() -> None:
    queries = tour_queries()
    assert len(queries) >= 9
    for placeholder in PLACEHOLDERS:
        assert any(placeholder in q for q in queries), placeholder


def test_the_tour_record_is_one_person_in_every_system(tmp_path: Path) -> None:
    """Pasted as it stands into ``make demo``'s GraphiQL, the tour's record is a
    person with a record in each of the four systems (not a lone record)."""
    generate(tmp_path, DEMO_SIZE, DEMO_SEED)
    with (tmp_path / "ground_truth.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    ref = PLACEHOLDERS[2]
    entity = next(
        r["entity_id"] for r in rows if "/".join((r["source"], r["table"], r["record_id"])) == ref
    )
    systems = {r["source"] for r in rows if r["entity_id"] == entity}
    assert systems == {"crm", "support", "sales", "feedback"}, (ref, systems)


async def test_every_tour_query_answers_on_the_demo(demo_env: None) -> None:
    async for client in serve_in_process(load_settings(DEMO_CONFIG)):
        found = await gql(
            client, "{ customers(first: 200) { nodes { email phone sourceRecords { ref } } } }"
        )
        nodes = found["data"]["customers"]["nodes"]  # type: ignore[index]
        person = next(
            n
            for n in nodes
            if n["email"]
            and n["phone"]
            and any(r["ref"].startswith("support/users/") for r in n["sourceRecords"])
        )
        ref = next(r["ref"] for r in person["sourceRecords"] if r["ref"].startswith("support/"))
        real = dict(zip(PLACEHOLDERS, (person["email"], person["phone"], ref), strict=True))
        for query in tour_queries():
            for placeholder, value in real.items():
                query = query.replace(placeholder, value)
            body = await gql(client, query)
            assert "errors" not in body, (query, body["errors"])
            data = body["data"]
            assert isinstance(data, dict)
            assert all(value is not None for value in data.values()), (query, data)
