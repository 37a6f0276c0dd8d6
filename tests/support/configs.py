"""Small settings files over the people dataset (tests/connectors/sql_fixtures.py),
for tests that run the gateway or the CLI against databases they created."""

from __future__ import annotations


def people_config(urls: dict[str, str], head: str = "", source_extra: str = "") -> str:
    """One ``sql`` source per ``urls`` entry, each a customer member table ``people``
    stitched by email. ``head`` goes before ``sources`` (e.g. a ``server`` or
    ``cache`` section); ``source_extra`` is added to every source (indented keys)."""
    sources = "".join(
        f'  {name}:\n    connector: sql\n    options: {{url: "{url}", timeout: 5}}\n' + source_extra
        for name, url in urls.items()
    )
    members = "".join(
        f"      - {{source: {name}, table: people, fields: {{name: name, email: email}}, "
        "identity: {email: [email]}}\n"
        for name in urls
    )
    return (
        "version: 1\n"
        + head
        + "sources:\n"
        + sources
        + "model:\n  customer:\n    fields:\n      name: {type: string}\n"
        "      email: {type: string, normalize: email}\n    members:\n"
        + members
        + "  identity:\n    keys:\n      email: {normalize: email}\n"
    )
