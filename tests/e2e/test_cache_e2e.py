"""The demo with a cached source: responses say, per source, how fresh the data is."""

from __future__ import annotations

from pathlib import Path

from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import serve_in_process
from tests.e2e.test_partial_results import _three_system_email

QUERY = """query($email: String) { customer(email: $email) {
    id name sourceRecords { source } orders { id } } }"""
SALES = "    description: Commerce (customers, orders, order lines, refunds)\n"


async def test_a_cached_source_reports_live_then_cached_freshness(
    demo_dir: Path, tmp_path: Path, demo_env: None
) -> None:
    email = _three_system_email(demo_dir)
    text = DEMO_CONFIG.read_text()
    assert SALES in text
    config = tmp_path / "cached.yaml"
    config.write_text(text.replace(SALES, SALES + "    cache: {ttl: 30}\n"))
    async for client in serve_in_process(load_settings(config)):
        answers = []
        for _ in range(2):
            response = await client.post(
                "/graphql", json={"query": QUERY, "variables": {"email": email}}
            )
            assert response.status_code == 200
            body = response.json()
            assert "errors" not in body, body
            answers.append(body)
        first, second = (a["extensions"]["custview"]["freshness"] for a in answers)
        assert set(first) == {"sales"}, "only the cached source reports freshness"
        assert first["sales"]["live"] > 0, "a cold cache: read live"
        assert second["sales"]["live"] == 0, "the same question again: all from the cache"
        assert second["sales"]["cached"] >= first["sales"]["live"]
        assert second["sales"]["stale"] == 0
        assert 0 <= second["sales"]["max_age_s"] < 30
        assert answers[0]["data"] == answers[1]["data"]
        assert "incomplete" not in answers[1]["extensions"]["custview"]
