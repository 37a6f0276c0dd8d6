"""Connector discovery through the ``custview.connectors`` entry-point group.

Built-in connectors register through the same group as third-party ones
(see ``pyproject.toml``); tests and embedders may :func:`register` a class
directly without packaging it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from connectors._base import Connector
from connectors.errors import PluginError

GROUP = "custview.connectors"

_registered: dict[str, type[Connector]] = {}


def register(kind: str, cls: type[Connector]) -> None:
    """Make ``cls`` available under ``kind`` without an entry point."""
    _registered[kind] = cls


def unregister(kind: str) -> None:
    _registered.pop(kind, None)


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of every connector kind that could be loaded."""
    return sorted(set(_registered) | set(_entry_points()))


def load(kind: str) -> type[Connector]:
    """The connector class registered as ``kind``; a clear error if it cannot load."""
    if kind in _registered:
        return _registered[kind]
    eps = _entry_points()
    ep = eps.get(kind)
    if ep is None:
        known = ", ".join(available()) or "none"
        raise PluginError(
            f"no connector named '{kind}' is installed (installed: {known}); "
            f"install a package that registers it in the '{GROUP}' entry-point group"
        )
    try:
        cls = ep.load()
    except Exception as exc:
        package = ep.dist.name if ep.dist else ep.value
        raise PluginError(
            f"connector '{kind}' from package '{package}' failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise PluginError(f"entry point '{kind}' ({ep.value}) is not a Connector subclass")
    return cls
