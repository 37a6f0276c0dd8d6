"""``custview`` with a bug whose error quotes secrets: run as
``python tests/support/leaky_cli.py ARGS...`` with ``LEAK_MESSAGE`` in the
environment. An export's read of the member table 'leads' and every look at the
sources' health (``{ sources }``, ``/readyz``) raise ``ValueError(LEAK_MESSAGE)``,
as a bug in custview or a connector plugin would."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.cli import main
from resolvers import walk
from resolvers.view import Federation

MESSAGE = os.environ["LEAK_MESSAGE"]
scan = walk._scan_keys


async def leaking_scan(federation: Any, member: Any, edges: Any) -> int:
    if member.spec.table == "leads":
        raise ValueError(MESSAGE)
    return await scan(federation, member, edges)


async def leaking_sources(self: Federation) -> Any:
    raise ValueError(MESSAGE)


walk._scan_keys = leaking_scan  # type: ignore[assignment]
Federation.sources = leaking_sources  # type: ignore[method-assign]
sys.argv[0] = "custview"
main()
