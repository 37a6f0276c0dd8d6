"""The built-in REST connector: JSON APIs over HTTP(S), read with GET only.

Registered as ``rest`` in the ``custview.connectors`` entry-point group.
The option reference is ``docs/connectors/rest.md``.
"""

from __future__ import annotations

from connectors.rest.connector import RESTConnector
from connectors.rest.options import (
    APIKeyAuth,
    BasicAuth,
    BearerAuth,
    CursorPagination,
    LinkPagination,
    LookupOptions,
    NoPagination,
    OAuth2ClientCredentials,
    OffsetPagination,
    PagePagination,
    ResourceOptions,
    RESTOptions,
    SortOptions,
)

__all__ = [
    "APIKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "CursorPagination",
    "LinkPagination",
    "LookupOptions",
    "NoPagination",
    "OAuth2ClientCredentials",
    "OffsetPagination",
    "PagePagination",
    "RESTConnector",
    "RESTOptions",
    "ResourceOptions",
    "SortOptions",
]
