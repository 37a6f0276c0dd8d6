"""GraphiQL served from custview's own static files, never from a CDN.

strawberry's GraphiQL page points at unpkg; the same files (same integrity
hashes) ship in ``gateway/static/graphiql`` and the page is rewritten to
load them from ``/static/graphiql``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from strawberry.http.ides import get_graphql_ide_html

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/static/graphiql/"
_ASSETS = {
    "https://unpkg.com/react@18.2.0/umd/react.production.min.js": "react.production.min.js",
    "https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js": (
        "react-dom.production.min.js"
    ),
    "https://unpkg.com/js-cookie@3.0.5/dist/js.cookie.min.js": "js.cookie.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css": "graphiql.min.css",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js": "graphiql.min.js",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css": "plugin-explorer.css",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": (
        "plugin-explorer.umd.js"
    ),
}


@cache
def graphiql_html() -> str:
    """strawberry's GraphiQL page with every asset served locally.

    Falls back to the CDN page, unchanged, if strawberry's page no longer
    names the vendored versions (a test catches that on upgrade).
    """
    html = get_graphql_ide_html(graphql_ide="graphiql")
    if not all(url in html for url in _ASSETS):
        return html
    for url, name in _ASSETS.items():
        html = html.replace(url, PREFIX + name)
    return html
