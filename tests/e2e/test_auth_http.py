"""The demo refuses anonymous reads and accepts its documented key; every route refuses
in its own error shape."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.auth import hash_key
from gateway.settings import DEMO_CONFIG, LoadedSettings, load_settings
from tests.support.servers import serve_in_thread

QUERY = {"query": "{ customers(first: 1) { nodes { id } } }"}


async def test_anonymous_requests_get_401_and_open_routes_stay_open(
    demo_settings: LoadedSettings,
) -> None:
    app = create_app(demo_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://custview") as anon:
            refused = await anon.post("/graphql", json=QUERY)
            assert refused.status_code == 401
            assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert (await anon.get("/export/customers.csv")).status_code == 401
            assert (
                await anon.post("/graphql", json=QUERY, headers={"x-api-key": "nope"})
            ).status_code == 401
            page = await anon.get("/graphql", headers={"accept": "text/html"})
            assert page.status_code == 200 and "graphiql" in page.text.lower()
            assert (await anon.get("/healthz")).status_code == 200
            ok = await anon.post("/graphql", json=QUERY, headers={"x-api-key": "demo-key"})
            assert ok.status_code == 200 and ok.json()["data"]["customers"]["nodes"]


@pytest.fixture()
def with_intern(demo_env: None, tmp_path: Path) -> LoadedSettings:
    """The demo plus an API key whose only role the policy does not know."""
    intern = (
        "  api_keys:\n    - name: intern\n"
        f'      hash: "{hash_key("intern-key")}"\n      roles: [intern]\n'
    )
    config = tmp_path / "intern.yaml"
    config.write_text(DEMO_CONFIG.read_text().replace("  api_keys:\n", intern, 1))
    return load_settings(config)


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "UNAUTHENTICATED"),
        ({"x-api-key": "nope"}, 401, "UNAUTHENTICATED"),
        ({"authorization": "Bearer nope"}, 401, "UNAUTHENTICATED"),
        ({"x-api-key": "intern-key"}, 403, "FORBIDDEN"),
    ],
)
async def test_exports_refuse_callers_in_their_own_error_shape(
    with_intern: LoadedSettings, headers: dict[str, str], status: int, code: str
) -> None:
    with serve_in_thread(create_app(with_intern), lifespan="on") as url:
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            export = await http.get("/export/customers.csv")
            graphql = await http.post("/graphql", json=QUERY)
    assert export.status_code == graphql.status_code == status
    body = export.json()
    assert body == {"error": body["error"], "code": code}, body
    assert body["error"] == graphql.json()["errors"][0]["message"]
    assert graphql.json()["errors"][0]["extensions"]["code"] == code
    challenge = export.headers.get("www-authenticate")
    assert challenge == graphql.headers.get("www-authenticate")
    assert (challenge == 'Bearer realm="custview"') == (status == 401)
