"""custview's errors cross process boundaries (export workers) with their context."""

from __future__ import annotations

import pickle

from connectors import ConfigError, ConnectorError
from connectors.errors import DeadlineExceeded, SchemaMismatch, SourceUnavailable


def test_errors_pickle_with_their_class_message_and_attributes() -> None:
    errors = [
        SourceUnavailable("HTTP 400", source="feedback", retryable=False),
        DeadlineExceeded("no answer in time", source="crm"),
        SchemaMismatch("no column 'x'", source="sales", table="orders", column="x"),
        ConfigError("unknown key", file="c.yaml", path="model", line=3),
    ]
    for error in errors:
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert back.message == error.message and str(back) == str(error)
        assert back.__dict__ == error.__dict__ and back.code == error.code
    unavailable = pickle.loads(pickle.dumps(errors[0]))
    assert isinstance(unavailable, ConnectorError)
    assert (unavailable.source, unavailable.reason, unavailable.retryable) == (
        "feedback", "HTTP 400", False,
    )  # fmt: skip
