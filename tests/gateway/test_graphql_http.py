"""The GraphQL lane's response is the one strawberry's view would build."""

from __future__ import annotations

import json

from starlette.background import BackgroundTask
from starlette.responses import Response
from strawberry.asgi import GraphQL

from gateway.graphql_http import GraphQLView, _response
from gateway.settings import DEMO_CONFIG, load_settings


def _view() -> GraphQLView:
    from gateway.app import gateway_schema

    return GraphQLView(gateway_schema(load_settings(DEMO_CONFIG)))


def test_the_view_encodes_json_as_strawberry_does() -> None:
    data = {"data": {"name": "Zoë «x»", "n": [1, 2.5, None, True], "e": {}}, "errors": []}
    view = _view()
    assert view.encode_json(data) == GraphQL.encode_json(view, data)
    assert view.encode_json(data) == json.dumps(data, separators=(",", ":"))


async def test_the_lane_s_response_is_strawberry_s() -> None:
    view = _view()
    data = {"data": {"customer": {"id": "c1"}}}
    plain = await view.get_sub_response(None)  # type: ignore[arg-type]
    told = await view.get_sub_response(None)  # type: ignore[arg-type]
    told.headers["x-custom"] = "1"
    told.status_code = 202
    told.background = BackgroundTask(print)
    for sub in (plain, told):
        ours: Response = _response(view, data, sub)
        theirs = GraphQL.create_response(view, data, sub)
        assert ours.status_code == theirs.status_code
        assert ours.raw_headers == theirs.raw_headers
        assert ours.body == theirs.body
        assert ours.background is theirs.background
