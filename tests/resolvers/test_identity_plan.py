"""The stitcher's lookups follow each source's declared capabilities, also when
a source's capabilities change between two resolutions."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from connectors import Capabilities
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.identity import Stitcher


class _Declaring:
    """A connector stand-in that only declares what it can look up."""

    def __init__(self, capabilities: Capabilities) -> None:
        self.capabilities = capabilities

    def capabilities_for(self, table: str) -> Capabilities:
        return self.capabilities


def _planned(stitcher: Stitcher, frontier: set[Any]) -> list[tuple[str, str, str, list[str]]]:
    return [
        (lk.member.id, lk.column, lk.transform, list(lk.variants))
        for lk in stitcher._plan(frontier)
    ]


def test_lookups_follow_the_capabilities_in_force() -> None:
    model = load_settings(DEMO_CONFIG).settings.model
    full = Capabilities(
        supports_batch_lookup=True, lookup_transforms=frozenset({"exact", "casefold", "digits"})
    )
    connectors = {m.source: _Declaring(full) for m in model.customer.members}
    stitcher = Stitcher(model, connectors)  # type: ignore[arg-type]
    frontier = {("email", "ann.lee@example.org")}
    first = _planned(stitcher, frontier)
    assert first and {t for _, _, t, _ in first} == {"casefold"}
    assert _planned(stitcher, frontier) == first  # the same again

    exact = replace(full, lookup_transforms=frozenset({"exact"}))
    for connector in connectors.values():
        connector.capabilities = exact
    assert _planned(stitcher, frontier) == [
        (member, column, "exact", ["ann.lee@example.org"]) for member, column, _, _ in first
    ]
    for connector in connectors.values():
        connector.capabilities = replace(full, supports_batch_lookup=False)
    assert _planned(stitcher, frontier) == []
