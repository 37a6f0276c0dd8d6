"""Connector discovery through the ``custview.connectors`` entry-point group.

Built-in connectors register through the same group as third-party ones
(see ``pyproject.toml``); tests and embedders may :func:`register` a class
directly without packaging it. An allow-list, when given, is checked before
anything is imported: a plugin that is not allowed never runs its code.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

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


def load(kind: str, *, allowed: Collection[str] | None = None) -> type[Connector]:
    """The connector class registered as ``kind``; a clear error if it cannot load.

    With ``allowed``, a ``kind`` not in it is refused before it is imported.
    """
    if allowed is not None and kind not in allowed:
        permitted = ", ".join(sorted(allowed)) or "none"
        raise PluginError(f"connector '{kind}' is not allowed (allowed: {permitted})")
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


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed connector kind, as ``custview connectors`` lists it."""

    kind: str
    module: str
    """Where the class lives: ``module:Class``."""
    package: str | None
    """The distribution that registered it; ``None`` for :func:`register`."""
    version: str | None
    description: str = ""
    capabilities: dict[str, Any] | None = None
    """:meth:`Connector.describe`'s capabilities; ``None`` when they depend on options."""
    error: str | None = None
    """Why the class could not be loaded, if it could not."""


def installed() -> list[PluginInfo]:
    """Every available connector kind, loaded to describe it; failures are reported, not raised."""
    eps = _entry_points()
    found: list[PluginInfo] = []
    for kind in available():
        ep = None if kind in _registered else eps[kind]
        package = ep.dist.name if ep is not None and ep.dist else None
        version = ep.dist.version if ep is not None and ep.dist else None
        module = ep.value if ep is not None else "?"
        try:
            cls = load(kind)
            described = cls.describe()
        except PluginError as exc:
            found.append(PluginInfo(kind, module, package, version, error=exc.message))
            continue
        except Exception as exc:  # a third-party describe() must not break the listing
            error = f"describe() failed: {type(exc).__name__}: {exc}"
            found.append(PluginInfo(kind, module, package, version, error=error))
            continue
        found.append(
            PluginInfo(
                kind,
                ep.value if ep is not None else f"{cls.__module__}:{cls.__qualname__}",
                package,
                version,
                str(described.get("description", "")),
                described.get("capabilities"),
            )
        )
    return found
