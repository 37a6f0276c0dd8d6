"""Record references: stable names of source records, usable as keys anywhere."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

from resolvers.records import RecordRef


def test_a_reference_from_another_process_finds_its_equal() -> None:
    """A reference caches its hash; one unpickled from a process with another hash
    seed (a worker pool's) must still hash as this process's equal reference does."""
    code = (
        "import pickle, sys; from resolvers.records import RecordRef; "
        "sys.stdout.buffer.write(pickle.dumps(RecordRef('crm', 'contacts', '42')))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    sent = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, check=True
    ).stdout
    here = RecordRef("crm", "contacts", "42")
    received = pickle.loads(sent)
    assert received == here and hash(received) == hash(here)
    assert {here: "found"}[received] == "found"
    assert str(received) == "crm/contacts/42"
