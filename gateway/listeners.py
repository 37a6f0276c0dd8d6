"""The SQL endpoint's listening sockets: one set per address and process, shared.

A config reload (SIGHUP) starts the new app's SQL endpoint while the old one
still serves its connections, on the same ``sql.port``. The new endpoint
accepts on duplicates of the old one's sockets rather than binding the port
again. ``SO_REUSEPORT``, which let it bind again before, let any other process
of the same user bind the port too: a second custview with the same
``sql.port`` started without a word and the kernel split the connections
between the two. Without it the port of a running custview (or of anything
else) is refused (``EADDRINUSE``) as the HTTP port is, and ``SO_REUSEADDR``
still lets a restarted custview bind at once (connections left in TIME_WAIT
do not hold the port).

Once the new endpoint accepts, the old one stops accepting (its ``superseded``
callback): it finishes the connections it holds, but a client connecting now
meets the new configuration (its keys), not the old one, however long the old
app drains.

A socket listens as soon as it is bound: two custview processes started at the
same instant could otherwise both bind the port (``SO_REUSEADDR`` lets sockets
that do not listen yet share it) and find out only when the later one's endpoint
listened, in its app's start-up. ``custview serve`` holds the port from its
check on (:func:`reserve`) until the first endpoint takes it over: the second
process is refused at its check, with one line, before anything starts.

A host that resolves to several addresses (``""`` or ``::`` and ``0.0.0.0``,
a name with an IPv4 and an IPv6 address) gets one socket per address, all on
the same port: with port ``0`` the first picks a free one and the others bind
that one (each family picked its own before, and the log named one of them).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Address = tuple[str, int]


@dataclass
class _Shared:
    sockets: list[socket.socket]
    users: int
    superseded: Callable[[], None] | None = None
    """How the endpoint accepting on the sockets now stops accepting (one at a time)."""
    reserved: bool = False
    """Held by :func:`reserve` (one of ``users``) until an endpoint accepts on them."""


_listening: dict[Address, _Shared] = {}


BACKLOG = 100
"""As :func:`asyncio.start_server`'s, which listens on them again."""

SAME_PORT_TRIES = 10
"""Free ports (port ``0``) tried in turn when the one the first address got is
taken at another of the host's addresses."""

_Found = tuple[socket.AddressFamily, socket.SocketKind, int, Any]


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to ``host``:``port`` as :func:`asyncio.start_server` binds them
    (every address the host resolves to; IPv6 only on an IPv6 address; address
    reuse), without port reuse, all on one port (port ``0``: the one the first
    address got), and listening at once, so no other socket binds the port
    meanwhile; ``OSError`` names the address that is taken."""
    found: list[_Found] = [
        (family, kind, proto, address)
        for family, kind, proto, _, address in dict.fromkeys(
            socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        )
    ]
    tries = SAME_PORT_TRIES if port == 0 and len(found) > 1 else 1
    for attempt in range(1, tries + 1):
        try:
            return _bind_all(found)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == tries:
                raise
    raise AssertionError("unreachable")


def _bind_all(found: list[_Found]) -> list[socket.socket]:
    """A listening socket at each address, every one on the first one's port."""
    sockets: list[socket.socket] = []
    chosen: int | None = None
    try:
        for family, kind, proto, address in found:
            if chosen is not None:
                address = (address[0], chosen, *address[2:])
            sockets.append(_listen(family, kind, proto, address))
            if chosen is None:
                chosen = sockets[0].getsockname()[1]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _listen(
    family: socket.AddressFamily, kind: socket.SocketKind, proto: int, address: Any
) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        raise OSError(
            exc.errno, f"error while attempting to bind on address {address!r}: {reason}"
        ) from None
    except BaseException:
        sock.close()
        raise
    return sock


def acquire(host: str, port: int) -> tuple[Address, list[socket.socket]]:
    """The listening sockets of ``host``:``port`` in this process (bound now unless an
    endpoint of this process holds them) and the address to :func:`release` them by;
    port ``0`` always binds a free port of its own. The endpoint calls :func:`accepting`
    once it accepts on them."""
    shared = _listening.get((host, port)) if port else None
    if shared is None:
        sockets = bind(host, port)
        shared = _Shared(sockets, 0)
        port = sockets[0].getsockname()[1]
        _listening[(host, port)] = shared
    shared.users += 1
    return (host, port), shared.sockets


def reserve(host: str, port: int) -> Address:
    """Holds ``host``:``port`` (a port other than ``0``) from now on, bound and
    listening, for an endpoint of this process to start on later: no other process
    can take it meanwhile. The first endpoint accepting on it takes it over
    (:func:`accepting`); :func:`unreserve` lets go of it if none did."""
    address, _ = acquire(host, port)
    _listening[address].reserved = True
    return address


def unreserve(address: Address) -> None:
    """Lets go of what :func:`reserve` holds, unless an endpoint took it over."""
    shared = _listening.get(address)
    if shared is not None and shared.reserved:
        shared.reserved = False
        release(address)


def accepting(address: Address, superseded: Callable[[], None]) -> None:
    """The endpoint that acquired ``address`` last accepts on its sockets now: every
    other endpoint stops accepting (it keeps its connections); ``superseded`` stops
    this one when a later one accepts. A :func:`reserve` of the address ends: the
    sockets close once no endpoint uses them (a reload moving the port)."""
    shared = _listening.get(address)
    if shared is None:
        return
    if shared.reserved:
        shared.reserved = False
        shared.users -= 1  # this endpoint holds them now
    earlier, shared.superseded = shared.superseded, superseded
    if earlier is not None:
        earlier()


def release(address: Address) -> None:
    """One endpoint no longer listens on ``address``; the last one closes its sockets."""
    shared = _listening.get(address)
    if shared is None:
        return
    shared.users -= 1
    if shared.users <= 0:
        del _listening[address]
        for sock in shared.sockets:
            sock.close()
