"""An export worker's process that lets go of its pipes once reaped and still
tells how it ended.

A process started by multiprocessing's fork server holds two pipe ends in the
starting process: its sentinel and a copy of its data pipe's write end. The
public way to close them is :meth:`multiprocessing.process.BaseProcess.close`,
after which ``exitcode``, ``is_alive()`` and ``pid`` raise ``ValueError``; left
open, they close only when the process object is collected, which an error's
traceback holding the exporter may put off indefinitely. :class:`WorkerProcess`
closes the process once it has been reaped (:meth:`release`) and answers those
three from what it read before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess


class WorkerProcess:
    """A started process; after :meth:`release` it is closed, not alive, and keeps
    its ``pid`` and ``exitcode``."""

    def __init__(self, process: BaseProcess) -> None:
        self._process: BaseProcess | None = process
        self.pid = process.pid
        self._exitcode: int | None = None

    @property
    def exitcode(self) -> int | None:
        return self._exitcode if self._process is None else self._process.exitcode

    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self._process is not None:
            self._process.join(timeout)

    def terminate(self) -> None:
        if self._process is not None:
            self._process.terminate()

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()

    def release(self) -> None:
        """Closes the process (its pipes to the fork server) if it has been reaped."""
        process = self._process
        if process is None or process.exitcode is None:  # still running: not yet
            return
        self._exitcode = process.exitcode
        process.close()
        self._process = None
