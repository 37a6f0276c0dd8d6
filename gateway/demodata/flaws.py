"""Values that fail data-quality checks, planted on purpose and written down.

Real systems hold a few values no validator accepts: an email typed with a
comma, a phone with digits missing, a postcode of the wrong shape. The demo
plants a known ~1% of each into finished databases, from its own seeded
stream (so the rest of the data is the same as without them), and lists
them in ``quality_truth.csv`` so the quality checks are measured, not
assumed. Planted values stay out of the identity keys' way: emails only in
CRM leads, phones only in shop customers that also have an email.
"""

from __future__ import annotations

import csv
import random
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

QUALITY_TRUTH = "quality_truth.csv"
HEADER = ("source", "table", "record_id", "column", "check", "value")
RATE = 0.01


def _bad_email(rng: random.Random, email: str) -> str:
    local, _, domain = email.strip().partition("@")
    name, _, tld = domain.rpartition(".")
    return rng.choice(
        (f"{local} at {domain}", f"{local}@{name},{tld}", f"{local}@@{domain}", f"{local}@{name}")
    )


def _bad_phone(rng: random.Random, phone: str) -> str:
    digits = [c for c in phone if c.isdigit()]
    return rng.choice(("".join(digits[:4]), "000", "12-34", "n/a"))


def _bad_postcode(rng: random.Random, postcode: str) -> str:
    return rng.choice(("N/A", "?", "0", "XXXXXXXX", postcode.replace(" ", "") + "99"))


_PLANTS: list[tuple[str, str, str, str, str, Callable[[random.Random, str], str]]] = [
    ("crm", "leads", "email", "email", "email IS NOT NULL", _bad_email),
    ("sales", "customers", "phone", "phone", "phone IS NOT NULL AND email IS NOT NULL", _bad_phone),
    ("sales", "customers", "postcode", "postcode", "postcode IS NOT NULL", _bad_postcode),
]


def plant(work: Path, seed: int, last_ids: Mapping[str, int] | None = None) -> None:
    """Change ~1% of the planted columns in ``work``'s databases; write the list.

    With ``last_ids`` (``"source.table"`` -> id), only records up to that id are
    candidates, so records appended later (household partners) change nothing
    about which earlier records are spoiled."""
    rng = random.Random(f"quality-{seed}")
    rows: list[tuple[str, ...]] = []
    for source, table, column, check, where, spoil in _PLANTS:
        con = sqlite3.connect(work / f"{source}.db")
        try:
            found = con.execute(
                f'SELECT id, "{column}" FROM "{table}" WHERE {where} ORDER BY id'
            ).fetchall()
            if last_ids is not None:
                found = [row for row in found if row[0] <= last_ids[f"{source}.{table}"]]
            chosen = rng.sample(found, k=max(1, round(len(found) * RATE))) if found else []
            for record_id, value in sorted(chosen):
                bad = spoil(rng, str(value))
                con.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE id = ?', (bad, record_id))
                rows.append((source, table, str(record_id), column, check, bad))
            con.commit()
        finally:
            con.close()
    with (work / QUALITY_TRUTH).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
