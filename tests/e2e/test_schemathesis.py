"""A schemathesis GraphQL run against the demo profile: every query and mutation
with generated arguments, and no server error (a 5xx, or an error custview did
not raise on purpose, which it masks).

It runs on a small demo of its own (so generated filters that no source can
narrow stay quick) with a registry of its own (the generated mutations write to
it), over real HTTP, with a bounded number of examples per root field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from gateway.app import create_app
from gateway.demodata.feedback_service import DEMO_TOKEN, create_feedback_app
from gateway.demodata.generate import generate
from gateway.serving import DEMO_HEADERS
from tests.e2e.test_steward import steward_config
from tests.support.servers import serve_in_thread

EXAMPLES = 5
"""Generated documents per root field: the whole run stays within seconds."""
MASKED = "Internal error (logged on the server)."


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("fuzz-demo")
    generate(data, 60, 3)
    with (
        serve_in_thread(create_feedback_app(data, DEMO_TOKEN)) as feedback,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("CUSTVIEW_DEMO_DIR", str(data))
        env.setenv("CUSTVIEW_AUDIT_LOG", str(data / "audit.jsonl"))
        env.setenv("CUSTVIEW_FEEDBACK_URL", f"{feedback}/api")
        loaded = steward_config(Path(data))  # the demo profile, a registry of its own
        with serve_in_thread(create_app(loaded), lifespan="on") as base:
            yield f"{base}/graphql"


def test_generated_operations_get_no_server_error(url: str) -> None:
    schema = schemathesis.graphql.from_url(url, headers=DEMO_HEADERS)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(headers=DEMO_HEADERS, timeout=30)
            body = response.json() if response.status_code < 500 else {}
            masked = [e for e in body.get("errors") or () if e.get("message") == MASKED]
            if response.status_code >= 500 or masked:
                failures.append(f"{case.operation.label}: {response.status_code} {case.body}")

        call()
    assert calls > 50, "every root field was exercised"
    assert failures == []
