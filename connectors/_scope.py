"""A context variable set for a block: the request-scoped values source calls read
(the deadline, the request id, the freshness report)."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Generic, TypeVar

T = TypeVar("T")


class VarScope(Generic[T]):
    """``with`` sets ``var`` to ``value`` (and gives ``value``), and puts it back
    after. A class, not a generator-based context manager: every request enters a
    few, on the path of every one."""

    __slots__ = ("_token", "_value", "_var")

    def __init__(self, var: ContextVar[T | None], value: T) -> None:
        self._var = var
        self._value = value
        self._token: Token[T | None] | None = None

    def __enter__(self) -> T:
        if self._token is not None:  # its exit could put back only one of the two
            raise RuntimeError("a scope is entered once; make another")
        self._token = self._var.set(self._value)
        return self._value

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        try:  # noqa: SIM105 (suppress costs three calls; once a request)
            self._var.reset(self._token)
        except ValueError:  # left in another context: nothing to undo
            pass
