"""The Customer 360 page at ``/``: served without a key, shipped in the package,
pre-filled only with the credential the operator chose, and a client of
``/graphql`` alone."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx

from gateway.app import create_app
from gateway.page import PAGE_DIR, prefill
from gateway.serving import DEMO_HEADERS
from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _client(headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    app = create_app(load_settings(), headers)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://custview")


async def test_the_page_and_its_assets_are_served_without_a_key() -> None:
    async with _client(DEMO_HEADERS) as anon:
        page = await anon.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<meta name="custview-default-key" content="demo-key">' in page.text
        assets = re.findall(r'(?:src|href)="(static/app/[^"]+)"', page.text)
        assert sorted(assets) == ["static/app/app.css", "static/app/app.js"]
        for asset in assets:
            served = await anon.get("/" + asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000, asset


async def test_no_key_is_prefilled_unless_the_operator_gives_one() -> None:
    async with _client() as anon:
        page = await anon.get("/")
    assert '<meta name="custview-default-key" content="">' in page.text


def test_a_prefilled_credential_is_escaped_and_keeps_its_scheme() -> None:
    assert prefill({"Authorization": "Bearer abc.def"}) == ("bearer", "abc.def")
    assert prefill({"x-api-key": "k"}) == ("apikey", "k")
    assert prefill(None) == ("apikey", "")
    from gateway.page import page_html

    html = page_html("apikey", '"><script>alert(1)</script>')
    assert "<script>alert" not in html and "&quot;&gt;&lt;script&gt;" in html


def test_the_page_talks_to_graphql_only_and_never_writes_html_from_data() -> None:
    script = (PAGE_DIR / "app.js").read_text()
    assert re.findall(r"fetch\(([^,)]+)", script) == ["ENDPOINT"]
    assert 'const ENDPOINT = "graphql";' in script
    # values reach the DOM as text nodes only
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


def test_the_assets_ship_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["gateway"]
    shipped = {p for g in globs for p in (ROOT / "gateway").glob(g) if p.is_file()}
    assert {PAGE_DIR / n for n in ("index.html", "app.js", "app.css")} <= shipped
