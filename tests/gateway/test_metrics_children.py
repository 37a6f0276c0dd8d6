"""The metric children kept at hand count under the labels a lookup would give."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from strawberry.types.graphql import OperationType

from gateway import metrics as metrics_module
from gateway.metrics import GatewayMetrics


def _operation(name: str | None) -> Any:
    return SimpleNamespace(
        operation_type=OperationType.QUERY,
        operation_name=name,
        result=None,
        pre_execution_errors=None,
    )


def _count(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_source_calls_count_per_label_set_past_the_kept_children(monkeypatch: Any) -> None:
    monkeypatch.setattr(metrics_module, "MAX_KEPT_CHILDREN", 2)
    metrics = GatewayMetrics()
    calls = [("crm", "lookup_many", "ok"), ("crm", "scan", "ok"), ("sales", "lookup_many", "ok")]
    for _ in range(3):
        for source, operation, outcome in calls:
            metrics._source_call(source, operation, outcome, 0.001)
    metrics._source_call("crm", "lookup_many", "SOURCE_TIMEOUT", 0.5)
    name = "custview_source_call_seconds_count"
    for source, operation, outcome in calls:
        assert _count(metrics, name, source=source, operation=operation, outcome=outcome) == 3
    timeouts = _count(
        metrics, name, source="crm", operation="lookup_many", outcome="SOURCE_TIMEOUT"
    )
    assert timeouts == 1


def test_an_operation_keeps_its_label_once_the_names_are_full(monkeypatch: Any) -> None:
    monkeypatch.setattr(metrics_module, "MAX_OPERATION_NAMES", 2)
    monkeypatch.setattr(metrics_module, "MAX_KEPT_CHILDREN", 3)
    metrics = GatewayMetrics()
    for name in ["A", "B", "C", "A", None, "bad name", "C", "B", "D", "A"]:
        metrics._observe(_operation(name), 0.01, True)
    name = "custview_graphql_operation_seconds_count"
    assert _count(metrics, name, operation="A", type="query") == 3
    assert _count(metrics, name, operation="B", type="query") == 2
    assert _count(metrics, name, operation="anonymous", type="query") == 1
    # C and D came after the first two names, and "bad name" is not a name
    assert _count(metrics, name, operation="other", type="query") == 4
    assert _count(metrics, name, operation="C", type="query") == 0
