"""The Customer 360 page at ``/``: static HTML, CSS and JS shipped in the package.

The page is a client of the public GraphQL API and nothing else: it reads
the schema by introspection, sends the key the user typed, and renders
whatever the schema offers. The server only fills in the key to pre-fill
(the demo's documented one), as GraphiQL's Headers tab does.
"""

from __future__ import annotations

import html
from functools import cache

from gateway.graphiql import STATIC_DIR

PAGE_DIR = STATIC_DIR / "app"
_KEY_MARK = "{{default_key}}"
_SCHEME_MARK = "{{default_scheme}}"


def prefill(headers: dict[str, str] | None) -> tuple[str, str]:
    """The (scheme, credential) the page's key field starts with: ``apikey`` for
    an ``X-API-Key`` header, ``bearer`` for ``Authorization: Bearer``."""
    for name, value in (headers or {}).items():
        if name.lower() == "x-api-key":
            return "apikey", value
        if name.lower() == "authorization" and value.lower().startswith("bearer "):
            return "bearer", value[7:].strip()
    return "apikey", ""


@cache
def page_html(scheme: str = "apikey", key: str = "") -> str:
    """The page's HTML with the credential to pre-fill (empty: none)."""
    text = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
    return text.replace(_KEY_MARK, html.escape(key, quote=True)).replace(
        _SCHEME_MARK, html.escape(scheme, quote=True)
    )
