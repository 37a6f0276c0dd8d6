"""``python -m gateway`` runs the custview command."""

from __future__ import annotations

from gateway.cli import main

main()
