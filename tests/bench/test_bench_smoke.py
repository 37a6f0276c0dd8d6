"""Keeps ``make bench`` from rotting: the quick mode end to end on 1,000 customers.

Asserts the shape of the results (both operations measured for both
contenders, positive ratios, the floor/custview equality check passed),
never a timing.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench import hot
from tests.bench.run import CUSTOMER_360, PAGE_50, main


def test_quick_bench_runs_and_reports(tmp_path: Path) -> None:
    output = tmp_path / "results.json"

    code = main(
        ["--sizes", "1000", "--quick", "--data-dir", str(tmp_path), "--output", str(output)]
    )

    assert code == 0
    assert (tmp_path / "1000" / "manifest.json").exists()
    report = json.loads(output.read_text())
    assert report["quick"] is True
    (size,) = report["sizes"]
    assert size["customers"] == 1000
    assert size["check"]["passed"] is True
    assert size["check"]["emails_checked"] > 0
    assert size["check"]["pages_checked"] > 0
    assert set(size["operations"]) == {CUSTOMER_360, PAGE_50}
    for op in size["operations"].values():
        assert op["requests"] > 0
        assert op["ratio_p50"] > 0
        assert op["ratio_p95"] > 0
        for side in ("custview", "floor"):
            stats = op[side]
            assert 0 < stats["p50_ms"] <= stats["p95_ms"]
            assert stats["statements_per_request"] > 0
    assert size["operations"][CUSTOMER_360]["found"] > 0
    exports = json.loads((tmp_path / "export-results.json").read_text())["exports"]
    assert {(e["customers"], e["format"]) for e in exports} == {(1000, "csv"), (1000, "arrow")}
    for e in exports:
        assert e["custview"]["rows"] >= 1000, "every customer exported"
        assert e["floor"]["rows"] >= e["custview"]["rows"], "the floor reads every member record"
        for side in ("custview", "floor"):
            assert e[side]["rows_per_s"] > 0 and e[side]["peak_rss_mb"] > 0


def test_quick_planner_bench_agrees_with_its_floor(tmp_path: Path) -> None:
    from tests.bench.planner import OPERATIONS
    from tests.bench.planner import main as planner_main

    output = tmp_path / "planner.json"
    code = planner_main(
        ["--sizes", "1000", "--quick", "--data-dir", str(tmp_path), "--output", str(output)]
    )

    assert code == 0, "custview and the floor gave the same answers"
    (size,) = json.loads(output.read_text())["sizes"]
    assert set(size["operations"]) == set(OPERATIONS)
    for op in size["operations"].values():
        assert op["ratio_p50"] > 0
        for side in ("custview", "floor"):
            assert op[side]["statements"] > 0 and op[side]["rows"] > 0
    assert size["operations"]["timeline_page"]["compiled"] > 0, "on the gateway's fast path"


def test_hot_bench_counts_calls_per_request(tmp_path: Path) -> None:
    code = hot.main(
        ["--customers", "1000", "--quick", "--calls", "--floor-inline", "--data-dir", str(tmp_path)]
    )

    assert code == 0
    (size,) = json.loads((tmp_path / "hot-calls.json").read_text())["sizes"]
    assert size["customers"] == 1000
    for operation in (CUSTOMER_360, PAGE_50):
        counted = size["calls_per_request"][operation]
        assert set(counted) == set(hot.CONTENDERS)
        totals = {name: sum(areas.values()) for name, areas in counted.items()}
        assert all(total > 0 for total in totals.values())
        # the compiled path skips graphql-core's per-field execution
        assert totals["fast"] < totals["general"]
        assert counted["general"]["graphql"] > 10 * counted["fast"].get("graphql", 0)
        assert "tests/bench/floor.py" in counted["floor"]
        assert "resolvers/fastpath.py" in counted["fast"]
        # the HTTP apps, driven through ASGI in process: the driver itself is not counted
        apps = size["app_calls_per_request"][operation]
        assert set(apps) == set(hot.APPS)
        assert "starlette" in apps["floor"]["app"]
        assert "gateway/graphql_http.py" in apps["fast"]["app"]
        assert "gateway/graphql_http.py" not in apps["fast"]["direct"]
        assert "tests/bench/hot_http.py" not in apps["fast"]["app"]
        layer = size["http_layer_calls_per_request"][operation]
        assert 0 < layer["floor"] < layer["fast"]
