"""The JSON-lines audit log: every entry is in the file when ``append`` returns
(written on the event loop, or in a thread when ``fsync`` forces it to disk),
and a write that fails refuses the answer."""

from __future__ import annotations

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
