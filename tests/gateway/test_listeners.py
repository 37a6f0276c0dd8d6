"""Listening on a host with several addresses (an IPv4 and an IPv6 one): one
port for all of them, also when the port is chosen (``--port 0``), and the
server's start-up line names every address. Real sockets on 127.0.0.1 and ::1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway import listeners, serving

DUAL = "dual-loopback.test"
"""A name resolving to 127.0.0.1 and ::1, as ``""`` resolves to 0.0.0.0 and ::."""


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback on this machine")


@pytest.fixture()
def dual(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == DUAL:
            return real("127.0.0.1", port, *args, **kwargs) + real("::1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@contextlib.contextmanager
def bound(host: str, port: int) -> Iterator[list[socket.socket]]:
    sockets = listeners.bind(host, port)
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def accepts(host: str, port: int, server: socket.socket) -> bool:
    """Whether a client connecting to ``host``:``port`` is accepted by ``server``."""
    with socket.create_connection((host, port), timeout=5):
        server.settimeout(5)
        accepted, _ = server.accept()
        accepted.close()
    return True


@pytest.mark.usefixtures("dual")
def test_a_chosen_port_is_the_same_at_every_address_of_the_host() -> None:
    with bound(DUAL, 0) as sockets:
        assert [s.family for s in sockets] == [socket.AF_INET, socket.AF_INET6]
        port = sockets[0].getsockname()[1]
        assert sockets[1].getsockname()[1] == port, "each address got a port of its own"
        assert accepts("127.0.0.1", port, sockets[0])
        assert accepts("::1", port, sockets[1])


def test_every_address_of_all_interfaces_on_one_chosen_port() -> None:
    """``custview serve --host "" --port 0``: 0.0.0.0 and :: (bound, not connected to)."""
    with bound("", 0) as sockets:
        assert len({s.getsockname()[1] for s in sockets}) == 1


@pytest.mark.usefixtures("dual")
def test_a_chosen_port_taken_at_another_address_is_given_up_for_one_free_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The port 127.0.0.1 got is taken at ::1 (another program's socket, bound
    just before): both addresses move to another port, the same for both."""
    listen = listeners._listen
    taken: list[socket.socket] = []

    def other_program_first(family: Any, kind: Any, proto: Any, address: Any) -> socket.socket:
        if family == socket.AF_INET6 and not taken:
            blocker = socket.socket(socket.AF_INET6)
            blocker.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            blocker.bind(("::1", address[1]))
            blocker.listen()
            taken.append(blocker)
        return listen(family, kind, proto, address)

    monkeypatch.setattr(listeners, "_listen", other_program_first)
    try:
        with bound(DUAL, 0) as sockets:
            ports = {s.getsockname()[1] for s in sockets}
            assert len(sockets) == 2 and len(ports) == 1
            assert ports != {taken[0].getsockname()[1]}
    finally:
        for sock in taken:
            sock.close()


@pytest.mark.usefixtures("dual")
def test_an_explicit_port_taken_at_one_address_is_refused_with_that_address() -> None:
    with bound("::1", 0) as (other,):
        port = other.getsockname()[1]
        with pytest.raises(OSError, match=r"address \('::1', \d+, 0, 0\)"):
            listeners.bind(DUAL, port)
    with bound(DUAL, port) as sockets:  # every address free again: bound, at that port
        assert {s.getsockname()[1] for s in sockets} == {port}


@pytest.mark.usefixtures("dual")
async def test_the_server_says_every_address_it_listens_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    caplog.set_level(logging.INFO, logger="uvicorn.error")
    app = Starlette(routes=[Route("/", hello)])
    with serving._bound("the gateway", DUAL, 0, "choose another with --port") as sockets:
        port = sockets[0].getsockname()[1]
        server = serving._server(app, DUAL, 0)
        task = asyncio.create_task(server.serve(sockets))
        try:
            async with asyncio.timeout(30):
                while not server.started:
                    assert not task.done(), task.result()
                    await asyncio.sleep(0.02)
            async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
                for url in (f"http://127.0.0.1:{port}/", f"http://[::1]:{port}/"):
                    assert (await client.get(url)).text == "hello"
        finally:
            server.should_exit = True
            await task
    said = [r.getMessage() for r in caplog.records if "Uvicorn running on" in r.getMessage()]
    assert said == [
        f"Uvicorn running on http://127.0.0.1:{port} and http://[::1]:{port} (Press CTRL+C to quit)"
    ]
