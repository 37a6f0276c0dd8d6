"""The SQL endpoint over TLS: psql and psycopg verify the server's certificate,
a plain-TCP client is refused when TLS is required, and a bad certificate
setting stops start-up with a located error."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
import trustme

from connectors import ConfigError
from gateway.settings import load_settings
from gateway.sql import SqlSettings
from tests.e2e.conftest import walk
from tests.e2e.sql_endpoint import Endpoint, serve_sql
from tests.e2e.test_sql import WALK

in_module_loop = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Tls:
    endpoint: Endpoint
    ca: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1: (ca, cert, key) PEM files."""
    where = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    server.private_key_and_cert_chain_pem.write_to_path(str(where / "server.pem"))
    server.private_key_pem.write_to_path(str(where / "server.key"))
    return where / "ca.pem", where / "server.pem", where / "server.key"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tls(
    demo_dir: Path,
    feedback_url: str,
    certificates: tuple[Path, Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Tls]:
    ca, cert, key = certificates
    sql = SqlSettings(enabled=True, port=0, tls_cert=str(cert), tls_key=str(key), require_tls=True)
    audit = tmp_path_factory.mktemp("sql-tls") / "audit.jsonl"
    async with serve_sql(demo_dir, feedback_url, audit, sql) as endpoint:
        yield Tls(endpoint, ca)


@in_module_loop
async def test_psycopg_verifies_the_certificate_and_reads_over_tls(tls: Tls) -> None:
    dsn = f"{tls.endpoint.dsn()} sslmode=verify-full sslrootcert={tls.ca}"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        cursor = await conn.execute("SELECT count(*) FROM customers WHERE country = 'DE'")
        row = await cursor.fetchone()
    assert row is not None and row[0] > 0
    # the same answer as GraphQL gives for the same filter
    customers = await walk(
        tls.endpoint.http, WALK % "id", {"X-API-Key": "demo-key"}, f={"country": {"eq": "DE"}}
    )
    assert row[0] == len(customers)


@in_module_loop
async def test_a_client_trusting_another_ca_refuses_the_server(tls: Tls, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    dsn = f"{tls.endpoint.dsn()} sslmode=verify-full sslrootcert={other}"
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        await psycopg.AsyncConnection.connect(dsn, connect_timeout=10)


@in_module_loop
async def test_plain_tcp_is_refused_when_tls_is_required(tls: Tls) -> None:
    with pytest.raises(psycopg.OperationalError, match="TLS connections only"):
        await psycopg.AsyncConnection.connect(f"{tls.endpoint.dsn()} sslmode=disable")


@in_module_loop
async def test_psql_connects_with_tls_by_default(tls: Tls) -> None:
    psql = shutil.which("psql")
    assert psql, "Debian's postgresql-client provides psql (.ci/run installs it)"
    # libpq's default sslmode (prefer) asks for TLS first; the server's answer upgrades it
    process = await asyncio.create_subprocess_exec(
        psql, "-X", "-At", "-h", "127.0.0.1", "-p", str(tls.endpoint.port), "-U", "bi",
        "-d", "custview", "-c", "SELECT count(*) FROM tickets", "-c", r"\conninfo",
        env={**os.environ, "PGPASSWORD": "demo-key", "PGCONNECT_TIMEOUT": "10"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert int(lines[0]) > 0
    assert "SSL connection" in out.decode()


def _config(tmp_path: Path, sql: str) -> Path:
    from gateway.settings import DEMO_CONFIG

    path = tmp_path / "custview.yaml"
    path.write_text(DEMO_CONFIG.read_text() + f"\nsql: {sql}\n")
    return path


def test_certificate_paths_are_relative_to_the_config(
    tmp_path: Path, certificates: tuple[Path, Path, Path]
) -> None:
    _, cert, key = certificates
    (tmp_path / "certs").mkdir()
    shutil.copy(cert, tmp_path / "certs" / "server.pem")
    shutil.copy(key, tmp_path / "certs" / "server.key")
    loaded = load_settings(
        _config(tmp_path, "{enabled: true, tls_cert: certs/server.pem, tls_key: certs/server.key}")
    )
    assert loaded.settings.sql.tls_cert == str(tmp_path / "certs" / "server.pem")


@pytest.mark.parametrize(
    ("sql", "where", "says"),
    [
        ("{enabled: true, tls_cert: missing.pem, tls_key: missing.key}", "sql.tls_cert",
         "no such file"),
        ("{enabled: true, tls_cert: cert.pem}", "sql", "tls_cert and tls_key go together"),
        ("{enabled: true, require_tls: true}", "sql", "require_tls needs tls_cert"),
        ("{enabled: true, tls_cert: cert.pem, tls_key: cert.pem}", "sql.tls_cert",
         "cannot load the certificate"),
    ],
)  # fmt: skip
def test_bad_tls_settings_stop_start_up_with_a_located_error(
    tmp_path: Path, sql: str, where: str, says: str
) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(_config(tmp_path, sql))
    message = str(caught.value)
    assert f"at '{where}" in message and says in message
    assert str(tmp_path / "custview.yaml") in message
