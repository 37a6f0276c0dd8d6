"""custview-csv-connector: read a folder of CSV files as a custview source.

Registered as ``csv`` in the ``custview.connectors`` entry-point group (see
``pyproject.toml``); custview finds it once the package is installed.
"""

from __future__ import annotations

from custview_csv.connector import CSVConnector, CSVOptions

__all__ = ["CSVConnector", "CSVOptions"]
