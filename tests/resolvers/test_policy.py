"""The policy in config: validated with located errors; grants combine roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import ConfigError
from gateway.settings import DEMO_CONFIG, load_settings
from resolvers.policy import AccessDenied, Policy, PolicySpec

POLICY = """
policy:
  roles:
    analyst:
      default: deny
      fields: {country: allow, email: mask:hash, tickets: allow}
      entities: {Ticket: {status: allow}}
      rows: ["country in principal.attributes.regions"]
    helpdesk:
      fields: {email: mask:email, birthDate: deny}
"""


def _config(tmp_path: Path, policy: str) -> Path:
    text = DEMO_CONFIG.read_text()
    start = text.index("\npolicy:")
    end = text.index("\nsources:")
    path = tmp_path / "custview.yaml"
    path.write_text(text[:start] + "\n" + policy.strip("\n") + "\n" + text[end:])
    return path


@pytest.mark.parametrize(
    ("snippet", "where", "says"),
    [
        ("fields: {emial: deny}", "policy.roles.r.fields.emial", "not a Customer field"),
        ("fields: {birthDate: mask:email}", "policy.roles.r.fields.birthDate", "string field"),
        ("fields: {email: scramble}", "policy.roles.r.fields.email", "allow"),
        ("entities: {Invoice: {x: deny}}", "policy.roles.r.entities.Invoice", "not a related"),
        ("entities: {Order: {total: mask:name}}", "policy.roles.r.entities.Order.total", "string"),
        ('rows: ["country = DE"]', "policy.roles.r.rows", "not of the form"),
        ('rows: ["shoe in principal.attributes.x"]', "policy.roles.r.rows[0]", "golden field"),
    ],
)
def test_policy_errors_are_located(tmp_path: Path, snippet: str, where: str, says: str) -> None:
    path = _config(tmp_path, f"policy:\n  roles:\n    r:\n      {snippet}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = caught.value.message
    assert f"at '{where}'" in message and says in message, message
    assert f"{path}:" in message, "the file and line are named"


def test_roles_combine_to_the_most_permissive_and_rows_fail_closed(tmp_path: Path) -> None:
    loaded = load_settings(_config(tmp_path, POLICY))
    policy = loaded.policy
    analyst = policy.grant(["analyst"], {"regions": "DE, FR"})
    assert analyst.action("email") == "mask:hash" and analyst.action("name") == "deny"
    assert analyst.entity_action("Ticket", "status") == "allow"
    assert analyst.entity_action("Ticket", "subject") == "deny"
    assert analyst.entity_action("Order", "total") == "deny", "orders are denied by default"
    assert analyst.admits({"country": "FR"}) and not analyst.admits({"country": "US"})
    assert not policy.grant(["analyst"]).admits({"country": "FR"}), "no attribute, no rows"
    both = policy.grant(["analyst", "helpdesk"], {})
    assert both.action("email") == "mask:email" and both.action("birthDate") == "deny"
    assert both.admits({"country": "US"}), "helpdesk has no row rule"
    with pytest.raises(AccessDenied):
        policy.grant(["intern"])


def test_no_policy_reads_everything() -> None:
    settings = load_settings(DEMO_CONFIG).settings
    grant = Policy(None, settings.model).grant([])
    assert grant.full and grant.action("email") == "allow" and grant.admits({})
    spec = PolicySpec.model_validate({"roles": {"x": {}}, "default_role": "x"})
    assert Policy(spec, settings.model).grant(["unknown"]).full


def test_policy_explain_prints_what_a_role_sees() -> None:
    import json

    from typer.testing import CliRunner

    from gateway.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["policy", "explain", "--role", "support", "--json"])
    assert shown.exit_code == 0, shown.output
    explained = json.loads(shown.output)
    assert explained["customer"]["email"] == "mask:email"
    assert explained["customer"]["street"] == "deny"
    assert explained["entities"]["Order"]["total"] == "deny"
    table = runner.invoke(app, ["policy", "explain", "--role", "regional"])
    assert "country in principal.attributes.regions" in table.output
    unknown = runner.invoke(app, ["policy", "explain", "--role", "intern"])
    assert unknown.exit_code == 2 and "known: admin, support, regional" in unknown.output


def test_a_grant_is_made_once_per_set_of_roles_unless_attributes_decide_it(
    tmp_path: Path,
) -> None:
    """Every request asks for its caller's grant: one that the caller's attributes
    cannot change is kept per set of roles; one with row rules is made each time."""
    policy = load_settings(_config(tmp_path, POLICY)).policy
    helpdesk = policy.grant(frozenset({"helpdesk"}), {"regions": "DE"})
    assert policy.grant(frozenset({"helpdesk"}), {}) is helpdesk
    assert helpdesk == policy.grant(["helpdesk"]), "the same grant as made afresh"
    both = policy.grant(frozenset({"analyst", "helpdesk"}), {})
    assert both is not helpdesk and both.action("country") == "allow"
    de = policy.grant(frozenset({"analyst"}), {"regions": "DE"})
    us = policy.grant(frozenset({"analyst"}), {"regions": "US"})
    assert de.admits({"country": "DE"}) and not de.admits({"country": "US"})
    assert us.admits({"country": "US"}) and not us.admits({"country": "DE"})
    with pytest.raises(AccessDenied):
        policy.grant(frozenset({"intern"}))
    with pytest.raises(AccessDenied):  # refused every time, never kept
        policy.grant(frozenset({"intern"}))
    for n in range(300):  # role sets come from tokens too: the kept ones are bounded
        policy.grant(frozenset({"helpdesk", f"team-{n}"}))
    assert len(policy._grants) <= 256
