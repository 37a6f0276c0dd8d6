"""An ``email_provider`` key over the live demo: a Gmail address written with
other dots and a ``+tag`` finds the customer, through a pushed-down lookup."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.settings import DEMO_CONFIG, load_settings
from tests.e2e.conftest import gql, serve_in_process

QUERY = """query($email: String!) { customer(email: $email) { id sourceRecords { ref } } }"""


async def test_gmail_spellings_find_the_same_customer(
    demo_env: None, demo_dir: Path, tmp_path: Path
) -> None:
    text = DEMO_CONFIG.read_text()
    assert "      email: {normalize: email}\n" in text
    config = tmp_path / "provider.yaml"
    config.write_text(
        text.replace(
            "      email: {normalize: email}\n", "      email: {normalize: email_provider}\n", 1
        )
    )
    (stored,) = (
        sqlite3.connect(demo_dir / "sales.db")
        .execute(
            "SELECT email FROM customers WHERE lower(trim(email)) LIKE '%@gmail.com'"
            " AND email NOT LIKE '%.%@%' AND email NOT LIKE '%+%' ORDER BY id LIMIT 1"
        )
        .fetchone()
    )
    local, _, _ = stored.strip().lower().partition("@")
    variant = f"{local[:2]}.{local[2:]}+news@GoogleMail.com".upper()
    async for client in serve_in_process(load_settings(config)):
        plain = await gql(client, QUERY, email=stored)
        spelled = await gql(client, QUERY, email=variant)
    assert plain["data"]["customer"] is not None  # type: ignore[index]
    assert spelled["data"] == plain["data"]
