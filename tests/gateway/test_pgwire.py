"""The wire protocol's own pieces: parameter decoding and a second listener on
the port (what a config reload does)."""

from __future__ import annotations

import asyncio
import struct
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from gateway.pgwire import Column, PgError, PgServer, Prepared, decode_param, text_value


def test_binary_parameters_decode_to_python_values() -> None:
    assert decode_param(struct.pack("!q", -7), True, 20) == -7
    assert decode_param(struct.pack("!d", 2.5), True, 701) == 2.5
    assert decode_param(b"\x01", True, 16) is True
    # numeric 1234.50: two base-10000 digits, weight 0, scale 2
    numeric = struct.pack("!hhHH", 2, 0, 0, 2) + struct.pack("!2H", 1234, 5000)
    assert decode_param(numeric, True, 1700) == Decimal("1234.50")
    assert decode_param(b"DE' OR '1'='1", False, 0) == "DE' OR '1'='1"
    assert decode_param(None, False, 25) is None
    with pytest.raises(PgError) as caught:
        decode_param(b"\x00" * 16, True, 2950)  # uuid
    assert caught.value.sqlstate == "0A000"
    assert text_value(True) == b"t" and text_value(None) is None


class _Refusing:
    needs_password = True

    async def start(self, user: str, password: str | None, options: Any, client: Any) -> Any:
        raise PgError("28P01", f'password authentication failed for user "{user}"')

    def parameters(self) -> dict[str, str]:
        return {}


async def test_a_second_server_binds_the_port_of_a_running_one() -> None:
    first = PgServer(_Refusing(), "127.0.0.1", 0)
    await first.start()
    second = PgServer(_Refusing(), "127.0.0.1", first.port)
    try:
        await second.start()  # a reload's new app, while the old one still listens
        await first.aclose()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            await asyncio.wait_for(
                psycopg.AsyncConnection.connect(
                    f"host=127.0.0.1 port={first.port} user=bi password=x dbname=custview"
                ),
                10,
            )
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_endpoint_that_cannot_start_closes_its_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """asyncio refusing the listening socket (out of memory, a loop closing): every
    socket the endpoint opened, its duplicates included, is closed by the endpoint,
    not left for the garbage collector (which warns of an unclosed socket)."""
    import gc
    import warnings

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no server for you")

    gc.collect()  # what earlier tests left unclosed warns now, not below
    monkeypatch.setattr(asyncio, "start_server", refused)
    server = PgServer(_Refusing(), "127.0.0.1", 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(OSError, match="no server for you"):
            await server.start()
        gc.collect()
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == [], [str(w.message) for w in unclosed]


class _Named(_Refusing):
    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self, user: str, password: str | None, options: Any, client: Any) -> Any:
        raise PgError("28P01", f"refused by the {self.name} configuration")


async def test_once_a_reloads_endpoint_accepts_the_old_one_accepts_no_more() -> None:
    old = PgServer(_Named("old"), "127.0.0.1", 0)
    await old.start()
    new = PgServer(_Named("new"), "127.0.0.1", old.port)
    try:
        await new.start()  # the old app still drains its requests: it is not closed yet
        # which of two endpoints accepting on one socket gets a client is the event
        # loop's order: the old one must not be accepting at all
        assert not any(server.is_serving() for server in old._servers)
        dsn = f"host=127.0.0.1 port={old.port} user=bi password=x dbname=custview"
        for _ in range(5):  # revoked keys: the old configuration may not answer them
            with pytest.raises(psycopg.OperationalError, match="refused by the new"):
                await asyncio.wait_for(psycopg.AsyncConnection.connect(dsn), 10)
    finally:
        await old.aclose()
        await new.aclose()


def test_custview_urls_default_to_the_sql_endpoint() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine("custview://bi.example.com/?key=k3y")  # nothing connects yet
    _, params = engine.dialect.create_connect_args(engine.url)
    assert {k: params[k] for k in ("host", "port", "user", "password", "dbname")} == {
        "host": "bi.example.com", "port": 5433, "user": "custview", "password": "k3y",
        "dbname": "custview",
    }  # fmt: skip
    assert "key" not in params


class _Waiting:
    """A backend whose 'slow' statement waits until it is cancelled."""

    needs_password = False

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    async def start(self, user: str, password: str | None, options: Any, client: Any) -> Any:
        return self

    def parameters(self) -> dict[str, str]:
        return {"server_version": "15.0", "DateStyle": "ISO, MDY"}

    def transaction_status(self) -> bytes:
        return b"I"

    async def prepare(self, sql: str, params: Any) -> Prepared:
        return Prepared([Column("n", 20)], "SELECT", self._rows(sql))

    async def _rows(self, sql: str) -> Any:
        if sql == "slow":
            self.started.set()
            try:
                await asyncio.Event().wait()
            finally:
                self.stopped.set()
        yield [(1,)]

    async def aclose(self) -> None:
        return None


async def test_a_cancel_request_stops_the_statement_not_the_connection() -> None:
    backend = _Waiting()
    server = PgServer(backend, "127.0.0.1", 0)
    await server.start()
    try:
        dsn = f"host=127.0.0.1 port={server.port} user=bi dbname=custview"
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            running = asyncio.create_task(conn.execute("slow"))
            await asyncio.wait_for(backend.started.wait(), 10)
            await conn.cancel_safe()
            with pytest.raises(psycopg.errors.QueryCanceled):
                await asyncio.wait_for(running, 10)
            assert backend.stopped.is_set(), "the statement's rows stopped being read"
            assert await (await conn.execute("fast")).fetchall() == [(1,)]
    finally:
        await server.aclose()


class _Five(_Waiting):
    async def prepare(self, sql: str, params: Any) -> Prepared:
        async def rows() -> Any:
            yield [(1,), (2,), (3,)]
            yield [(4,), (5,)]

        return Prepared([Column("n", 20)], "SELECT", rows())


def _msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


async def _replies(reader: asyncio.StreamReader, until: bytes) -> list[tuple[bytes, bytes]]:
    found = []
    while True:
        kind = await reader.readexactly(1)
        size = struct.unpack("!i", await reader.readexactly(4))[0]
        found.append((kind, await reader.readexactly(size - 4)))
        if kind == until:
            return found


async def test_execute_with_a_row_limit_suspends_and_resumes_the_portal() -> None:
    """What the JDBC driver (Metabase, Tableau) does with a fetch size."""
    server = PgServer(_Five(), "127.0.0.1", 0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        startup = struct.pack("!i", 196608) + b"user\x00bi\x00\x00"
        writer.write(struct.pack("!i", len(startup) + 4) + startup)
        assert (await _replies(reader, b"Z"))[0] == (b"R", struct.pack("!i", 0))
        writer.write(
            _msg(b"P", b"\x00SELECT n\x00" + struct.pack("!h", 0))
            + _msg(b"B", b"\x00\x00" + struct.pack("!hhh", 0, 0, 0))
            + _msg(b"E", b"\x00" + struct.pack("!i", 2))
            + _msg(b"E", b"\x00" + struct.pack("!i", 2))
            + _msg(b"E", b"\x00" + struct.pack("!i", 2))
            + _msg(b"S", b"")
        )
        kinds = [kind for kind, _ in await _replies(reader, b"Z")]
        assert kinds == [b"1", b"2", b"D", b"D", b"s", b"D", b"D", b"s", b"D", b"C", b"Z"]
        writer.write(_msg(b"X", b""))
        writer.close()
    finally:
        await server.aclose()
