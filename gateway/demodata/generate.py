"""``custview demo-data``: builds the demo source databases and their ground truth.

The generator derives every source record from one true population (see
``people``), so ``ground_truth.csv`` can say which real person or business
each record belongs to and identity resolution can be measured against it.
Output is a pure function of ``(customers, seed)``: all randomness comes from
seeded ``random.Random`` instances and all dates from the fixed ``AS_OF``.
``groups.csv`` says which business each person works for and which people
share a household; household partners are made after the last chunk (see
``households``), so they add records without changing any other.
Files are written into a temporary sibling directory and renamed into place,
so a half-written set is never mistaken for a complete one.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.demodata.clock import AS_OF
from gateway.demodata.crm import CrmBuilder
from gateway.demodata.feedback import FeedbackBuilder
from gateway.demodata.flaws import QUALITY_TRUTH, plant
from gateway.demodata.households import Households
from gateway.demodata.people import Business, Person, Population
from gateway.demodata.phones import PhoneBook
from gateway.demodata.records import Batch
from gateway.demodata.sales import SalesBuilder
from gateway.demodata.schema import SYSTEMS
from gateway.demodata.support import SupportBuilder
from gateway.demodata.writer import SQLiteWriter, add_missing_indexes

__all__ = ["AS_OF", "GENERATOR_VERSION", "GenerationSummary", "generate", "upgrade"]

GENERATOR_VERSION = "3"
"""2: household partners and groups.csv added; version 1's records are unchanged.
3: indexes on the dated relations' dates; version 2's files are unchanged otherwise, and
:func:`upgrade` brings a version-2 set to 3 in place."""
CHUNK_PEOPLE = 10_000
TRUTH_HEADER = ("source", "table", "record_id", "entity_id", "kind")
GROUPS_HEADER = ("entity_id", "group_id", "kind")
"""groups.csv: a person (``P...``) in a business (``B...``) or a household (``H...``)."""


@dataclass(frozen=True)
class GenerationSummary:
    """What one ``generate`` call produced."""

    out_dir: Path
    customers: int
    seed: int
    counts: dict[str, int]
    """Rows per table, keyed ``"system.table"`` (e.g. ``"crm.contacts"``)."""
    seconds: float


def generate(
    out_dir: Path,
    customers: int = 5000,
    seed: int = 42,
    *,
    households: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationSummary:
    """Writes crm.db, support.db, sales.db, feedback.db, ground_truth.csv,
    quality_truth.csv and manifest.json into ``out_dir``.

    An existing ``out_dir`` is replaced once the new set is complete.
    ``progress(done, total)`` is called after each chunk, counted in real customers.
    ``households`` (on by default) adds partners sharing a home with some people
    after every other record, so ``households=False`` gives the same records
    without them.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    work.chmod(0o755)  # mkdtemp's private 0o700 would otherwise outlive the rename
    try:
        counts = _write_set(work, customers, seed, households, progress)
        _replace(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return GenerationSummary(out_dir, customers, seed, counts, time.perf_counter() - started)


def upgrade(out_dir: Path) -> list[str]:
    """Brings a set made by an earlier generator up to :data:`GENERATOR_VERSION` in
    place where only indexes differ (version 2 to 3): the indexes its files lack are
    created, rows untouched, and the manifest says the new version; the indexes
    added, by ``"system.index"``. Idempotent: a current set is not written to.
    The demo's owner (the benchmark and test harness) calls it; custview never
    writes a source."""
    out_dir = Path(out_dir)
    added = [
        f"{system}.{name}"
        for system in SYSTEMS
        if (out_dir / f"{system}.db").exists()
        for name in add_missing_indexes(out_dir / f"{system}.db", system)
    ]
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("generator_version") == "2":
        manifest["generator_version"] = GENERATOR_VERSION
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return added


def _write_set(
    work: Path,
    customers: int,
    seed: int,
    with_households: bool,
    progress: Callable[[int, int], None] | None,
) -> dict[str, int]:
    phones = PhoneBook(seed)
    population = Population(seed, customers, phones)
    households = Households(seed, customers)
    crm, support, sales = CrmBuilder(seed), SupportBuilder(seed, customers), SalesBuilder(seed)
    feedback = FeedbackBuilder(seed)
    writer = SQLiteWriter(work)
    done = 0

    def build(people: list[Person], businesses: list[Business]) -> Batch:
        batch = Batch()
        crm.build(people, businesses, batch)
        support.build(people, businesses, batch)
        sales.build(people, batch)
        feedback.build(people, batch)
        writer.write(batch.rows)
        return batch

    try:
        with (
            (work / "ground_truth.csv").open("w", newline="", encoding="utf-8") as truth_file,
            (work / "groups.csv").open("w", newline="", encoding="utf-8") as groups_file,
        ):
            truth = csv.writer(truth_file, lineterminator="\n")
            truth.writerow(TRUTH_HEADER)
            groups = csv.writer(groups_file, lineterminator="\n")
            groups.writerow(GROUPS_HEADER)
            for people, businesses in population.chunks(CHUNK_PEOPLE):
                truth.writerows(build(people, businesses).truth)
                households.observe(people)
                groups.writerows(
                    (p.entity_id, p.business.entity_id, "business") for p in people if p.business
                )
                done += len(people)
                if progress is not None:
                    progress(done, customers)
            before = dict(writer.counts)  # ids run 1..count: the last id before partners
            made = list(households.build(phones)) if with_households else []
            partners = [p for h in made for p in h.partners]
            if partners:
                truth.writerows(build(partners, []).truth)
            groups.writerows(
                (p.entity_id, h.entity_id, "household") for h in made for p in h.people()
            )
    except BaseException:
        writer.abort()
        raise
    writer.finish()
    plant(work, seed, before)
    counts = dict(sorted(writer.counts.items()))
    _write_manifest(work, customers, seed, counts, len(made), len(partners))
    return counts


def _write_manifest(
    work: Path, customers: int, seed: int, counts: dict[str, int], households: int, partners: int
) -> None:
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "customers": customers,
        "households": households,
        "household_partners": partners,
        "as_of": AS_OF.date().isoformat(),
        "counts": counts,
        "files": [
            "crm.db",
            "support.db",
            "sales.db",
            "feedback.db",
            "ground_truth.csv",
            QUALITY_TRUTH,
            "groups.csv",
        ],
    }
    text = json.dumps(manifest, indent=2) + "\n"
    (work / "manifest.json").write_text(text, encoding="utf-8")


def _replace(work: Path, out_dir: Path) -> None:
    """Moves the finished ``work`` directory to ``out_dir``, replacing any previous set."""
    if not out_dir.exists():
        work.rename(out_dir)
        return
    retired = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.old")
    out_dir.rename(retired)
    work.rename(out_dir)
    shutil.rmtree(retired, ignore_errors=True)
