"""OpenTelemetry tracing, an optional extra (``pip install 'custview[otel]'``).

With ``tracing.enabled`` every HTTP request gets a server span (OpenTelemetry's
ASGI middleware: W3C ``traceparent`` from the caller is honoured) carrying the
request id, and every source call a child span named ``<source> <operation>``
with the source, the operation and the outcome as attributes (retries and
waiting at the bulkhead included, as in ``custview_source_call_seconds``).
Spans go to an OTLP/HTTP collector or to stderr (``console``). Without the
extra installed, enabling tracing is a configuration error; with tracing off
nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp

from connectors import Connector
from connectors.request_id import current_request_id
from connectors.resilience import resilient_in

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

EXTRA_HINT = "install the tracing extra: pip install 'custview[otel]'"


class TracingSettings(BaseModel):
    """``tracing`` in the settings file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    exporter: Literal["otlp", "console"] = "otlp"
    """``otlp``: OTLP over HTTP (protobuf) to ``endpoint``; ``console``: JSON on stderr."""
    endpoint: str | None = None
    """OTLP traces URL; default: ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``http://localhost:4318/v1/traces``."""
    service_name: str = Field(default="custview", min_length=1)
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of new traces recorded; a caller's sampled ``traceparent`` is followed."""


def otel_missing() -> str | None:
    """Why tracing cannot be enabled here, or ``None`` when the extra is installed."""
    for module in ("opentelemetry.sdk.trace", "opentelemetry.instrumentation.asgi"):
        try:
            found = importlib.util.find_spec(module)
        except ImportError:
            found = None
        if found is None:
            return f"tracing is enabled but {module} is not installed; {EXTRA_HINT}"
    return None


def tracer_provider(settings: TracingSettings) -> TracerProvider:
    """A provider exporting in batches to the configured exporter."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    exporter: SpanExporter
    if settings.exporter == "console":
        exporter = ConsoleSpanExporter(out=sys.stderr)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.endpoint)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _stamp_request_id(span: Any, scope: dict[str, Any]) -> None:
    request_id = current_request_id()
    if request_id is not None and span.is_recording():
        span.set_attribute("custview.request_id", request_id)


def traced_app(app: ASGIApp, provider: TracerProvider) -> ASGIApp:
    """``app`` with a server span per HTTP request (inside the request id's scope)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(
        app,
        tracer_provider=provider,
        server_request_hook=_stamp_request_id,
        exclude_spans=["receive", "send"],
    )


def trace_sources(connectors: Mapping[str, Connector], provider: TracerProvider) -> None:
    """A span per call of these connectors (made by their resilience wrapper)."""
    tracer = provider.get_tracer("custview.sources")
    for connector in connectors.values():
        resilient = resilient_in(connector)
        if resilient is not None:
            resilient.tracer = tracer
