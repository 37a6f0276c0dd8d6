"""Fixtures for the database services every multi-engine suite shares.

``postgres_url`` / ``mariadb_url`` / ``redis_url`` point at the ``custview_test`` databases
that ``.ci/run`` creates; override them with ``CUSTVIEW_TEST_POSTGRES_URL`` /
``CUSTVIEW_TEST_MARIADB_URL``. When a service is down the tests that need it
are skipped, except under ``CI=true`` where that is a failure.
``postgres_db_url`` / ``mariadb_db_url`` give each test module a fresh
database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.engines import can_connect, fresh_database

# Property tests are judged by their examples, not by how long one takes: on a loaded
# 2-core machine an example can pass hypothesis's 200 ms deadline and fail a test that
# holds (a test's own @settings still chooses its number of examples).
settings.register_profile("custview", deadline=None)
settings.load_profile("custview")

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/custview_test"
DEFAULT_MARIADB_URL = "mysql+aiomysql://root@127.0.0.1:3306/custview_test"


def _service_url(env: str, default: str, what: str) -> str:
    url = os.environ.get(env, default)
    reason = asyncio.run(can_connect(url))
    if reason is not None:
        message = f"{what} is not reachable ({reason}); run .ci/run or set {env}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """Async URL of the PostgreSQL ``custview_test`` database."""
    return _service_url("CUSTVIEW_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL, "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    """Async URL of the MariaDB ``custview_test`` database."""
    return _service_url("CUSTVIEW_TEST_MARIADB_URL", DEFAULT_MARIADB_URL, "MariaDB")


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


async def _redis_unreachable(url: str) -> str | None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis the cache tests share (each test uses its own namespace)."""
    url = os.environ.get("CUSTVIEW_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    reason = asyncio.run(_redis_unreachable(url))
    if reason is not None:
        message = f"Redis is not reachable ({reason}); run .ci/run or set CUSTVIEW_TEST_REDIS_URL"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture(scope="module")
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test module."""
    with fresh_database(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def own_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database for custview's own stores (registry, audit): SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'own.db'}"
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture(scope="module")
def mariadb_db_url(mariadb_url: str) -> Iterator[str]:
    """A fresh MariaDB database for this test module."""
    with fresh_database(mariadb_url) as url:
        yield url
