"""OpenTelemetry: a server span per request, a child span per source call."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from connectors import ConfigError
from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import serve_in_process

QUERY = "{ customers(first: 2) { nodes { id tickets { id } orders { id } surveys { id } } } }"


def _config(tmp_path: Path, tracing: str, replace: tuple[str, str] = ("", "")) -> Path:
    path = tmp_path / "traced.yaml"
    text = DEMO_CONFIG.read_text().replace(*replace)
    path.write_text(f"tracing: {tracing}\n{text}")
    return path


async def test_a_span_per_request_and_per_source_call(tmp_path: Path, demo_env: None) -> None:
    dead = (
        '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"',
        '"postgresql+asyncpg://postgres@127.0.0.1:1/support"',
    )
    loaded = load_settings(_config(tmp_path, "{enabled: true, exporter: console}", dead))
    exporter = InMemorySpanExporter()
    async for client in serve_in_process(loaded):
        client.app.state.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[attr-defined]
        response = await client.post(
            "/graphql", json={"query": QUERY}, headers={"X-Request-ID": "traced-1"}
        )
        assert response.status_code == 200
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.parent is None]
    assert len(servers) == 1, [s.name for s in spans]
    server = servers[0]
    assert server.attributes is not None
    assert server.attributes["custview.request_id"] == "traced-1"
    assert server.name.startswith("POST")
    calls = [s for s in spans if s.parent is not None]
    assert all(s.parent.span_id == server.context.span_id for s in calls)  # type: ignore[union-attr]
    assert all(s.context.trace_id == server.context.trace_id for s in calls)
    by_source = {str(s.attributes["custview.source"]): s for s in calls if s.attributes}
    assert set(by_source) == {"crm", "support", "sales", "feedback"}
    crm = by_source["crm"]
    assert crm.attributes is not None and crm.attributes["custview.outcome"] == "ok"
    assert crm.attributes["custview.operation"] in ("scan", "lookup")
    assert crm.name == f"crm {crm.attributes['custview.operation']}"
    support = by_source["support"]
    assert support.status.status_code is StatusCode.ERROR
    assert support.attributes is not None
    assert support.attributes["custview.outcome"] == "SOURCE_UNAVAILABLE"


def test_enabling_tracing_without_the_extra_is_a_located_error(
    tmp_path: Path, demo_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.tracing

    monkeypatch.setattr(gateway.tracing.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as caught:
        load_settings(_config(tmp_path, "{enabled: true}"))
    error = caught.value
    assert error.path == "tracing.enabled" and error.line == 1
    assert "pip install 'custview[otel]'" in error.message
