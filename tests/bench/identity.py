"""``make bench`` identity report: accuracy on the demo truth and resolve throughput.

For each size (default 5,000 and 100,000 demo customers, cached in
``bench-data/<customers>/``; add 1,000,000 with ``--sizes`` or
``BENCH_IDENTITY_1M=1``) it runs ``custview resolve`` (a full run, then an
incremental run with nothing changed) on the demo's SQL sources with the
committed model, and measures pairwise precision, recall and F1 against
``ground_truth.csv`` for

* **deterministic** — records sharing a normalised email or phone, followed
  transitively (what custview stitches with no model);
* **full matcher** — the same plus the registry's links at or above the
  ``link`` threshold, followed transitively (what lists, lookups and exports
  serve after a run).

The baseline in the same run is the deterministic stitcher; resolve
throughput is records per second over the whole run (read, score, write).

    python -m tests.bench.identity [--sizes 5000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from gateway.settings import load_settings
from resolvers.resolve import resolve
from tests.bench.run import DEFAULT_DATA_ROOT, demo_dir_env, ensure_data, sql_only_config
from tests.resolvers.matching_support import demo_records, ground_truth

DEFAULT_SIZES = (5_000, 100_000)


class _Clusters:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, node: str) -> str:
        root = self.parent.setdefault(node, node)
        while root != self.parent[root]:
            root = self.parent[root]
        while node != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    def pairs(self) -> set[tuple[str, str]]:
        groups: dict[str, list[str]] = defaultdict(list)
        for node in self.parent:
            groups[self.find(node)].append(node)
        return {
            (a, b) if a < b else (b, a)
            for members in groups.values()
            for a, b in itertools.combinations(members, 2)
        }


def _ref(unique_id: str) -> str:
    table, key = unique_id.split(":", 1)
    return f"{table.replace('.', '/')}/{key}"


def scores(predicted: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs": len(predicted)}


def _true_pairs(truth: dict[str, str]) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for ref, entity in truth.items():
        groups[entity].append(ref)
    return {
        (a, b) if a < b else (b, a)
        for members in groups.values()
        for a, b in itertools.combinations(members, 2)
    }


def _deterministic(records: Iterable[dict[str, Any]]) -> _Clusters:
    clusters = _Clusters()
    for record in records:
        ref = _ref(str(record["unique_id"]))
        clusters.find(ref)
        for column in ("email", "phone"):
            if record.get(column):
                clusters.union(ref, f"{column}:{record[column]}")
    return clusters


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the resolve workers):
    fairer than wall time on a machine shared with other jobs."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _config(data_dir: Path, registry: Path) -> Path:
    config = yaml.safe_load(sql_only_config(data_dir).read_text())
    config["registry"] = {"url": f"sqlite+aiosqlite:///{registry}"}
    config["model"]["identity"]["probabilistic"] = {
        "model": "config/demo-model.json",
        "link": 0.99,
        "candidate": 0.5,
    }
    path = registry.parent / "bench-identity.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def bench_size(customers: int, root: Path, console: Console) -> dict[str, Any]:
    data_dir = ensure_data(root, customers, console)
    with tempfile.TemporaryDirectory() as tmp, demo_dir_env(data_dir):
        loaded = load_settings(_config(data_dir, Path(tmp) / "registry.db"))
        federation = loaded.create_federation()
        await federation.open()
        try:
            console.print(f"[bold]{customers:,} customers[/]: custview resolve (full)")
            started, cpu = time.perf_counter(), _cpu_seconds()
            full = await resolve(federation, full=True)
            full_seconds = time.perf_counter() - started
            full_cpu = _cpu_seconds() - cpu
            started = time.perf_counter()
            again = await resolve(federation)
            incremental_seconds = time.perf_counter() - started
            registry = federation.registry
            assert registry is not None
            links = [pair for pair, p in registry.stored_links().items() if p >= 0.99]
        finally:
            await federation.aclose()
    truth_by_id = ground_truth(data_dir)
    records = [r for r in demo_records(data_dir) if str(r["unique_id"]) in truth_by_id]
    # the truth over the records the SQL sources hold (the REST feedback source is left out)
    truth = {_ref(str(r["unique_id"])): truth_by_id[str(r["unique_id"])] for r in records}
    true = _true_pairs(truth)
    people = set(truth)

    def person_pairs(clusters: _Clusters) -> set[tuple[str, str]]:
        return {(a, b) for a, b in clusters.pairs() if a in people and b in people}

    deterministic = _deterministic(records)
    det = scores(person_pairs(deterministic), true)
    for a, b in links:
        deterministic.union(a, b)
    full_matcher = scores(person_pairs(deterministic), true)
    return {
        "customers": customers,
        "records": full.records,
        "deterministic": det,
        "full_matcher": full_matcher,
        "resolve_full_seconds": round(full_seconds, 2),
        "resolve_full_records_per_second": round(full.records / full_seconds),
        "resolve_full_cpu_seconds": round(full_cpu, 1),
        "resolve_phases": {k: round(v, 2) for k, v in full.seconds.items()},
        "resolve_incremental_seconds": round(incremental_seconds, 2),
        "incremental_changed": again.changed,
        "links": full.links,
        "possible_duplicates": full.candidates,
    }


def report_table(results: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="identity: pairwise accuracy on the demo truth, resolve throughput")
    for column in (
        "customers",
        "matcher",
        "precision",
        "recall",
        "F1",
        "resolve full",
        "CPU s",
        "records/s",
        "incremental (no change)",
    ):
        table.add_column(column, justify="right")
    for r in results:
        for label, key in (("deterministic", "deterministic"), ("full", "full_matcher")):
            s = r[key]
            full = label == "full"
            table.add_row(
                f"{r['customers']:,}",
                label,
                f"{s['precision']:.4f}",
                f"{s['recall']:.4f}",
                f"{s['f1']:.4f}",
                f"{r['resolve_full_seconds']:.1f} s" if full else "",
                f"{r['resolve_full_cpu_seconds']:.1f}" if full else "",
                f"{r['resolve_full_records_per_second']:,}" if full else "",
                f"{r['resolve_incremental_seconds']:.1f} s" if full else "",
            )
    return table


async def run(sizes: Sequence[int], root: Path, console: Console) -> list[dict[str, Any]]:
    results = [await bench_size(n, root, console) for n in sizes]
    console.print(report_table(results))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.identity", description=__doc__)
    parser.add_argument("--sizes", nargs="+", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_ROOT)
    args = parser.parse_args(argv)
    sizes = args.sizes or [
        *DEFAULT_SIZES,
        *([1_000_000] if os.environ.get("BENCH_IDENTITY_1M") else []),
    ]
    console = Console() if sys.stdout.isatty() else Console(width=140)
    asyncio.run(run(sizes, args.data_dir, console))
    return 0


if __name__ == "__main__":
    sys.exit(main())
