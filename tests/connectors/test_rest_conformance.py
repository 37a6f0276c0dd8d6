"""The shipped conformance suite, run by the REST connector against a real JSON API.

``conformance_api`` serves the dataset over HTTP on 127.0.0.1 and evaluates
every parameter itself; the connector's options below declare exactly what
that API does, so the suite checks those operators, skips the rest, and
checks that the rest is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from connectors.conformance import ConnectorConformance, LargeTable, SlowTable
from connectors.rest import RESTConnector, RESTOptions
from tests.connectors import conformance_api

LARGE = LargeTable("numbers", rows=conformance_api.LARGE_ROWS)
SLOW = SlowTable("slow", "x")
MISSING = "custview_conformance_missing"
TIMEOUT = 2.0

PEOPLE: dict[str, Any] = {
    "path": "/people",
    "records": "data",
    "columns": {
        "id": "id",
        "email": "contact.email",
        "phone": "contact.phone",
        "name": "name",
        "country": "country",
        "score": "score",
        "created_at": "created_at",
    },
    "key": "id",
    "lookups": {
        "id": {"param": "ids", "batch": True, "max_batch": 50},
        "email": {"param": "email", "batch": True, "max_batch": 20},
    },
    "filters": {
        "id": {"in": "ids"},
        "email": {"in": "email", "is_null": "email_null"},
        "country": {"eq": "country", "in": "country_in"},
        "score": {"ge": "score_gte", "lt": "score_lt"},
        "name": {"contains": "name_contains", "startswith": "name_prefix"},
        "created_at": {"ge": "created_after", "lt": "created_before"},
    },
    "sort": {"param": "sort", "columns": ["id", "score", "created_at"], "max_columns": 2},
    "pagination": {
        "style": "cursor",
        "param": "cursor",
        "next": "meta.next_cursor",
        "limit_param": "limit",
        "page_size": 10,  # several pages for 40 rows
    },
}

OPTIONS: dict[str, Any] = {
    "timeout": TIMEOUT,
    "retry_initial_wait": 0.01,
    "retry_max_wait": 0.05,
    "health_path": "/health",
    "resources": {
        "people": PEOPLE,
        LARGE.name: {
            "path": "/numbers",
            "columns": ["id", "label"],
            "key": "id",
            "pagination": {
                "style": "page",
                "param": "page",
                "size_param": "per_page",
                "page_size": conformance_api.MAX_PER_PAGE,
            },
        },
        SLOW.name: {"path": "/slow", "records": "data", "columns": [SLOW.column]},
        # Configured, but the API has no such collection (404).
        MISSING: {"path": "/no_such_collection", "records": "data", "columns": ["id"]},
    },
}


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with conformance_api.serve() as url:
        yield url


class TestRESTConformance(ConnectorConformance):
    table = "people"
    missing_table = MISSING
    large_table = LARGE
    slow_table = SLOW

    @pytest.fixture
    async def connector(self, api_url: str) -> AsyncIterator[RESTConnector]:
        options = RESTOptions.model_validate({**OPTIONS, "base_url": f"{api_url}/api"})
        conn = RESTConnector("conformance", options)
        yield conn
        await conn.aclose()


class TestRESTPagedConformance(TestRESTConformance):
    """The same API read another way: page numbers, ids one request each
    (``/people/{id}``), emails as a repeated parameter."""

    large_table = None
    slow_table = None

    @pytest.fixture
    async def connector(self, api_url: str) -> AsyncIterator[RESTConnector]:
        people = {
            **PEOPLE,
            "get_by_key": "/people/{id}",
            "record": "data",
            "lookups": {"email": {"param": "email", "batch": True, "separator": None}},
            "pagination": {
                "style": "page",
                "param": "page",
                "size_param": "per_page",
                "page_size": 7,  # the last page is short
            },
        }
        resources = {**OPTIONS["resources"], "people": people}
        options = RESTOptions.model_validate(
            {**OPTIONS, "resources": resources, "base_url": f"{api_url}/api"}
        )
        conn = RESTConnector("conformance", options)
        yield conn
        await conn.aclose()
