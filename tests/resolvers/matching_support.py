"""Demo glue for the matching tests and the accuracy measurement.

Reads the generated demo's member tables with sqlite3 (the resolvers never
open source files themselves), turns each row into a match record and
pairs records with the real person ``ground_truth.csv`` says they belong to.
Run as a script to (re)train the committed demo model and print accuracy
and timing: ``.venv/bin/python -m tests.resolvers.matching_support --help``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sqlite3
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from resolvers.matching import MatchModel, MatchRecord, match_record
from resolvers.matching.settings import TF_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "config" / "demo-model.json"

_QUERIES = {
    "crm.contacts": (
        "crm.db",
        "SELECT c.id, first_name, last_name, email, COALESCE(mobile, c.phone), street, city,"
        " postcode, country, birth_date, a.name, a.domain"
        " FROM contacts c LEFT JOIN accounts a ON a.id = c.account_id",
        (
            "first_name",
            "surname",
            "email",
            "phone",
            "street",
            "city",
            "postcode",
            "country",
            "birth_date",
            "company",
            "company_domain",
        ),
    ),
    "crm.leads": (
        "crm.db",
        "SELECT id, first_name, last_name, email, phone, company FROM leads",
        ("first_name", "surname", "email", "phone", "company"),
    ),
    "sales.customers": (
        "sales.db",
        "SELECT id, first_name, last_name, email, phone, street, city, postcode, country"
        " FROM customers",
        ("first_name", "surname", "email", "phone", "street", "city", "postcode", "country"),
    ),
    "support.users": (
        "support.db",
        "SELECT u.id, u.name, email, phone, locale, o.name, o.domain FROM users u"
        " LEFT JOIN organizations o ON o.id = u.organization_id WHERE role = 'end-user'",
        ("name", "email", "phone", "locale", "company", "company_domain"),
    ),
}


def demo_records(demo_dir: Path) -> list[MatchRecord]:
    """Match records of every person-like member table of a generated demo (a
    contact's company is its account's, a support user's its organization's)."""
    records = []
    for table, (db, sql, fields) in _QUERIES.items():
        with sqlite3.connect(demo_dir / db) as con:
            rows = con.execute(sql).fetchall()
        for row in rows:
            values = dict(zip(fields, row[1:], strict=True))
            records.append(match_record(f"{table}:{row[0]}", table, **values))  # type: ignore[arg-type]
    return records


def ground_truth(demo_dir: Path) -> dict[str, str]:
    """``unique_id -> real entity id`` for the person records."""
    with (demo_dir / "ground_truth.csv").open(encoding="utf-8") as f:
        return {
            f"{row['source']}.{row['table']}:{row['record_id']}": row["entity_id"]
            for row in csv.DictReader(f)
            if row["kind"] == "person"
        }


def true_pairs(truth: dict[str, str], ids: Iterable[str]) -> set[tuple[str, str]]:
    """Every pair (sorted ids) of records of the same real person."""
    groups: dict[str, list[str]] = defaultdict(list)
    for uid in ids:
        if uid in truth:
            groups[truth[uid]].append(uid)
    return {
        (a, b) if a < b else (b, a)
        for members in groups.values()
        for a, b in itertools.combinations(members, 2)
    }


@dataclass(frozen=True)
class Accuracy:
    threshold: float
    predicted: int
    precision: float
    recall: float
    f1: float

    def __str__(self) -> str:
        return (
            f"p>={self.threshold}: {self.predicted} pairs, precision {self.precision:.4f}, "
            f"recall {self.recall:.4f}, F1 {self.f1:.4f}"
        )


def accuracy(
    pairs: Iterable[tuple[str, str, float]],
    truth: set[tuple[str, str]],
    threshold: float,
    label: float | None = None,
) -> Accuracy:
    predicted = {(a, b) if a < b else (b, a) for a, b, p in pairs if p >= threshold}
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    shown = threshold if label is None else label
    return Accuracy(shown, len(predicted), precision, recall, f1)


def cluster_pairs(
    pairs: Iterable[tuple[str, str, float]], threshold: float
) -> list[tuple[str, str, float]]:
    """Every pair implied by the connected components of the pairs at ``threshold``
    (what a customer view shows: links are followed transitively)."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        root = parent.setdefault(node, node)
        while root != parent[root]:
            root = parent[root]
        parent[node] = root
        return root

    for a, b, p in pairs:
        if p >= threshold:
            parent[find(a)] = find(b)
    groups: dict[str, list[str]] = defaultdict(list)
    for node in parent:
        groups[find(node)].append(node)
    return [
        (a, b, 1.0) for members in groups.values() for a, b in itertools.combinations(members, 2)
    ]


def deterministic_pairs(records: Iterable[MatchRecord]) -> list[tuple[str, str, float]]:
    """Pairs sharing a normalised email or phone: the deterministic stitcher's links."""
    pairs = []
    for column in ("email", "phone"):
        groups: dict[str, list[str]] = defaultdict(list)
        for record in records:
            if record[column]:
                groups[record[column] or ""].append(record["unique_id"] or "")
        for ids in groups.values():
            pairs.extend((a, b, 1.0) for a, b in itertools.combinations(ids, 2))
    return pairs


def scoring_micros(
    model: MatchModel, records: dict[str, MatchRecord], pairs: list[tuple[str, str]]
) -> float:
    """Median µs per pair of ``model.score`` over ``pairs`` (5 runs)."""
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for a, b in pairs:
            model.score(records[a], records[b])
        runs.append((time.perf_counter() - started) / len(pairs) * 1e6)
    return statistics.median(runs)


def main() -> None:  # pragma: no cover - a measurement script
    from gateway.demodata.generate import generate
    from resolvers.matching.frequencies import TermFrequencies
    from resolvers.matching.train import predict_pairs, train_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", type=Path, default=Path("/tmp/custview-matching"))
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("--no-train", action="store_true", help="evaluate --model as is")
    parser.add_argument("--eval-customers", type=int, help="evaluate on another demo size")
    parser.add_argument("--eval-seed", type=int, help="evaluate on another demo seed")
    parser.add_argument(
        "--model-tf",
        action="store_true",
        help="score with the model's term frequencies, not those of the evaluated records",
    )
    parser.add_argument(
        "--households",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="demos with partners sharing a home (the generator's default)",
    )
    args = parser.parse_args()

    def demo(customers: int, seed: int) -> Path:
        suffix = "-households" if args.households else ""
        demo_dir = args.work / f"demo-{customers}-{seed}{suffix}"
        if not (demo_dir / "manifest.json").exists():
            generate(demo_dir, customers, seed, households=args.households)
        return demo_dir

    demo_dir = demo(args.customers, args.seed)
    if not args.no_train:
        started = time.perf_counter()
        train_model(demo_records(demo_dir), args.model, seed=args.seed)
        print(f"trained in {time.perf_counter() - started:.1f} s -> {args.model}")
    if args.eval_customers or args.eval_seed is not None:
        demo_dir = demo(args.eval_customers or args.customers, args.eval_seed or args.seed)
        print(f"evaluating on {demo_dir.name}")
    records = demo_records(demo_dir)
    truth = ground_truth(demo_dir)
    print(f"{len(records)} match records")
    tf = None if args.model_tf else TermFrequencies.from_records(records, TF_COLUMNS)
    started = time.perf_counter()
    pairs = predict_pairs(records, args.model, threshold=0.0, term_frequencies=tf)
    print(f"splink predict: {len(pairs)} candidate pairs in {time.perf_counter() - started:.1f} s")
    pair_truth = true_pairs(truth, (r["unique_id"] or "" for r in records))
    candidates = {(a, b) if a < b else (b, a) for a, b, _ in pairs}
    print(
        f"{len(pair_truth)} true pairs, blocking recall:"
        f" {len(candidates & pair_truth) / len(pair_truth):.4f}"
    )
    model = MatchModel.load(args.model)
    if tf is not None:
        model = model.with_term_frequencies(tf)
    by_id = {str(r["unique_id"]): r for r in records}
    ours = [(a, b, model.score(by_id[a], by_id[b]).probability) for a, b, _ in pairs]
    worst = max(abs(p - q[2]) for p, q in zip((p for _, _, p in pairs), ours, strict=True))
    print(f"in-process vs splink: max |Δp| = {worst:.3g} over {len(pairs)} pairs")
    exact = deterministic_pairs(records)
    print("exact keys ", accuracy(cluster_pairs(exact, 1.0), pair_truth, 1.0))
    for threshold in (0.5, 0.9, 0.99):
        print("splink     ", accuracy(pairs, pair_truth, threshold))
        print("in-process ", accuracy(ours, pair_truth, threshold))
        print("clustered  ", accuracy(cluster_pairs(pairs, threshold), pair_truth, 1.0, threshold))
        both = cluster_pairs([*exact, *pairs], threshold)
        print("keys+model ", accuracy(both, pair_truth, 1.0, threshold))
    sample = [(a, b) for a, b, _ in pairs[:20_000]]
    print(f"in-process scoring: {scoring_micros(model, by_id, sample):.1f} µs per pair")


if __name__ == "__main__":  # pragma: no cover
    main()
