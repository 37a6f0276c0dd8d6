"""The JSON-lines audit log: every entry is in the file when ``append`` returns
(written on the event loop, or in a thread when ``fsync`` forces it to disk),
and a write that fails refuses the answer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.audit import JsonLinesAuditLog
from resolvers.audit import Auditor, AuditUnavailable, Caller


@pytest.mark.parametrize("fsync", [False, True])
async def test_each_entry_is_one_line_in_the_file_when_append_returns(
    tmp_path: Path, fsync: bool
) -> None:
    log = JsonLinesAuditLog(tmp_path / "audit.jsonl", fsync=fsync)
    auditor = Auditor(log, Caller("demo", "api_key", ("admin",), "127.0.0.1"))
    for n in range(3):
        await auditor.record([f"cus_{n}"], ["Customer.name"], "ok")
        assert [e["customers"] for e in log.read()] == [[f"cus_{i}"] for i in range(n + 1)]
    entry = list(log.read())[-1]
    assert entry["principal"] == "demo" and entry["fields"] == ["Customer.name"]


@pytest.mark.parametrize("fsync", [False, True])
async def test_an_entry_that_cannot_be_written_refuses_the_answer(
    tmp_path: Path, fsync: bool
) -> None:
    log = JsonLinesAuditLog(tmp_path, fsync=fsync)  # a directory: open() fails
    auditor = Auditor(log, Caller("demo", "api_key"))
    with pytest.raises(AuditUnavailable):
        await auditor.record(["cus_1"], ["Customer.name"], "ok")


TORN = """
import asyncio, json, resource, sys
import os
from pathlib import Path
from gateway.audit import JsonLinesAuditLog

path = Path(sys.argv[1])
log = JsonLinesAuditLog(path)
asyncio.run(log.append({"n": 0, "pad": "x" * 50}))
size = path.stat().st_size
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
# the file may grow by half an entry: the next entry is cut part-way
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 30, hard))
try:
    asyncio.run(log.append({"n": 1, "pad": "x" * 50}))
    print("appended")
except OSError:
    print("refused")
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
asyncio.run(log.append({"n": 2, "pad": "x" * 50}))
print(json.dumps([e["n"] for e in log.read()]))
"""


def test_a_write_cut_part_way_refuses_and_loses_no_later_entry(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", TORN, str(path)], capture_output=True, text=True, check=True
    )
    verdict, entries = done.stdout.splitlines()
    # the cut entry's answer is refused; the file holds its torn start, then the
    # next entry on a line of its own, read back whole
    assert verdict == "refused"
    assert entries == "[0, 2]"
    lines = path.read_bytes().split(b"\n")
    assert len(lines[1]) == 30 and not lines[1].endswith(b"}")


def test_the_check_leaves_no_file_behind_and_fails_closed(tmp_path: Path) -> None:
    """The command line's check before a read does not create the log: an operation
    that reads nothing (a syntax error) leaves no empty file."""
    log = JsonLinesAuditLog(tmp_path / "audit.jsonl")
    log.check()
    assert not log.path.exists()
    log.path.write_text('{"at": "x"}\n')
    log.check()
    assert log.path.read_text() == '{"at": "x"}\n'
    with pytest.raises(FileNotFoundError):
        JsonLinesAuditLog(tmp_path / "missing" / "audit.jsonl").check()
    with pytest.raises(IsADirectoryError):
        JsonLinesAuditLog(tmp_path).check()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any folder")
def test_the_check_refuses_a_folder_it_cannot_write(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    try:
        with pytest.raises(PermissionError):
            JsonLinesAuditLog(folder / "audit.jsonl").check()
    finally:
        folder.chmod(0o700)
