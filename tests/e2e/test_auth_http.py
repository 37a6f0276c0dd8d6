"""The demo refuses anonymous reads and accepts its documented key."""

from __future__ import annotations

import httpx

from gateway.app import create_app
from gateway.settings import LoadedSettings

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
