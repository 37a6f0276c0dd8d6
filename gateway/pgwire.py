"""The PostgreSQL frontend/backend protocol (v3), the subset BI clients use.

Startup (an SSL request is answered ``S`` and the connection upgraded to TLS
when the server has a certificate, else refused with ``N`` so the client
falls back to plain TCP; GSS encryption is always refused; a server that
requires TLS refuses a plain-TCP startup), cleartext password authentication, the simple query
protocol, the extended query protocol (Parse, Bind, Describe, Execute,
Close, Sync, Flush; text results, text or binary parameters) and Terminate.
That is what libpq (``psql``), psycopg 3, SQLAlchemy's postgresql dialect
and the JDBC driver need for read-only queries.

This module knows the wire and nothing else: what a statement means is a
:class:`Backend`'s business. An error a backend raises as :class:`PgError`
goes to the client as an ``ErrorResponse`` with its SQLSTATE; anything else
is logged and answered ``XX000``, and the connection goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import ssl
import struct
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from gateway import listeners

log = logging.getLogger("custview.sql")

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
_PROTOCOL_3 = 196608
_MAX_MESSAGE = 1 << 24
_LOGIN_SECONDS = 30
"""A client has this long to start up and send its password."""
_FLUSH_EVERY = 500
"""Data rows buffered between two writes to the socket."""


class PgError(Exception):
    """A statement or login refused, with its SQLSTATE (``42601``, ``28P01``, ...)."""

    def __init__(self, sqlstate: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int


@dataclass
class Prepared:
    """A planned statement: its columns (``None``: it returns no rows) and, once
    run, its rows a chunk at a time."""

    columns: list[Column] | None
    tag: str
    """The command tag; ``SELECT`` gets the row count appended."""
    chunks: AsyncIterator[Sequence[Sequence[Any]]] | None = None


class Session(Protocol):
    def transaction_status(self) -> bytes:
        """``b"I"`` idle or ``b"T"`` in a transaction block."""

    async def prepare(self, sql: str, params: Sequence[Any] | None) -> Prepared:
        """Plan ``sql``; ``params`` ``None`` only describes (placeholders unbound)."""

    async def aclose(self) -> None: ...


class Backend(Protocol):
    needs_password: bool

    async def start(
        self, user: str, password: str | None, options: dict[str, str], client: str | None
    ) -> Session:
        """A session for this login, or :class:`PgError` (``28P01``, ``28000``)."""

    def parameters(self) -> dict[str, str]:
        """``ParameterStatus`` values sent after login (server_version, DateStyle, ...)."""


class _Closed(Exception):
    """The client went away."""


def text_value(value: Any) -> bytes | None:
    """A value in PostgreSQL's text output format."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ").encode()
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, bytes):
        return b"\\x" + value.hex().encode()
    return str(value).encode()


def _binary_numeric(data: bytes) -> Decimal:
    ndigits, weight, sign, scale = struct.unpack("!hhHH", data[:8])
    if sign == 0xC000:
        return Decimal("NaN")
    digits = struct.unpack(f"!{ndigits}H", data[8 : 8 + 2 * ndigits])
    value = sum(Decimal(d) * Decimal(10000) ** (weight - i) for i, d in enumerate(digits))
    value = value.quantize(Decimal(1).scaleb(-scale)) if scale else value.to_integral_value()
    return Decimal(-value if sign == 0x4000 else value)


_BINARY = {
    16: lambda b: b != b"\x00",
    20: lambda b: struct.unpack("!q", b)[0],
    21: lambda b: struct.unpack("!h", b)[0],
    23: lambda b: struct.unpack("!i", b)[0],
    700: lambda b: struct.unpack("!f", b)[0],
    701: lambda b: struct.unpack("!d", b)[0],
    1700: _binary_numeric,
}
_TEXT_TYPES = {0, 18, 19, 25, 705, 1042, 1043}


def decode_param(data: bytes | None, binary: bool, type_oid: int) -> Any:
    """A bound parameter as a Python value: text stays text (the backend reads it
    as a literal), binary values of the common scalar types are decoded."""
    if data is None:
        return None
    if not binary or type_oid in _TEXT_TYPES:
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise PgError("22021", "parameter is not valid UTF-8") from None
    decoder = _BINARY.get(type_oid)
    if decoder is None:
        raise PgError("0A000", f"binary parameters of type oid {type_oid} are not supported")
    try:
        return decoder(data)
    except struct.error:
        raise PgError("22P03", f"malformed binary parameter of type oid {type_oid}") from None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def int16(self) -> int:
        (value,) = struct.unpack_from("!h", self.data, self.at)
        self.at += 2
        return int(value)

    def int32(self) -> int:
        (value,) = struct.unpack_from("!i", self.data, self.at)
        self.at += 4
        return int(value)

    def cstring(self) -> str:
        end = self.data.index(b"\x00", self.at)
        text = self.data[self.at : end].decode()
        self.at = end + 1
        return text

    def bytes_(self, size: int) -> bytes:
        out = self.data[self.at : self.at + size]
        self.at += size
        return out

    def byte(self) -> bytes:
        return self.bytes_(1)


def _message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def _error(exc: PgError, severity: str = "ERROR") -> bytes:
    body = b"S" + _cstr(severity) + b"V" + _cstr(severity) + b"C" + _cstr(exc.sqlstate)
    body += b"M" + _cstr(exc.message)
    if exc.hint:
        body += b"H" + _cstr(exc.hint)
    return _message(b"E", body + b"\x00")


def _row_description(columns: Sequence[Column]) -> bytes:
    body = struct.pack("!h", len(columns))
    for col in columns:
        body += _cstr(col.name) + struct.pack("!ihihih", 0, 0, col.type_oid, -1, -1, 0)
    return _message(b"T", body)


def _data_row(row: Sequence[Any]) -> bytes:
    body = struct.pack("!h", len(row))
    for value in row:
        encoded = text_value(value)
        body += struct.pack("!i", -1) if encoded is None else struct.pack("!i", len(encoded))
        body += encoded or b""
    return _message(b"D", body)


@dataclass
class _Statement:
    sql: str
    types: list[int]


@dataclass
class _Portal:
    statement: _Statement
    params: list[Any]
    prepared: Prepared | None = None
    sent: int = 0
    rows: list[Sequence[Any]] = field(default_factory=list)
    """Rows of a chunk not yet sent (an Execute with a row limit)."""


Keys = dict[tuple[int, int], "_Connection"]
"""Connections by their cancel key (``BackendKeyData``: process id, secret)."""


class _Connection:
    def __init__(
        self,
        backend: Backend,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keys: Keys,
        tls: ssl.SSLContext | None = None,
        require_tls: bool = False,
    ) -> None:
        self.backend = backend
        self.reader = reader
        self.writer = writer
        self.keys = keys
        self.tls = tls
        self.require_tls = require_tls
        self.encrypted = False
        self.key = (secrets.randbits(31), secrets.randbits(31))
        self.statement: asyncio.Task[None] | None = None
        self.session: Session | None = None
        self.statements: dict[str, _Statement] = {}
        self.portals: dict[str, _Portal] = {}
        self.failed = False
        """An extended-protocol error: skip to the next Sync."""

    async def read_message(self) -> tuple[bytes, _Reader]:
        try:
            head = await self.reader.readexactly(5)
            size = struct.unpack("!i", head[1:])[0] - 4
            if size < 0 or size > _MAX_MESSAGE:
                raise _Closed
            return head[:1], _Reader(await self.reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            raise _Closed from None

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        try:
            await self.writer.drain()
        except ConnectionError:
            raise _Closed from None

    async def startup(self) -> dict[str, str] | None:
        while True:
            try:
                size = struct.unpack("!i", await self.reader.readexactly(4))[0] - 4
                if size < 4 or size > 10_000:
                    return None
                reader = _Reader(await self.reader.readexactly(size))
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            code = reader.int32()
            if code == _SSL_REQUEST and self.tls is not None and not self.encrypted:
                await self.send(b"S")
                try:
                    await self.writer.start_tls(self.tls)
                except (ssl.SSLError, ConnectionError, OSError) as exc:
                    log.info("SQL client's TLS handshake failed: %s", exc)
                    return None
                self.encrypted = True
                continue
            if code in (_SSL_REQUEST, _GSS_REQUEST):
                await self.send(b"N")
                continue
            if code == _CANCEL_REQUEST and len(reader.data) >= 12:
                target = self.keys.get((reader.int32(), reader.int32()))
                if target is not None and target.statement is not None:
                    target.statement.cancel()
                return None
            if code != _PROTOCOL_3:
                await self.send(_error(PgError("08P01", "unsupported protocol"), "FATAL"))
                return None
            if self.require_tls and not self.encrypted:
                refused = PgError(
                    "28000",
                    "this endpoint accepts TLS connections only",
                    hint="connect with sslmode=require (or verify-full with the server's CA)",
                )
                await self.send(_error(refused, "FATAL"))
                return None
            options: dict[str, str] = {}
            while reader.at < len(reader.data) - 1:
                key = reader.cstring()
                options[key] = reader.cstring()
            return options

    async def login(self, options: dict[str, str]) -> bool:
        password = None
        if self.backend.needs_password:
            await self.send(_message(b"R", struct.pack("!i", 3)))
            kind, body = await self.read_message()
            if kind != b"p":
                return False
            password = body.cstring()
        peer = self.writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) else None
        try:
            self.session = await self.backend.start(
                options.get("user", ""), password, options, client
            )
        except PgError as exc:
            await self.send(_error(exc, "FATAL"))
            return False
        out = _message(b"R", struct.pack("!i", 0))
        for key, value in self.backend.parameters().items():
            out += _message(b"S", _cstr(key) + _cstr(value))
        self.keys[self.key] = self
        out += _message(b"K", struct.pack("!ii", *self.key))
        await self.send(out + self._ready())
        return True

    def _ready(self) -> bytes:
        assert self.session is not None
        return _message(b"Z", self.session.transaction_status())

    async def serve(self) -> None:
        try:
            async with asyncio.timeout(_LOGIN_SECONDS):
                options = await self.startup()
                if options is None or not await self.login(options):
                    return
        except TimeoutError:
            return
        while True:
            kind, body = await self.read_message()
            if kind == b"X":
                return
            if self.failed and kind not in (b"S", b"Q"):
                continue
            try:
                await self.cancellable(kind, body)
            except (PgError, Exception) as exc:
                if isinstance(exc, _Closed):
                    raise
                if not isinstance(exc, PgError):
                    log.exception("SQL statement failed")
                    exc = PgError("XX000", "internal error; the gateway log has the cause")
                await self.send(_error(exc))
                if kind == b"Q":
                    await self.send(self._ready())
                else:
                    self.failed = True

    async def cancellable(self, kind: bytes, body: _Reader) -> None:
        """One message, in a task a CancelRequest with this connection's key stops."""
        self.statement = asyncio.create_task(self.dispatch(kind, body))
        try:
            await self.statement
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the server is closing, not the client cancelling
            raise PgError("57014", "canceling statement due to user request") from None
        finally:
            self.statement = None

    async def dispatch(self, kind: bytes, body: _Reader) -> None:
        handler = {
            b"Q": self.query,
            b"P": self.parse,
            b"B": self.bind,
            b"D": self.describe,
            b"E": self.execute,
            b"C": self.close,
            b"S": self.sync,
            b"H": self.flush,
        }.get(kind)
        if handler is None:
            raise PgError(
                "0A000", f"protocol message '{kind.decode(errors='replace')}' is not supported"
            )
        await handler(body)

    async def run(self, prepared: Prepared, limit: int = 0, portal: _Portal | None = None) -> bool:
        """Send the rows (at most ``limit`` if given); whether the statement completed."""
        count = portal.sent if portal else 0
        buffer: list[bytes] = []
        pending = deque(portal.rows if portal else ())
        chunks = prepared.chunks
        try:
            while True:
                if not pending:
                    if chunks is None:
                        break
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                    pending = deque(chunk)
                while pending:
                    if limit and count - (portal.sent if portal else 0) >= limit:
                        assert portal is not None
                        portal.rows, portal.sent = list(pending), count
                        await self.send(b"".join(buffer) + _message(b"s"))
                        return False
                    buffer.append(_data_row(pending.popleft()))
                    count += 1
                    if len(buffer) >= _FLUSH_EVERY:
                        await self.send(b"".join(buffer))
                        buffer = []
        except BaseException:
            if chunks is not None:
                await _close(chunks)
            raise
        tag = f"SELECT {count}" if prepared.tag == "SELECT" else prepared.tag
        await self.send(b"".join(buffer) + _message(b"C", _cstr(tag)))
        return True

    async def query(self, body: _Reader) -> None:
        sql = body.cstring()
        assert self.session is not None
        if _blank(sql):
            await self.send(_message(b"I") + self._ready())
            return
        prepared = await self.session.prepare(sql, [])
        if prepared.columns is not None:
            await self.send(_row_description(prepared.columns))
        await self.run(prepared)
        await self.send(self._ready())

    async def parse(self, body: _Reader) -> None:
        name, sql = body.cstring(), body.cstring()
        types = [body.int32() for _ in range(body.int16())]
        self.statements[name] = _Statement(sql, types)
        await self.send(_message(b"1"))

    async def bind(self, body: _Reader) -> None:
        portal, name = body.cstring(), body.cstring()
        statement = self._statement(name)
        formats = [body.int16() for _ in range(body.int16())]
        params = []
        for i in range(body.int16()):
            size = body.int32()
            data = None if size < 0 else body.bytes_(size)
            binary = (formats[i] if len(formats) > 1 else formats[0] if formats else 0) == 1
            oid = statement.types[i] if i < len(statement.types) else 0
            params.append(decode_param(data, binary, oid))
        results = [body.int16() for _ in range(body.int16())]
        if any(results):
            raise PgError("0A000", "binary result columns are not supported; ask for text")
        self.portals[portal] = _Portal(statement, params)
        await self.send(_message(b"2"))

    def _portal(self, name: str) -> _Portal:
        portal = self.portals.get(name)
        if portal is None:
            raise PgError("34000", f'portal "{name}" does not exist')
        return portal

    def _statement(self, name: str) -> _Statement:
        statement = self.statements.get(name)
        if statement is None:
            raise PgError("26000", f'prepared statement "{name}" does not exist')
        return statement

    async def _prepared(self, portal: _Portal) -> Prepared:
        assert self.session is not None
        if portal.prepared is None:
            portal.prepared = await self.session.prepare(portal.statement.sql, portal.params)
        return portal.prepared

    async def describe(self, body: _Reader) -> None:
        what, name = body.byte(), body.cstring()
        assert self.session is not None
        if what == b"S":
            statement = self._statement(name)
            if _blank(statement.sql):
                await self.send(_message(b"t", struct.pack("!h", 0)) + _message(b"n"))
                return
            prepared = await self.session.prepare(statement.sql, None)
            types = statement.types or [25] * _placeholders(statement.sql)
            params = struct.pack(f"!h{len(types)}i", len(types), *[t or 25 for t in types])
            out = _message(b"t", params)
        else:
            portal = self._portal(name)
            if _blank(portal.statement.sql):
                await self.send(_message(b"n"))
                return
            prepared = await self._prepared(portal)
            out = b""
        columns = prepared.columns
        out += _message(b"n") if columns is None else _row_description(columns)
        await self.send(out)

    async def execute(self, body: _Reader) -> None:
        name, limit = body.cstring(), body.int32()
        portal = self._portal(name)
        if _blank(portal.statement.sql):
            await self.send(_message(b"I"))
            return
        if await self.run(await self._prepared(portal), limit, portal):
            self.portals.pop(name, None)

    async def close(self, body: _Reader) -> None:
        what, name = body.byte(), body.cstring()
        if what == b"S":
            self.statements.pop(name, None)
        else:
            portal = self.portals.pop(name, None)
            if portal and portal.prepared and portal.prepared.chunks:
                await _close(portal.prepared.chunks)
        await self.send(_message(b"3"))

    async def sync(self, body: _Reader) -> None:
        self.failed = False
        portal = self.portals.pop("", None)
        if portal and portal.prepared and portal.prepared.chunks:
            await _close(portal.prepared.chunks)
        await self.send(self._ready())

    async def flush(self, body: _Reader) -> None:
        await self.send(b"")

    async def aclose(self) -> None:
        self.keys.pop(self.key, None)
        for portal in self.portals.values():
            if portal.prepared and portal.prepared.chunks:
                await _close(portal.prepared.chunks)
        if self.session is not None:
            await self.session.aclose()
        self.writer.close()
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await self.writer.wait_closed()


def _blank(sql: str) -> bool:
    return not sql.strip().strip(";").strip()


def _placeholders(sql: str) -> int:
    import re

    found = [int(n) for n in re.findall(r"\$(\d+)", sql)]
    return max(found, default=0)


async def _close(chunks: AsyncIterator[Any]) -> None:
    closer = getattr(chunks, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()


class PgServer:
    """A listening socket that serves :class:`Backend` sessions, one task per client."""

    def __init__(
        self,
        backend: Backend,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        require_tls: bool = False,
    ) -> None:
        self.backend = backend
        self.host = host
        self.port = port
        self.tls = tls
        self.require_tls = require_tls
        self._servers: list[asyncio.Server] = []
        self._address: listeners.Address | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._keys: Keys = {}

    async def start(self) -> None:
        # the app a config reload builds listens on the old one's sockets while the old
        # one drains (gateway.listeners: no other process may bind the port)
        self._address, sockets = listeners.acquire(self.host, self.port)
        try:
            for sock in sockets:
                # each server closes its own duplicate; the sockets stay until released
                duplicate = sock.dup()
                try:
                    server = await asyncio.start_server(self._handle, sock=duplicate)
                except BaseException:
                    duplicate.close()  # no server took it
                    raise
                self._servers.append(server)
        except BaseException:
            await self.aclose()
            raise
        # the old endpoint of a reload accepts no more: a new client meets the new keys
        listeners.accepting(self._address, self._stop_accepting)
        self.port = self._address[1]
        log.info(
            "SQL endpoint listening on %s:%d (%s)",
            self.host,
            self.port,
            "TLS only" if self.require_tls else "TLS offered" if self.tls else "no TLS",
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        connection = _Connection(
            self.backend, reader, writer, self._keys, self.tls, self.require_tls
        )
        try:
            await connection.serve()
        except _Closed:
            pass
        except Exception:
            log.exception("SQL connection failed")
            with contextlib.suppress(Exception):
                await connection.send(_error(PgError("XX000", "internal error"), "FATAL"))
        finally:
            if task is not None:
                self._tasks.discard(task)
            await connection.aclose()

    def _stop_accepting(self) -> None:
        """Closes the listening servers only: the connections go on until they end
        or :meth:`aclose` ends them."""
        for server in self._servers:
            server.close()

    async def aclose(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        if self._address is not None:
            listeners.release(self._address)
            self._address = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in servers:
            await server.wait_closed()
