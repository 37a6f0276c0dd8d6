"""The id of the request a source call serves, handed on to the source.

The gateway sets it for each request (:func:`request_id_scope`, a context
variable, so concurrent requests never mix); a connector that talks to a
source reads it with :func:`current_request_id` and passes it on in the
source's own terms (the REST connector as an ``X-Request-ID`` header, the
SQL connector as a comment on each statement), so a line in a source's log
can be matched to custview's log line for the same request. Connectors
learn only an opaque id, never who asked or about whom.

An id is at most 64 characters from ``A-Z a-z 0-9 . _ -``: safe inside a
SQL comment and an HTTP header without quoting.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

from connectors._scope import VarScope

HEADER = "X-Request-ID"
_SAFE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_current: ContextVar[str | None] = ContextVar("custview_request_id", default=None)


def is_valid_request_id(text: str) -> bool:
    """Whether ``text`` may be used as a request id as it is."""
    return _SAFE.fullmatch(text) is not None


def new_request_id() -> str:
    """A fresh random id: 32 hex digits, a version 4 UUID's (``uuid.uuid4().hex``
    without the ``UUID`` object, made once a request)."""
    return f"{int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET:032x}"


_UUID4_CLEAR = ~(0xF000 << 64 | 0xC000 << 48)
"""The bits of the version (4 bits) and the RFC 4122 variant (2 bits)..."""
_UUID4_SET = 0x4000 << 64 | 0x8000 << 48
"""... set to version 4 and variant ``10``, as ``uuid.UUID(..., version=4)`` does."""


def current_request_id() -> str | None:
    """The id of the request being served, if any."""
    return _current.get()


def request_id_scope(request_id: str) -> VarScope[str]:
    """Source calls made inside the block (and its tasks) carry ``request_id``
    (``with`` gives it back)."""
    if not is_valid_request_id(request_id):
        raise ValueError("a request id is 1-64 characters from A-Z a-z 0-9 . _ -")
    return VarScope(_current, request_id)


def tagged_statement(statement: str) -> str:
    """``statement`` with the current request id as a trailing SQL comment."""
    request_id = _current.get()
    if request_id is None:
        return statement
    return f"{statement} /* request_id={request_id} */"
