"""The built-in SQL connector (PostgreSQL, MySQL/MariaDB, SQLite, ...).

Registered as ``sql`` in the ``custview.connectors`` entry-point group.
"""

from __future__ import annotations

from connectors.errors import SchemaMismatch
from connectors.sql.connector import SQLConnector
from connectors.sql.options import SQLOptions

__all__ = ["SQLConnector", "SQLOptions", "SchemaMismatch"]
