"""GraphiQL served from custview's own static files, never from a CDN.

strawberry's GraphiQL page points at unpkg; the same files (same integrity
hashes) ship in ``gateway/static/graphiql`` and the page is rewritten to
load them from ``/static/graphiql``.
"""

from __future__ import annotations

import json
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


WELCOME = """# custview: one live view of every customer, read from the source systems.
#
# Press Ctrl-Enter to run. Open the docs (top left) to see every field.
# customer(...) takes an id, an email, a phone or a source record ref such as
# "support/users/18"; every golden field explains itself in provenance.

{
  customers(first: 5) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id name email phone country
      sourceRecords { source table id }
      provenance { field ref rule }
      tickets(first: 3) { subject status priority createdAt }
      orders(first: 3) { orderNumber total currency createdAt }
      opportunities { name stage amount }
    }
  }
  sources { name kind status latencyMs }
}
"""


@cache
def graphiql_html(headers: str | None = None) -> str:
    """strawberry's GraphiQL page with every asset served locally; ``headers`` (JSON
    text) pre-fills its Headers tab.

    Falls back to the CDN page, unchanged, if strawberry's page no longer
    names the vendored versions (a test catches that on upgrade).
    """
    html = get_graphql_ide_html(graphql_ide="graphiql")
    if not all(url in html for url in _ASSETS):
        return html
    for url, name in _ASSETS.items():
        html = html.replace(url, PREFIX + name)
    start = html.find("const EXAMPLE_QUERY = `")
    end = html.find("`;", start)
    if start != -1 and end != -1:
        welcome = WELCOME.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")
        html = html[:start] + "const EXAMPLE_QUERY = `" + welcome + html[end:]
    if headers:
        # pre-fill the Headers tab (the demo's documented key), unless the URL sets one
        html = html.replace(
            "React.useState(parameters.headers)",
            f"React.useState(parameters.headers || {json.dumps(headers)})",
        )
    return html
