"""The quality checks on their own: which values fail, in which region, and
which fields are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import ConfigError
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.quality import (
    _region,
    default_checks,
    email_problem,
    phone_problem,
    postcode_problem,
)


@pytest.mark.parametrize(
    ("email", "ok"),
    [
        ("raj526+store@gmail.com", True),
        ("  Padded@Example.COM ", True),  # formatting noise, not invalidity
        ("jane at example.com", False),
        ("jane@example,com", False),
        ("jane@@example.com", False),
        ("jane@example", False),
    ],
)
def test_email_syntax(email: str, ok: bool) -> None:
    assert (email_problem(email) is None) is ok


def test_phones_are_read_in_the_records_region() -> None:
    assert phone_problem("(207) 464-7021", "US") is None
    assert phone_problem("020 7946 0958", "GB") is None
    assert phone_problem("+1 415 555 0123", None) is None
    assert phone_problem("020 7946 0958", None) is not None, "national number, no region"
    assert "in US" in (phone_problem("12-34", "US") or "")
    assert phone_problem("n/a", "US") is not None


def test_postcodes_follow_the_countrys_format() -> None:
    assert postcode_problem("77095", "US") is None
    assert postcode_problem("SW1A 1AA", "GB") is None
    assert postcode_problem("K1A 0B1", "CA") is None
    assert postcode_problem("7709", "US") == "not a US postcode"
    assert postcode_problem("N/A", "DE") is not None
    assert postcode_problem("whatever", None) is None, "no country, no verdict"


def test_a_bare_language_is_no_region() -> None:
    assert (_region("en-GB"), _region("de_DE"), _region("US")) == ("GB", "DE", "US")
    assert _region("en") is None and _region(None) is None


def test_checks_are_inferred_or_configured(tmp_path: Path) -> None:
    model = load_settings(DEMO_CONFIG).settings.model
    assert default_checks(model) == {"email": "email", "phone": "phone", "postcode": "postcode"}
    custom = model.model_copy(
        update={"quality": model.quality.model_copy(update={"checks": {"email": "email"}})}
    )
    assert default_checks(custom) == {"email": "email"}


def test_a_check_on_an_unknown_field_is_a_located_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    text = DEMO_CONFIG.read_text()
    config.write_text(
        text.replace(
            "\n  survivorship:", "\n  quality:\n    checks: {zip: postcode}\n  survivorship:", 1
        )
    )
    with pytest.raises(ConfigError, match="quality: 'zip' is not a Customer field") as caught:
        load_settings(config)
    assert "bad.yaml" in str(caught.value)
