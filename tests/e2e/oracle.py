"""A brute-force reference for deterministic stitching.

Reads every member table of the demo SQLite files whole, links records that
share a normalised identity key, and returns the connected components. The
gateway, which stitches lazily through batched lookups, must agree with it.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path

from resolvers.model import UnifiedModel
from resolvers.normalize import NORMALIZERS


def clusters(model: UnifiedModel, demo_dir: Path) -> dict[str, frozenset[str]]:
    """Record reference -> the references of every record of the same customer."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    for member in model.customer.members:
        con = sqlite3.connect(demo_dir / f"{member.source}.db")
        con.row_factory = sqlite3.Row
        for row in con.execute(f'SELECT * FROM "{member.table}"'):
            ref = f"{member.source}/{member.table}/{row[member.key]}"
            find(ref)
            region = row[member.region] if member.region else None
            for key_name, columns in member.identity.items():
                spec = model.identity.keys[key_name]
                normalize = NORMALIZERS[spec.normalize].normalize
                for column in columns:
                    value = normalize(row[column], region, spec.default_region)
                    if value:
                        union(ref, f"key:{key_name}:{value}")
        con.close()
    groups: dict[str, set[str]] = defaultdict(set)
    for node in list(parent):
        if not node.startswith("key:"):
            groups[find(node)].add(node)
    return {ref: frozenset(refs) for refs in groups.values() for ref in refs}
