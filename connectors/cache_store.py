"""Where cached answers are kept: an aiocache backend (memory, or Redis shared by
replicas) and the serialiser that stores rows as tagged JSON.

JSON keeps ``datetime``, ``date``, ``time``, ``Decimal``, ``timedelta``,
``UUID`` and ``bytes`` exact; no pickle, so a shared Redis cannot be turned
into code execution.
"""

from __future__ import annotations

import base64
import json
import uuid
import weakref
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from connectors.errors import ConfigError

_TAG = "$cv"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_TAG: "dt", "v": value.isoformat()}
    if isinstance(value, date):
        return {_TAG: "d", "v": value.isoformat()}
    if isinstance(value, dtime):
        return {_TAG: "t", "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {_TAG: "dec", "v": str(value)}
    if isinstance(value, timedelta):
        return {_TAG: "td", "v": value.total_seconds()}
    if isinstance(value, uuid.UUID):
        return {_TAG: "uuid", "v": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {_TAG: "b", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"cannot cache a value of type {type(value).__name__}")


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "dt": datetime.fromisoformat,
    "d": date.fromisoformat,
    "t": dtime.fromisoformat,
    "dec": Decimal,
    "td": lambda v: timedelta(seconds=v),
    "uuid": uuid.UUID,
    "b": base64.b64decode,
}


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 2 and _TAG in obj and "v" in obj:
        decoder = _DECODERS.get(obj[_TAG])
        if decoder is not None:
            return decoder(obj["v"])
    return obj


def dumps(value: Any) -> str:
    """JSON that keeps datetimes, dates, times, Decimals, UUIDs and bytes exact."""
    return json.dumps(value, default=_encode, separators=(",", ":"), allow_nan=True)


def loads(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_decode)


class RowSerializer:
    """An aiocache serializer (``dumps``/``loads``) for rows: tagged JSON, never pickle."""

    encoding = "utf-8"

    def dumps(self, value: Any) -> str:
        return dumps(value)

    def loads(self, value: Any) -> Any:
        if value is None or isinstance(value, int | float):
            return value  # missing, or a counter written by ``increment``
        return loads(value)


def create_cache(backend: Literal["memory", "redis"], url: str, namespace: str) -> Any:
    """One aiocache instance: ``memory`` (per process) or ``redis`` (shared by replicas)."""
    from aiocache import RedisCache, SimpleMemoryCache

    if backend == "memory":
        return SimpleMemoryCache(serializer=RowSerializer(), namespace=namespace)
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError("cache.url must look like redis://host:6379/0")
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise ConfigError("cache.url: the path must be a database number, as in /0")
    return RedisCache(
        serializer=RowSerializer(),
        namespace=namespace,
        endpoint=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(db),
        password=unquote(parts.password) if parts.password else None,
        ssl=parts.scheme == "rediss",
        timeout=2,
    )


_users: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def hold(cache: Any) -> None:
    """One more connector uses ``cache`` (shared by the cached sources of one app)."""
    _users[cache] = _users.get(cache, 0) + 1


async def release(cache: Any) -> None:
    """Close a shared cache once its last connector is closed."""
    left = _users.get(cache, 1) - 1
    if left > 0:
        _users[cache] = left
        return
    _users.pop(cache, None)
    client = getattr(cache, "client", None)
    if client is not None and hasattr(client, "aclose"):
        await client.aclose()  # aiocache's close() calls redis' deprecated close()
    else:
        await cache.close()
