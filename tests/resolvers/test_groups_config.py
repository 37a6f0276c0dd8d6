"""The business and household config: validated with located errors; the
company and domain normalisers the grouping compares with."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from resolvers.matching import normalize as n
from resolvers.model import UnifiedModel

MEMBERS = [
    {"source": "crm", "table": "contacts", "fields": {"name": "name"}},
    {"source": "crm", "table": "leads", "fields": {"name": "name"}},
]


def model(**sections: Any) -> UnifiedModel:
    return UnifiedModel.model_validate(
        {
            "customer": {"fields": {"name": {}}, "members": MEMBERS},
            "identity": {"keys": {"email": {"normalize": "email"}}},
            **sections,
        }
    )


ACCOUNTS = [{"source": "crm", "table": "accounts", "name": "name", "domain": "domain"}]


def test_a_valid_business_and_household() -> None:
    m = model(
        business={
            "accounts": ACCOUNTS,
            "members": {
                "crm.contacts": {"account": "crm.accounts", "column": "account_id"},
                "crm.leads": {"company": "company", "email": "email"},
            },
        },
        household={"members": {"crm.contacts": {"street": "s", "postcode": "p", "surname": "l"}}},
    )
    assert m.business is not None and m.household is not None
    assert "crm" in m.sources()


@pytest.mark.parametrize(
    ("sections", "where", "message"),
    [
        (
            {"business": {"members": {"crm.users": {"email": "email"}}}},
            (),
            "business.members: 'crm.users' is not a customer member",
        ),
        (
            {
                "business": {
                    "accounts": ACCOUNTS,
                    "members": {"crm.contacts": {"account": "crm.orgs", "column": "org_id"}},
                }
            },
            (),
            "business.members.crm.contacts.account: 'crm.orgs' is not listed",
        ),
        (
            {"business": {"members": {"crm.contacts": {"account": "crm.accounts"}}}},
            ("business", "members", "crm.contacts"),
            "give 'account' and 'column' together",
        ),
        (
            {"business": {"members": {"crm.contacts": {}}}},
            ("business", "members", "crm.contacts"),
            "say how its records name a business",
        ),
        (
            {"household": {"members": {"crm.contacts": {"street": "s", "postcode": "p"}}}},
            ("household", "members", "crm.contacts", "surname"),
            "Field required",
        ),
        (
            {"household": {"members": {}, "min_customers": 2}},
            ("household", "members"),
            "at least 1 item",
        ),
    ],
)
def test_bad_group_config_is_a_located_error(
    sections: dict[str, Any], where: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model(**sections)
    error = caught.value.errors()[0]
    assert tuple(error["loc"])[: len(where)] == where
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ACME, Inc.", "acme"),
        ("Acme Inc", "acme"),
        ("acme", "acme"),
        ("Smith & Jones GmbH & Co. KG", "smith jones"),
        ("Smith and Jones", "smith jones"),
        ("Müller Pty. Ltd.", "muller"),
        ("Co.", "co"),
        ("  ", None),
        (None, None),
    ],
)
def test_company_names(raw: object, expected: str | None) -> None:
    assert n.company(raw) == expected


def test_every_usual_spelling_has_the_normal_form() -> None:
    for name in ("acme", "smith jones", "orbit supply"):
        spellings = n.company_spellings(name)
        assert all(n.company(s) == name for s in spellings)
        assert {"acme, inc.", "smith & jones gmbh & co. kg"} & set(spellings) or name != "acme"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme.com", "acme.com"),
        ("https://www.Acme.com/about", "acme.com"),
        ("Sales@ACME.co.uk", "acme.co.uk"),
        ("localhost", None),
        ("", None),
    ],
)
def test_domains(raw: str, expected: str | None) -> None:
    assert n.domain(raw) == expected
