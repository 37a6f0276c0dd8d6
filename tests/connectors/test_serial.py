"""One thread running jobs in order, answering on the loop (the SQLite direct path's
connections and each export's waits on its workers)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from functools import partial

import pytest

from connectors.serial import SerialThread


async def test_jobs_run_in_order_on_one_thread_and_answer_on_the_loop() -> None:
    runner = SerialThread("test-serial")
    seen: list[tuple[int, str]] = []

    def job(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 10

    try:
        answers = [runner.call(partial(job, n)) for n in range(5)]
        assert await asyncio.gather(*answers) == [0, 10, 20, 30, 40]
    finally:
        runner.stop()
        runner.join()
    assert seen == [(n, "test-serial") for n in range(5)]


async def test_an_exception_is_the_callers_and_the_thread_goes_on() -> None:
    runner = SerialThread("test-serial")

    def fail() -> None:
        raise ValueError("no")

    try:
        runner.post(fail)  # nobody waits for it: its failure is dropped
        with pytest.raises(ValueError, match="no"):
            await runner.call(fail)
        assert await runner.call(lambda: "still here") == "still here"
    finally:
        runner.stop()
        runner.join()


async def test_a_job_whose_caller_stopped_waiting_before_it_started_never_runs() -> None:
    runner = SerialThread("test-serial")
    release = threading.Event()
    ran: list[str] = []
    try:
        blocking = runner.call(release.wait)
        dropped = runner.call(lambda: ran.append("dropped"))
        dropped.cancel()  # e.g. its timeout passed while the thread was busy
        release.set()
        await blocking
        await runner.call(lambda: None)
        assert runner.idle()
    finally:
        runner.stop()
        runner.join()
    assert ran == []


def test_a_thread_blocked_for_good_does_not_keep_the_process_from_exiting() -> None:
    # the reason it is not ThreadPoolExecutor(max_workers=1), whose thread the
    # interpreter joins on the way out
    script = (
        "import threading\n"
        "from connectors.serial import SerialThread\n"
        "SerialThread('blocked').post(threading.Event().wait)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert done.returncode == 0


async def test_a_job_raising_stop_iteration_fails_its_caller_instead_of_hanging() -> None:
    # asyncio futures refuse StopIteration (TypeError in the loop's callback)
    thread = SerialThread("test-stop-iteration")
    try:

        def stop() -> None:
            raise StopIteration

        with pytest.raises(RuntimeError, match="StopIteration"):
            await asyncio.wait_for(thread.call(stop), 10)
    finally:
        thread.stop()
        thread.join()
