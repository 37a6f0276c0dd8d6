"""Request ids: a fresh one is a version 4 UUID's 32 hex digits, as ``uuid4().hex``."""

from __future__ import annotations

import uuid

from connectors.request_id import is_valid_request_id, new_request_id


def test_a_new_request_id_is_a_random_uuid4_in_hex() -> None:
    made = {new_request_id() for _ in range(2000)}
    assert len(made) == 2000
    for request_id in made:
        parsed = uuid.UUID(request_id)
        assert parsed.hex == request_id and len(request_id) == 32
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert is_valid_request_id(request_id)
    # every other bit varies: none is stuck at 0 or 1 across 2,000 ids
    fixed = 0xF000 << 64 | 0xC000 << 48
    ones = zeros = 0
    for request_id in made:
        value = int(request_id, 16)
        ones |= value
        zeros |= ~value
    assert (ones & zeros) | fixed == (1 << 128) - 1
