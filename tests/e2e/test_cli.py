"""The custview command as a user runs it: real processes, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import DEMO_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``custview ARGS`` in a child process (the environment: this one's by default)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else dict(os.environ),
        timeout=120,
    )


def with_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def assert_clean_failure(
    result: subprocess.CompletedProcess[str], code: int, *needles: str
) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def demo_yaml() -> str:
    return DEMO_CONFIG.read_text()


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert_clean_failure(run("check", "--config", str(missing)), 2, str(missing), "not found")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsources:\n  crm: [unclosed\n")
    assert_clean_failure(run("check", "--config", str(bad)), 2, f"{bad}:", "YAML syntax error")


def test_unknown_key_names_path_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    original = "      order_by: [-created_at, -id]"
    bad.write_text(demo_yaml().replace(original, "      ordr_by: [-created_at, -id]", 1))
    result = run("check", "--config", str(bad))
    assert_clean_failure(result, 2, "model.relations.tickets.ordr_by", "unknown key 'ordr_by'")
    line = demo_yaml().splitlines().index(original) + 1
    assert f"{bad}:{line}" in result.stderr


def test_unknown_connector_option(tmp_path: Path) -> None:
    bad = tmp_path / "opt.yaml"
    bad.write_text(
        demo_yaml().replace("      timeout: 5\n", "      timeout: 5\n      pool: 3\n", 1)
    )
    assert_clean_failure(run("check", "--config", str(bad)), 2, "sources.crm.options.pool")


def test_missing_environment_variable_is_named_and_secrets_never_shown(tmp_path: Path) -> None:
    cfg = tmp_path / "env.yaml"
    cfg.write_text(
        demo_yaml().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/crm.db"', '"${CRM_URL}"'
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "CRM_URL"}
    result = run("check", "--config", str(cfg), env=env)
    assert_clean_failure(result, 2, "CRM_URL", "sources.crm.options.url")
    line = cfg.read_text().splitlines().index('      url: "${CRM_URL}"') + 1
    assert f"{cfg}:{line} at 'sources.crm.options.url'" in result.stderr, "its line too"

    secret_url = "postgresql+asyncpg://custview:s3cret-pw@127.0.0.1:1/crm"
    result = run("check", "--config", str(cfg), env=with_env(CRM_URL=secret_url))
    assert result.returncode == 1, result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "crm" in result.stdout


def test_unreachable_source_fails_check_with_its_name(tmp_path: Path, demo_dir: Path) -> None:
    cfg = tmp_path / "down.yaml"
    cfg.write_text(
        demo_yaml().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/support.db"',
            '"postgresql+asyncpg://postgres@127.0.0.1:1/support"',
        )
    )
    env = with_env(CUSTVIEW_DEMO_DIR=str(demo_dir))
    result = run("check", "--config", str(cfg), "--json", env=env)
    assert result.returncode == 1, result.stderr
    rows = {row["source"]: row for row in json.loads(result.stdout)}
    assert rows["support"]["reachable"] is False
    assert rows["support"]["detail"]
    assert rows["crm"]["reachable"] is True


def test_check_reaches_the_business_account_tables_too(
    tmp_path: Path, demo_dir: Path, feedback_url: str
) -> None:
    cfg = tmp_path / "accounts.yaml"
    text = demo_yaml().replace("table: accounts", "table: acounts")
    cfg.write_text(text.replace("crm.accounts", "crm.acounts"))
    env = with_env(CUSTVIEW_DEMO_DIR=str(demo_dir), CUSTVIEW_FEEDBACK_URL=feedback_url)
    result = run("check", "--config", str(cfg), "--json", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {row["source"]: row for row in json.loads(result.stdout)}
    assert rows["crm"]["tables"]["acounts"] is False
    assert rows["support"]["tables"]["organizations"] is True


def test_an_unreachable_registry_fails_check_without_its_password(
    tmp_path: Path, demo_dir: Path, feedback_url: str
) -> None:
    cfg = tmp_path / "registry-down.yaml"
    cfg.write_text(
        demo_yaml().replace(
            '"sqlite+aiosqlite:///${CUSTVIEW_DEMO_DIR:-demo-data}/registry.db"',
            '"postgresql://custview:s3cret-pw@127.0.0.1:1/registry"',
        )
    )
    env = with_env(CUSTVIEW_DEMO_DIR=str(demo_dir), CUSTVIEW_FEEDBACK_URL=feedback_url)
    result = run("check", "--config", str(cfg), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "identity registry unreachable" in result.stdout
    assert "s3cret-pw" not in result.stdout + result.stderr
    result = run("check", env=env)
    assert result.returncode == 0 and "identity registry reachable" in result.stdout


def test_check_and_query_on_the_demo(demo_dir: Path, feedback_url: str) -> None:
    env = with_env(CUSTVIEW_DEMO_DIR=str(demo_dir), CUSTVIEW_FEEDBACK_URL=feedback_url)
    result = run("check", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["source"] for r in rows} == {"crm", "support", "sales", "feedback"}
    assert all(r["reachable"] and all(r["tables"].values()) for r in rows)

    result = run("query", "{ customers(first: 2) { nodes { id name } } }", env=env)
    assert result.returncode == 0, result.stderr
    nodes = json.loads(result.stdout)["data"]["customers"]["nodes"]
    assert len(nodes) == 2
    assert all(n["id"].startswith("cus_") for n in nodes)

    result = run("query", "{ nope }", env=env)
    assert result.returncode == 1
    assert "nope" in json.loads(result.stdout)["errors"][0]["message"]


def demo_with_audit(demo_dir: Path, feedback_url: str, audit: Path) -> dict[str, str]:
    """The CLI's environment for the test demo, its audit entries into ``audit``."""
    return with_env(
        CUSTVIEW_DEMO_DIR=str(demo_dir),
        CUSTVIEW_FEEDBACK_URL=feedback_url,
        CUSTVIEW_AUDIT_LOG=str(audit),
    )


def test_query_and_explain_are_audited_as_the_local_operator(
    tmp_path: Path, demo_dir: Path, feedback_url: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    env = demo_with_audit(demo_dir, feedback_url, audit)
    result = run("query", "{ customers(first: 2) { nodes { id email } } }", env=env)
    assert result.returncode == 0, result.stderr
    ids = [n["id"] for n in json.loads(result.stdout)["data"]["customers"]["nodes"]]
    result = run("explain", "{ customers(first: 1) { nodes { name } } }", env=env)
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(e["channel"], e["principal"].startswith("cli:")) for e in entries] == [
        ("cli", True),
        ("cli", True),
    ]
    assert entries[0]["customers"] == ids and "Customer.email" in entries[0]["fields"]
    assert entries[1]["customers"] == ids[:1]


def test_query_and_explain_with_an_unwritable_audit_log_say_why_and_show_nothing(
    tmp_path: Path, demo_dir: Path, feedback_url: str
) -> None:
    audit = tmp_path / "missing" / "audit.jsonl"
    env = demo_with_audit(demo_dir, feedback_url, audit)
    for command in ("query", "explain"):
        result = run(command, "{ customers(first: 2) { nodes { id email } } }", env=env)
        assert_clean_failure(result, 1, f"the audit log {audit} cannot be written")
        assert "No such file or directory" in result.stderr, "the cause, in the CLI"
        assert result.stdout == "", "no data and no plan when the read cannot be audited"
        assert "gateway log" not in result.stderr
    assert not audit.parent.exists()


def test_a_query_that_reads_nothing_leaves_no_audit_log_behind(
    tmp_path: Path, demo_dir: Path, feedback_url: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    env = demo_with_audit(demo_dir, feedback_url, audit)
    result = run("query", "{ customers(first: 1) { nodes { id }", env=env)
    assert result.returncode == 1, result.stderr
    assert "Syntax Error" in json.loads(result.stdout)["errors"][0]["message"]
    assert not audit.exists(), "the check before the read created an empty log"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_explain_whose_audit_entry_fails_after_the_read_shows_no_plan(
    demo_dir: Path, feedback_url: str
) -> None:
    """The log opens but an entry cannot be written (a full disk): the plan of the read
    that could not be audited is not shown either."""
    env = demo_with_audit(demo_dir, feedback_url, Path("/dev/full"))
    for command in ("query", "explain"):
        result = run(command, "{ customers(first: 1) { nodes { name } } }", env=env)
        assert_clean_failure(result, 1, "the audit log /dev/full cannot be written")
        assert "No space left on device" in result.stderr
        assert result.stdout == ""


def test_query_without_demo_data_names_the_missing_registry_folder(tmp_path: Path) -> None:
    """The default config run from a folder with no demo data: one located line, no
    traceback (a failed aiosqlite connection used to outlive the event loop)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTVIEW_CONFIG", "CUSTVIEW_DEMO_DIR")}
    env["CUSTVIEW_AUDIT_LOG"] = str(tmp_path / "audit.jsonl")
    registry = tmp_path / "demo-data" / "registry.db"
    for text in ("{ __typename }", "{ customers(first: 1) { nodes { id } } }"):
        result = run("query", text, env=env, cwd=tmp_path)
        assert_clean_failure(
            result,
            1,
            f"the registry database {registry} cannot be opened: its folder "
            f"{registry.parent} does not exist; create the folder or set `registry.url`",
        )
        assert result.stderr.count("\n") == 1, result.stderr
    assert not registry.parent.exists()


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("custview ")
