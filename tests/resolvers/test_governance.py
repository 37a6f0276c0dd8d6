"""A governed Customer field's checks: the grant, the field's action, the read trail."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.governance import ReadTrail, _Governor
from resolvers.policy import AccessDenied, ForbiddenField, Grant


def _field(name: str) -> Any:
    model = load_settings(DEMO_CONFIG).settings.model
    return _Governor(model).customer_field(name, lambda root, info: f"{name} of {root.id}")


def test_a_customer_field_is_read_by_the_grant_and_noted_in_the_trail() -> None:
    root = SimpleNamespace(id="cus_1")
    grant = Grant(("r",), {"email": "allow"}, {})
    for context in (
        {"grant": grant, "trail": ReadTrail()},
        MappingProxyType({"grant": grant, "trail": ReadTrail()}),  # any mapping
    ):
        assert _field("email")(root, SimpleNamespace(context=context)) == "email of cus_1"
        trail = context["trail"]
        assert (trail.fields, trail.customers, trail.denied) == (
            {"Customer.email"},
            {"cus_1"},
            set(),
        )
    # no trail in the context: read all the same
    assert _field("email")(root, SimpleNamespace(context={"grant": grant})) == "email of cus_1"


def test_a_customer_field_without_a_grant_or_allowed_action_is_refused() -> None:
    root = SimpleNamespace(id="cus_1")
    for context in ({}, {"grant": "admin"}, ["not", "a", "mapping"], {"trail": ReadTrail()}):
        with pytest.raises(AccessDenied):
            _field("email")(root, SimpleNamespace(context=context))
    trail = ReadTrail()
    with pytest.raises(ForbiddenField):
        _field("phone")(
            root, SimpleNamespace(context={"grant": Grant(("r",), {}, {}), "trail": trail})
        )
    assert (trail.fields, trail.customers, trail.denied) == (set(), set(), {"Customer.phone"})
