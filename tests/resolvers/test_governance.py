"""A governed Customer field's checks: the grant, the field's action, the read trail."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.governance import Governor, ReadTrail
from resolvers.policy import AccessDenied, ForbiddenField, Grant


def _field(name: str) -> Any:
    model = load_settings(DEMO_CONFIG).settings.model
    return Governor(model).customer_field(name, lambda root, info: f"{name} of {root.id}")


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
    # no trail in the context (or something else under its name): read all the same
    assert _field("email")(root, SimpleNamespace(context={"grant": grant})) == "email of cus_1"
    context = {"grant": grant, "trail": "not a trail"}
    assert _field("email")(root, SimpleNamespace(context=context)) == "email of cus_1"


def test_subclasses_of_the_grant_and_the_trail_are_honoured() -> None:
    """The resolver reads the gateway's own context without the general checks;
    a subclass of Grant still grants, and a subclass of ReadTrail still notes
    through its own ``note``."""

    class RoleGrant(Grant):
        pass

    class LoudTrail(ReadTrail):
        def note(self, customer_id: str | None, name: str, denied: bool = False) -> None:
            super().note(customer_id, name.upper(), denied)

    root = SimpleNamespace(id="cus_1")
    trail = LoudTrail()
    context = {"grant": RoleGrant(("r",), {"email": "allow"}, {}), "trail": trail}
    assert _field("email")(root, SimpleNamespace(context=context)) == "email of cus_1"
    assert (trail.fields, trail.customers) == ({"CUSTOMER.EMAIL"}, {"cus_1"})


def test_a_full_grant_subclass_is_asked_for_each_field() -> None:
    """A subclass of Grant that calls itself full but denies a field in its own
    ``action`` is asked (the shortcut for a full grant is the plain Grant's): the
    field is refused and the trail notes the denial, as before the shortcut."""

    class Almost(Grant):
        def action(self, name: str) -> str:
            return "deny" if name == "email" else super().action(name)

    trail = ReadTrail()
    grant = Almost(("r",), {}, {}, None, "", True)
    context = {"grant": grant, "trail": trail}
    with pytest.raises(ForbiddenField):
        _field("email")(SimpleNamespace(id="cus_1"), SimpleNamespace(context=context))
    assert (trail.fields, trail.customers, trail.denied) == (set(), set(), {"Customer.email"})


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


def test_refuses_tells_what_the_field_fails_with_before_reading() -> None:
    """:meth:`Governor.refuses` (the fast path's prefetch asks it) answers as the
    field's resolver fails, without noting a read: no grant, denied, a page size
    over the limit."""
    model = load_settings(DEMO_CONFIG).settings.model
    governor = Governor(model)
    root = SimpleNamespace(id="cus_1")
    grant = Grant(("r",), {"tickets": "allow", "orders": "deny"}, {})
    cases = [
        ({}, "tickets", {}),
        ({"grant": grant}, "tickets", {}),
        ({"grant": grant}, "orders", {}),
        ({"grant": grant, "max_page_size": 5}, "tickets", {"first": 5}),
        ({"grant": grant, "max_page_size": 5}, "tickets", {"first": 6}),
        ({"grant": grant}, "tickets", {"first": 600}),
    ]
    for context, name, kwargs in cases:
        trail = ReadTrail()
        info = SimpleNamespace(context={**context, "trail": trail})
        refused = governor.refuses(name, info, kwargs)
        assert (trail.fields, trail.denied) == (set(), set())
        field = governor.customer_field(name, lambda root, info, **kwargs: "read")
        try:
            field(root, info, **kwargs)
        except Exception:
            assert refused, (context, name, kwargs)
        else:
            assert not refused, (context, name, kwargs)
    assert [governor.refuses(n, SimpleNamespace(context=c), k) for c, n, k in cases] == [
        True, False, True, False, True, False,
    ]  # fmt: skip
